"""Fill an upstream area with simulated cycles, laid out by the path convention."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import dagster as dg

from resources.storage import Storage
from weather_assets import paths
from weather_assets.partitions import cadence_neighbours, on_cadence
from weather_assets.simulator import DEFAULT_GRID, DEFAULT_LEVELS, Grid, simulate_state


def _hours(step: timedelta) -> str:
    return f"{step / timedelta(hours=1):g} h"


def check_cycle_range(
    start: datetime,
    end: datetime,
    every: timedelta,
    partitions_def: dg.TimeWindowPartitionsDefinition | None = None,
) -> None:
    """ValueError, naming the values, unless ``start`` .. ``end`` in steps of ``every`` is a
    forward range of cycles that ends on ``end`` and, given ``partitions_def``, whose every
    cycle is on the partitions' cadence (before the first partition or after the last too).
    """
    fmt = paths.format_analysis_time
    if end < start:
        raise ValueError(f"end {fmt(end)} is before start {fmt(start)}: the range must run forward")
    if every <= timedelta(0):
        raise ValueError(f"the step between cycles must be positive, not {_hours(every)}")
    if partitions_def is not None:
        for label, t in (("start", start), ("end", end)):
            if not on_cadence(partitions_def, t):
                before, after = cadence_neighbours(partitions_def, t)
                raise ValueError(
                    f"{label} {fmt(t)} is off the partitions' cadence "
                    f"({partitions_def.cron_schedule}): the nearest cycles are {before} and {after}"
                )
    if (end - start) % every:
        last = end - (end - start) % every
        raise ValueError(
            f"end {fmt(end)} is not a whole number of {_hours(every)} steps after start "
            f"{fmt(start)}: the last cycle would be {fmt(last)}"
        )
    if partitions_def is not None:
        for t in cycle_times(start, end, every):
            if not on_cadence(partitions_def, t):
                raise ValueError(
                    f"cycle {fmt(t)}, in steps of {_hours(every)} from {fmt(start)}, is off the "
                    f"partitions' cadence ({partitions_def.cron_schedule}): "
                    "the step must keep to the cadence"
                )


def cycle_times(start: datetime, end: datetime, every: timedelta) -> Iterator[datetime]:
    """Analysis times from ``start`` to ``end`` inclusive."""
    if every <= timedelta(0):
        raise ValueError(f"the step between cycles must be positive, not {_hours(every)}")
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
    partitions_def: dg.TimeWindowPartitionsDefinition | None = None,
) -> list[tuple[datetime, str, bool]]:
    """Write one zarr per cycle at ``<prefix>/<analysis_time>/member0/analysis.zarr``.

    Existing complete cycles are kept unless ``overwrite``; returns (time, url, written).
    The range is checked first (:func:`check_cycle_range`, on the cadence of
    ``partitions_def`` when given): ValueError naming the value, nothing written.
    """
    check_cycle_range(start, end, every, partitions_def)
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
