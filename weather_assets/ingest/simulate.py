"""Fill an upstream area with simulated cycles, laid out by the path convention."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

from resources.storage import Storage
from weather_assets import paths
from weather_assets.simulator import DEFAULT_GRID, DEFAULT_LEVELS, Grid, simulate_state


def cycle_times(start: datetime, end: datetime, every: timedelta) -> Iterator[datetime]:
    """Analysis times from ``start`` to ``end`` inclusive."""
    t = start
    while t <= end:
        yield t
        t += every


def write_simulated_cycles(
    prefix: str,
    start: datetime,
    end: datetime,
    every: timedelta = timedelta(hours=6),
    grid: Grid = DEFAULT_GRID,
    levels: tuple[int, ...] = DEFAULT_LEVELS,
    storage_options: dict | None = None,
    overwrite: bool = False,
) -> list[tuple[datetime, str, bool]]:
    """Write one zarr per cycle at ``<prefix>/<analysis_time>/member0/analysis.zarr``.

    Existing complete cycles are kept unless ``overwrite``; returns (time, url, written).
    """
    store = Storage(prefix, storage_options)
    done = []
    for t in cycle_times(start, end, every):
        rel = f"{paths.format_analysis_time(t)}/member0/analysis.zarr"
        if store.exists(rel) and not overwrite:
            done.append((t, store.url(rel), False))
            continue
        store.write_zarr(simulate_state(t, grid=grid, levels=levels), rel)
        done.append((t, store.url(rel), True))
    return done
