"""Several cycles' forecasts through the network together: the batched ``run_forecast``.

A reforecast backfill runs many cycles of one model in one run. ``run_forecasts`` checks
every cycle's input before any compute, opens one output per cycle with that cycle's own
layout (its analysis time, its lead times), rolls the cycles out as one batch
(``weather_assets.forecast.rollout.rollout_cycles``: one network call per step, each cycle
with the forcings of its own valid time) and writes each lead time of each cycle into that
cycle's output, in the rollout's thread, as soon as it is computed. Memory holds one step
of the batch. An output is closed (marked complete) only when all its lead times are written;
a failure leaves every output of the batch incomplete, for the caller's staging to discard.

One cycle is ``resources.forecast_run.run_forecast``'s job (the path of a single forecast,
with everything it does for one cycle); this module is only the batch.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from resources.forecast_run import ForecastSummary
from resources.forecast_writer import forecast_output
from weather_assets.forecast.dataset import ForecastLayout
from weather_assets.forecast.normalize import FEATURE_DIM
from weather_assets.forecast.rollout import (
    DEFAULT_PERTURBATION,
    check_finite,
    check_grid,
    rollout_cycles,
    select_device,
)

if TYPE_CHECKING:
    import torch


def run_forecasts(
    normalized: Sequence[xr.DataArray],
    model: torch.nn.Module,
    stats: xr.Dataset,
    *,
    steps: int,
    timestep: timedelta,
    stores: Sequence[Sequence[Any]],
    members: int = 1,
    grid: Any = None,
    perturbation: float = DEFAULT_PERTURBATION,
    seed: int = 0,
    device: str | torch.device | None = None,
    attrs: Sequence[dict[str, Any]] | None = None,
    storage_options: dict[str, Any] | None = None,
    forcings: Sequence[str] = (),
) -> list[ForecastSummary]:
    """``run_forecast`` of several cycles, batched through the network; one summary each.

    ``normalized[c]`` is cycle c's standardized input (time=1, state_feature, latitude,
    longitude), all on one grid with the same features; ``stores[c]`` its output stores
    (one for all members or one per member) and ``attrs[c]`` its dataset attributes. Each
    summary's ``step_seconds`` are the batch's step times divided by the number of cycles
    (the cycle's share of the network's time).
    """
    import torch  # here, not at import: loading the code location must not import torch

    if not normalized:
        raise ValueError("no cycles to forecast")
    if len(stores) != len(normalized):
        raise ValueError(f"{len(stores)} sets of stores for {len(normalized)} cycles")
    attrs = list(attrs) if attrs is not None else [{} for _ in normalized]
    first = normalized[0]
    features = [str(f) for f in first[FEATURE_DIM].values]
    latitude, longitude = first["latitude"].values, first["longitude"].values
    check_grid(latitude, longitude, grid)
    values, times = [], []
    for c, da in enumerate(normalized):
        if da.sizes.get("time", 1) != 1:
            raise ValueError(f"cycle {c}: expected one analysis time, got {da.sizes['time']}")
        if [str(f) for f in da[FEATURE_DIM].values] != features:
            raise ValueError(f"cycle {c}: features differ from the first cycle's")
        if not (
            np.array_equal(da["latitude"].values, latitude)
            and np.array_equal(da["longitude"].values, longitude)
        ):
            raise ValueError(f"cycle {c}: grid differs from the first cycle's")
        v = np.asarray(da.transpose("time", FEATURE_DIM, "latitude", "longitude").values)
        check_finite(v, features)
        values.append(v[0].astype(np.float32, copy=False))
        times.append(da["time"].values[0])
    dev = select_device(device)
    cycles = len(normalized)
    summaries = [ForecastSummary(steps=0, members=members, device=str(dev)) for _ in normalized]
    outputs = []
    for c in range(cycles):
        layout = ForecastLayout(
            analysis_time=times[c],
            features=features,
            latitude=latitude,
            longitude=longitude,
            lead_times=[timestep * k for k in range(1, steps + 1)],
            members=members,
            attrs=dict(attrs[c]),
        )
        output = forecast_output("zarr", list(stores[c]), storage_options=storage_options)
        t0 = time.perf_counter()
        output.open(layout)  # fails here, before any compute, on a bad store
        summaries[c].write_seconds += time.perf_counter() - t0
        outputs.append(output)
    for step in rollout_cycles(
        torch.from_numpy(np.stack(values)),
        model,
        stats,
        steps,
        features=features,
        timestep=timestep,
        analysis_times=times,
        members=members,
        perturbation=perturbation,
        seed=seed,
        device=dev,
        forcings=forcings,
        latitude=latitude,
        longitude=longitude,
        host_ring=1,  # every cycle's lead is written before the next step: no copy on the CPU
    ):
        for c, output in enumerate(outputs):
            summary = summaries[c]
            summary.step_seconds.append(step.seconds / cycles)
            t0 = time.perf_counter()
            summary.nbytes += output.write_step(step.cycle(c))
            summary.write_seconds += time.perf_counter() - t0
            summary.steps = step.step
    for summary, output in zip(summaries, outputs, strict=True):
        t0 = time.perf_counter()
        output.close()
        summary.write_seconds += time.perf_counter() - t0
    return summaries
