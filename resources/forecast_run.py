"""The platform's forecast run: input checks, rollout, de-normalization and output.

``run_forecast`` is what an in-process model runner calls (``resources.runners``): it checks
the input before any compute (grid, NaN), opens the output with the whole forecast's layout,
then writes each lead time as soon as the rollout yields it, so memory holds a bounded
number of steps. On the CPU the lead times are written in the rollout's thread (the model's
threads have the cores to themselves between writes); on a GPU a pool of writer threads
encodes and writes lead k while the device computes lead k + 1, and each lead reaches the
host through page-locked buffers on a side stream, its copy overlapped with the next step
(``rollout(host_ring=...)``). The output is closed (marked complete) only when every lead
time is written; a failure leaves it incomplete for the caller's staging to discard, or to
keep for a resume.

**Resume.** When the output's stores already hold an interrupted run of the same forecast
(their progress journal matches this run's layout, attributes and ``_run_key``: model
structure and statistics, seed, perturbation, forcings), the rollout continues from the last
complete lead time: its stored state, read back bit for bit, is where
``rollout(first_step=k)`` starts, so the result is byte-identical to an uninterrupted run on
the same device. The staging that keeps such stores across a killed process is
``resources.storage.Storage.staged_zarrs(resume_key=...)``.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from resources.forecast_writer import MAX_PENDING_LEADS, ZarrForecastOutput
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
    resumed_from: int = 0  # complete lead times found from an interrupted run (0: fresh)

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
    threads = writer_threads(dev)
    output = ZarrForecastOutput(
        stores,
        storage_options=storage_options,
        run_key=_run_key(model, stats, features, members, perturbation, seed, forcings),
        writer_threads=threads,
    )
    t0 = time.perf_counter()
    output.open(layout)  # fails here, before any compute, on a bad store
    summary.write_seconds += time.perf_counter() - t0
    done = summary.resumed_from = summary.steps = output.completed_steps
    x0 = output.read_state(done) if done else values.astype(np.float32, copy=False)
    try:
        for step in rollout(
            torch.from_numpy(x0),
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
            first_step=done,
            # The output has written each state before it draws the next (no writer
            # threads), or MAX_PENDING_LEADS later: the rollout spares its copies.
            host_ring=MAX_PENDING_LEADS + 1 if threads else 1,
        ):
            summary.step_seconds.append(step.seconds)
            t0 = time.perf_counter()
            summary.nbytes += output.write_step(step)
            summary.write_seconds += time.perf_counter() - t0
            summary.steps = step.step
        t0 = time.perf_counter()
        output.close()
        summary.write_seconds += time.perf_counter() - t0
    except BaseException:
        output.abort()  # the writer threads stop; the lead times written stay for a resume
        raise
    return summary


def writer_threads(device: torch.device) -> int:
    """Writer threads for a rollout on ``device``: none on the CPU (the model's threads use
    every core, a writer would only compete with them), a few while a GPU computes."""
    if device.type == "cpu":
        return 0
    import os

    return max(1, min(8, (os.cpu_count() or 2) - 1))


def _run_key(
    model: torch.nn.Module,
    stats: xr.Dataset,
    features: Sequence[str],
    members: int,
    perturbation: float,
    seed: int,
    forcings: Sequence[str],
) -> str:
    """What else a forecast's values depend on, for its resume journal: the model's
    structure (class, parameter names and shapes), the statistics, the ensemble's seed and
    perturbation and the forcings. The weights themselves are the caller's attributes' job
    (the platform's forecast ``fingerprint`` holds the artifact's sha256)."""
    from weather_assets.forecast.normalize import stats_for

    h = hashlib.sha256()
    tensors = [*model.named_parameters(), *model.named_buffers()]
    shapes = [(name, tuple(t.shape)) for name, t in tensors]
    h.update(
        json.dumps(
            [type(model).__qualname__, shapes, members, perturbation, seed, list(forcings)],
            default=str,
        ).encode()
    )
    for name, var in sorted(stats_for(stats, features).data_vars.items()):
        h.update(str(name).encode())
        h.update(np.ascontiguousarray(var.values, dtype=np.float64).tobytes())
    return h.hexdigest()
