"""Train a neural-operator tendency model on the simulator's history and package it.

The model learns the standardized one-step tendency ``(x[t+1] - x[t] - delta_mu) / delta_sigma``
from the standardized state and the forcings at its time ``t`` (see
``weather_assets.forecast.rollout``), with per-feature loss weights for the 24 h lead it is
scored at (``horizon_loss_weights``). Training data are simulator states every ``timestep``
over ``[start, end)``; evaluation uses held-out cycles after ``end``. fno-demo's registry
defaults train in about 30 s on two CPU cores at the 2 degree grid and beat 24 h persistence
on every feature.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import xarray as xr
from tqdm.auto import tqdm

from model_registry.architectures import new_model
from model_registry.artifact import GridSummary, build_artifact, sha256_file
from model_registry.spec import format_duration, parse_duration
from weather_assets.canonical import features_of
from weather_assets.forecast.normalize import (
    check_forcings,
    compute_stats,
    forcing_array,
    stack_features,
    standardize,
)
from weather_assets.forecast.rollout import rollout
from weather_assets.simulator import DEFAULT_GRID, DEFAULT_LEVELS, Grid, simulate_state
from weather_assets.verification.metrics import latitude_weights

logger = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """The artifact written, the trained model and how training went."""

    path: Path
    sha256: str
    model: torch.nn.Module
    stats: xr.Dataset
    features: list[str]
    forcings: list[str] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0


def simulate_history(
    start: Any,
    end: Any,
    timestep: timedelta = timedelta(hours=6),
    grid: Grid = DEFAULT_GRID,
    levels: Sequence[int] = DEFAULT_LEVELS,
    seed: int = 0,
) -> xr.Dataset:
    """Simulator states every ``timestep`` in ``[start, end)`` concatenated along time."""
    times = pd.date_range(pd.Timestamp(start), pd.Timestamp(end), freq=timestep, inclusive="left")
    if len(times) < 2:
        raise ValueError(f"need at least two time steps between {start} and {end}")
    states = [simulate_state(t, grid, levels, seed) for t in times]
    return xr.concat(states, dim="time")


def lat_weighted_rmse(forecast: np.ndarray, truth: np.ndarray, latitude: np.ndarray) -> np.ndarray:
    """Per-feature RMSE over (sample, feature, lat, lon) arrays, area-weighted by latitude.

    The verification's RMSE: the weights are ``latitude_weights`` (mean 1) and the MSE is
    averaged over samples before the root, as the scores of a period of cycles are.
    """
    w = latitude_weights(latitude)[None, None, :, None]
    return np.sqrt((w * (forecast - truth) ** 2).mean(axis=(0, 2, 3)))


def evaluate_vs_persistence(
    model: torch.nn.Module,
    stats: xr.Dataset,
    history: xr.Dataset,
    features: Sequence[str],
    *,
    lead: timedelta = timedelta(hours=24),
    timestep: timedelta = timedelta(hours=6),
    forcings: Sequence[str] = (),
) -> dict[str, tuple[float, float]]:
    """Feature -> (model RMSE, persistence RMSE) at ``lead`` over every cycle of ``history``."""
    states = stack_features(history, features)
    n_steps = lead // timestep
    n_cycles = states.sizes["time"] - n_steps
    if n_cycles < 1:
        raise ValueError(f"history too short for a {lead} evaluation")
    normalized = standardize(states, stats).values
    forecasts = []
    for i in range(n_cycles):
        *_, last = rollout(
            normalized[i],
            model,
            stats,
            n_steps,
            features=features,
            timestep=timestep,
            device="cpu",
            forcings=forcings,
            analysis_time=states["time"].values[i],
            latitude=states["latitude"].values,
            longitude=states["longitude"].values,
        )
        forecasts.append(last.state[0])
    truth = states.values[n_steps : n_steps + n_cycles]
    lat = states["latitude"].values
    model_rmse = lat_weighted_rmse(np.stack(forecasts), truth, lat)
    pers_rmse = lat_weighted_rmse(states.values[:n_cycles], truth, lat)
    return {
        f: (float(a), float(b)) for f, a, b in zip(features, model_rmse, pers_rmse, strict=True)
    }


def horizon_loss_weights(
    states: xr.DataArray, stats: xr.Dataset, timestep: timedelta, horizon: timedelta
) -> np.ndarray:
    """Per-feature loss weights ``diff_std / std(x[t+horizon] - x[t])``, scaled to mean 1.

    The network's target is the one-step tendency in units of its standard deviation
    ``diff_std``, so the plain loss values an error by how it compares with the feature's
    one-step change. A feature whose one-step change is large but cancels over the horizon
    (2 m temperature: its diurnal wave changes it by ~5 K in 6 h and not at all in 24 h) is
    then under-trained for the lead at which it is scored: an error that is small next to
    its 6 h change is not small next to its 24 h change, and 24 h persistence is hard to beat
    there. These weights raise such features (about 14 times the others for the simulator's
    2 m temperature). Weighting by the full squared ratio (the error measured in 24 h units)
    raises it 200-fold and starves the other features; this ratio is the geometric middle.
    """
    lag = max(1, round(horizon / timestep))
    if states.sizes["time"] <= lag:
        return np.ones(states.sizes["state_feature"], dtype=np.float32)
    reduce_dims = [d for d in states.dims if d != "state_feature"]
    values = states.astype(np.float64)
    change = values.isel(time=slice(lag, None)) - values.isel(time=slice(None, -lag)).values
    scale = np.maximum(change.std(reduce_dims).values, 1e-12)
    diff_std = stats["state__train__diff_std"].sel(state_feature=states["state_feature"]).values
    w = diff_std.astype(np.float64) / scale
    return (w / w.mean()).astype(np.float32)


def train_fno(
    start: Any,
    end: Any,
    *,
    out: Path | str,
    name: str = "fno-demo",
    architecture: str = "fno",
    steps: int = 300,
    hidden_channels: int = 16,
    n_modes: tuple[int, int] = (16, 32),
    n_layers: int = 3,
    batch_size: int = 4,
    learning_rate: float = 1e-2,
    grid: Grid = DEFAULT_GRID,
    levels: Sequence[int] = DEFAULT_LEVELS,
    timestep: timedelta = timedelta(hours=6),
    features: Sequence[str] | None = None,
    forcings: Sequence[str] = (),
    loss_horizon: timedelta | str | None = timedelta(hours=24),
    seed: int = 0,
    version: str | None = None,
    progress: bool = True,
    command: str | None = None,
) -> TrainResult:
    """Train an FNO (or SFNO) tendency model on simulator history and write its artifact."""
    t_start = time.perf_counter()
    history = simulate_history(start, end, timestep, grid, levels, seed)
    features = list(features) if features is not None else features_of(history)
    states = stack_features(history, features)
    stats = compute_stats(states)
    s = torch.from_numpy(standardize(states, stats).values)
    diff = states.diff("time")
    target = (diff - stats["state__train__diff_mean"]) / stats["state__train__diff_std"]
    y = torch.from_numpy(target.transpose("time", "state_feature", ...).values.astype(np.float32))
    forcings = check_forcings(forcings)
    # Forcings at each sample's input time, after the state channels (no statistics: O(1)).
    lat, lon = states["latitude"].values, states["longitude"].values
    forced = forcing_array(forcings, states["time"].values[:-1], lat, lon)
    x = torch.cat([s[:-1], torch.from_numpy(forced)], dim=1)
    if loss_horizon is not None:
        loss_horizon = parse_duration(loss_horizon)
        weights = horizon_loss_weights(states, stats, timestep, loss_horizon)
    else:
        weights = np.ones(len(features), dtype=np.float32)
    w = torch.from_numpy(weights).reshape(1, -1, 1, 1)

    torch.manual_seed(seed)
    hp: dict[str, Any] = {
        "n_modes": list(n_modes),
        "hidden_channels": hidden_channels,
        "n_layers": n_layers,
    }
    model = new_model(architecture, hp, len(features) + len(forcings), len(features))
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=learning_rate, total_steps=steps)
    gen = torch.Generator().manual_seed(seed)
    losses: list[float] = []
    bar = tqdm(range(steps), desc=f"train {name}", unit="step", disable=not progress)
    for _ in bar:
        idx = torch.randint(0, x.shape[0], (min(batch_size, x.shape[0]),), generator=gen)
        opt.zero_grad(set_to_none=True)
        loss = (w * (model(x[idx]) - y[idx]) ** 2).mean()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
        bar.set_postfix(loss=f"{losses[-1]:.4f}")
    model.eval()

    args = {
        "start": str(pd.Timestamp(start)),
        "end": str(pd.Timestamp(end)),
        "steps": steps,
        "hidden_channels": hidden_channels,
        "n_modes": list(n_modes),
        "n_layers": n_layers,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "grid": {
            "lat_min": grid.lat_min,
            "lat_max": grid.lat_max,
            "lon_min": grid.lon_min,
            "lon_max": grid.lon_max,
            "step": grid.step,
        },
        "levels": list(levels),
        "forcings": list(forcings),
        "loss_horizon": None if loss_horizon is None else format_duration(loss_horizon),
        "timestep_hours": timestep / timedelta(hours=1),
        "seed": seed,
    }
    path = build_artifact(
        out,
        name=name,
        architecture=architecture,
        hyperparameters=hp,
        input_features=features,
        output_features=features,
        forcings=forcings,
        timestep=timestep,
        stats=stats,
        state_dict=model.state_dict(),
        grid=GridSummary.from_coords(states["latitude"].values, states["longitude"].values),
        version=version,
        training_cli_args=args,
        training_data={
            "source": "weather_assets.simulator.simulate_state",
            "simulator_seed": seed,
            "start": args["start"],
            "end": args["end"],
            "timestep": f"{timestep / timedelta(hours=1):g}h",
            "samples": int(x.shape[0]),
            "final_loss": losses[-1] if losses else None,
            "loss_weights": {f: round(float(v), 4) for f, v in zip(features, weights, strict=True)},
        },
        command=command,
    )
    seconds = time.perf_counter() - t_start
    logger.info("trained %s in %.1f s -> %s", name, seconds, path)
    return TrainResult(path, sha256_file(path), model, stats, features, forcings, losses, seconds)


def untrained_artifact(
    path: Path,
    *,
    grid: Grid = DEFAULT_GRID,
    hyperparameters: dict[str, Any],
    forcings: Sequence[str] = (),
    start: str = "2026-01-01T00",
    name: str = "untrained-fno",
    version: str = "v1",
    seed: int = 0,
) -> Path:
    """An FNO artifact with seeded random weights and stats from four simulator states.

    The numbers mean nothing; the artifact is complete and valid, which is what smoke tests
    of a deployment, tests of the plumbing and benchmarks of the forecast step need.
    """
    first = pd.Timestamp(start)
    hist = xr.concat(
        [simulate_state(first + pd.Timedelta(hours=6 * k), grid) for k in range(4)], dim="time"
    )
    features = features_of(hist)
    torch.manual_seed(seed)
    model = new_model("fno", hyperparameters, len(features) + len(forcings), len(features))
    return build_artifact(
        path,
        name=name,
        architecture="fno",
        hyperparameters=hyperparameters,
        input_features=features,
        output_features=features,
        forcings=list(forcings),
        timestep=timedelta(hours=6),
        stats=compute_stats(stack_features(hist, features)),
        state_dict=model.state_dict(),
        grid=GridSummary.from_coords(grid.latitude, grid.longitude),
        version=version,
    )


def train_registered(
    spec,
    start: str,
    end: str,
    *,
    out: Path | None = None,
    steps: int | None = None,
    version: str | None = None,
    command: str | None = None,
) -> TrainResult:
    """Train a registry model (``ModelSpec``) on simulator history into its artifact zip.

    The spec decides the grid (``training.grid_step``), levels, features, forcings and
    hyper-parameters; ``out`` defaults to the registry's local artifact path.
    """
    from model_registry.architectures import get_architecture, names_where

    if not get_architecture(spec.architecture).trainable:
        trainable = "/".join(names_where(lambda a: a.trainable))
        raise ValueError(
            f"model {spec.name!r} has architecture {spec.architecture!r}; only {trainable} train"
        )
    if out is None:
        location = spec.artifact_location
        if location is None or spec.artifact is None or spec.artifact.is_remote:
            raise ValueError(f"model {spec.name!r} has no local artifact path; pass --out")
        out = Path(location)
    tr = dict(spec.training) if spec.training else {}  # python values (timedelta, tuple)
    tr.pop("grid_step", None)  # the grid, below
    if steps is not None:
        tr["steps"] = steps
    return train_fno(
        start,
        end,
        out=out,
        name=spec.name,
        architecture=spec.architecture,
        grid=training_grid(spec),
        levels=training_levels(spec),
        timestep=spec.timestep,
        features=spec.input_features,
        forcings=spec.forcings,
        version=version,
        command=command,
        **tr,
    )


def training_grid(spec) -> Grid:
    """The global simulator grid a registry model trains on (``training.grid_step`` deg)."""
    step = float(dict(spec.training or {}).get("grid_step", 2.0))
    return Grid(-90.0, 90.0, 0.0, 360.0 - step, step)


def training_levels(spec) -> list[int]:
    """The pressure levels of a registry model's input variables."""
    return sorted({lev for v in spec.input_variables for lev in v.levels})
