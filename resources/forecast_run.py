"""The platform's forecast run: input checks, rollout, de-normalization and output.

``run_forecast`` is what an in-process model runner calls (``resources.runners``): it checks
the input before any compute (grid, NaN), opens the output with the whole forecast's layout,
then writes each lead time as soon as the rollout yields it, in the same thread, so memory
holds one step and the model's threads have the CPU to themselves between writes. The
output is closed (marked complete) only when every lead time is written; a failure leaves it
incomplete for the caller's staging to discard.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from resources.forecast_writer import forecast_output
from weather_assets.forecast.dataset import ForecastLayout
from weather_assets.forecast.normalize import FEATURE_DIM
from weather_assets.forecast.rollout import (
    DEFAULT_PERTURBATION,
    check_finite,
    check_grid,
    rollout,
    select_device,
)

if TYPE_CHECKING:
    import torch


@dataclass
class ForecastSummary:
    """What a forecast run did: steps, device, and timings for metadata and benchmarks."""

    steps: int
    members: int
    device: str
    step_seconds: list[float] = field(default_factory=list)
    write_seconds: float = 0.0
    nbytes: int = 0

    @property
    def mean_step_seconds(self) -> float:
        return float(np.mean(self.step_seconds)) if self.step_seconds else 0.0


def run_forecast(
    normalized: xr.DataArray,
    model: torch.nn.Module,
    stats: xr.Dataset,
    *,
    steps: int,
    timestep: timedelta,
    stores: Sequence[Any],
    members: int = 1,
    grid: Any = None,
    perturbation: float = DEFAULT_PERTURBATION,
    seed: int = 0,
    device: str | torch.device | None = None,
    attrs: dict[str, Any] | None = None,
    storage_options: dict[str, Any] | None = None,
    forcings: Sequence[str] = (),
) -> ForecastSummary:
    """Platform forecast step: checks, rollout, de-normalization and zarr write, bounded memory.

    ``normalized`` is the standardized input (time=1, state_feature, latitude, longitude);
    ``stores`` one zarr URL for all members or one per member (``ZarrForecastOutput``);
    ``forcings`` the model's forcing names (computed per step from the analysis time).
    """
    import torch  # here, not at import: loading the code location must not import torch

    features = [str(f) for f in normalized[FEATURE_DIM].values]
    latitude, longitude = normalized["latitude"].values, normalized["longitude"].values
    check_grid(latitude, longitude, grid)
    if normalized.sizes.get("time", 1) != 1:
        raise ValueError(f"expected one analysis time, got {normalized.sizes['time']}")
    values = np.asarray(normalized.transpose("time", FEATURE_DIM, "latitude", "longitude").values)
    check_finite(values, features)
    analysis_time = normalized["time"].values[0]
    layout = ForecastLayout(
        analysis_time=analysis_time,
        features=features,
        latitude=latitude,
        longitude=longitude,
        lead_times=[timestep * k for k in range(1, steps + 1)],
        members=members,
        attrs=dict(attrs or {}),
    )
    dev = select_device(device)
    summary = ForecastSummary(steps=0, members=members, device=str(dev))
    output = forecast_output("zarr", stores, storage_options=storage_options)
    t0 = time.perf_counter()
    output.open(layout)  # fails here, before any compute, on a bad store
    summary.write_seconds += time.perf_counter() - t0
    for step in rollout(
        torch.from_numpy(values.astype(np.float32, copy=False)),
        model,
        stats,
        steps,
        features=features,
        timestep=timestep,
        members=members,
        perturbation=perturbation,
        seed=seed,
        device=dev,
        forcings=forcings,
        analysis_time=analysis_time,
        latitude=latitude,
        longitude=longitude,
    ):
        summary.step_seconds.append(step.seconds)
        t0 = time.perf_counter()
        summary.nbytes += output.write_step(step)
        summary.write_seconds += time.perf_counter() - t0
        summary.steps = step.step
    t0 = time.perf_counter()
    output.close()
    summary.write_seconds += time.perf_counter() - t0
    return summary
