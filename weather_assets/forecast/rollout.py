"""Autoregressive rollout of a tendency model: the inference maths and its input checks.

Maths (per feature f, with mllam statistics mu, sigma of the state and delta_mu, delta_sigma of
its one-step tendency; s = (x - mu) / sigma is the standardized state)::

    x[t+1] = x[t] + delta_mu + delta_sigma * model(s[t])        (physical units)
    s[t+1] = (x[t+1] - mu) / sigma                              (re-normalized for next step)

i.e. the network predicts the standardized tendency, as in neural-lam. With identity
statistics (mu=0, sigma=1, delta_mu=0, delta_sigma=1) and a zero-output model this is
persistence. Steps are yielded one lead time at a time so the writer holds one step in memory
(the dataset layout is ``weather_assets.forecast.dataset``, the platform's forecast run with
its output ``resources.forecast_run``).

A model with forcings (``weather_assets.forecast.normalize.FORCINGS``) takes
``concat(s[t], forcings(t))`` along the channel axis: the forcings are recomputed for each
step at the valid time ``t = analysis_time + (k - 1) * timestep`` of the state it steps from
(the input time, as in training), so only one step's forcings are ever held.

torch is imported inside the functions that compute, so that the checks here (and the code
location that imports them) load without it.
"""

from __future__ import annotations

import time as _time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xarray as xr

from weather_assets.forecast.normalize import (
    check_forcings,
    forcing_fields,
    stats_for,
)

if TYPE_CHECKING:
    import torch

# Initial-condition perturbation of ensemble members k>0: Gaussian white noise of this
# standard deviation in standardized units, i.e. 5 % of each feature's climatological spread,
# drawn from a CPU generator seeded with (seed, member) so every device gives the same noise.
DEFAULT_PERTURBATION = 0.05


@dataclass(frozen=True)
class RolloutStep:
    """One lead time of the rollout: the physical state of every member."""

    step: int  # 1-based step index
    lead_time: timedelta
    state: np.ndarray  # (member, state_feature, latitude, longitude), float32, physical units
    seconds: float  # wall time of the model step (device-synchronized)


def select_device(device: str | torch.device | None = None) -> torch.device:
    """The requested device, else CUDA when available, else CPU."""
    import torch

    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def check_finite(values: np.ndarray, features: Sequence[str]) -> None:
    """``ValueError`` naming the features with NaN/inf values (before any compute)."""
    arr = np.asarray(values)
    feature_axis = arr.ndim - 3  # (..., feature, lat, lon)
    other = tuple(i for i in range(arr.ndim) if i != feature_axis)
    bad = ~np.isfinite(arr).all(axis=other)
    if bad.any():
        names = [f for f, b in zip(features, bad, strict=True) if b]
        raise ValueError(f"initial state has NaN or infinite values in feature(s) {names}")


def check_grid(latitude: Sequence[float], longitude: Sequence[float], grid: Any) -> None:
    """``ValueError`` naming both grids when the data are not on the artifact's grid.

    ``grid`` is a ``model_registry.artifact.GridSummary`` (or None: grid-agnostic model);
    the input grid is summarized by the same class, so this module imports nothing above it.
    """
    if grid is None or grid.matches(latitude, longitude):
        return
    lat, lon = np.asarray(latitude, float), np.asarray(longitude, float)
    try:
        have = type(grid).from_coords(lat, lon).describe()
    except ValueError:
        have = f"{lat.size}x{lon.size} (irregular)"
    raise ValueError(f"input grid {have} does not match the artifact grid {grid.describe()}")


def _stat_tensors(stats: xr.Dataset, features: Sequence[str], device: torch.device):
    import torch

    s = stats_for(stats, features)

    def as_tensor(name: str) -> torch.Tensor:
        arr = np.asarray(s[name].values, dtype=np.float32).reshape(1, -1, 1, 1)
        return torch.from_numpy(arr).to(device)

    return (
        as_tensor("state__train__mean"),
        as_tensor("state__train__std"),
        as_tensor("state__train__diff_mean"),
        as_tensor("state__train__diff_std"),
    )


def initial_members(
    x0_norm: torch.Tensor, members: int, perturbation: float = DEFAULT_PERTURBATION, seed: int = 0
) -> torch.Tensor:
    """(members, F, H, W): member 0 is the control; members k>0 add seeded noise."""
    import torch

    x0 = x0_norm.reshape(1, *x0_norm.shape[-3:])
    if members < 1:
        raise ValueError(f"members must be >= 1, got {members}")
    out = [x0]
    for k in range(1, members):
        gen = torch.Generator(device="cpu").manual_seed(seed * 100_003 + k)
        noise = torch.randn(x0.shape, generator=gen, dtype=torch.float32)
        out.append(x0 + perturbation * noise.to(x0.device))
    return torch.cat(out, dim=0)


def rollout(
    x0_norm: torch.Tensor | np.ndarray,
    model: torch.nn.Module,
    stats: xr.Dataset,
    steps: int,
    *,
    features: Sequence[str],
    timestep: timedelta,
    members: int = 1,
    perturbation: float = DEFAULT_PERTURBATION,
    seed: int = 0,
    device: str | torch.device | None = None,
    forcings: Sequence[str] = (),
    analysis_time: datetime | np.datetime64 | pd.Timestamp | str | None = None,
    latitude: Sequence[float] | None = None,
    longitude: Sequence[float] | None = None,
) -> Iterator[RolloutStep]:
    """Yield the physical state at each lead time ``timestep * (1..steps)``.

    ``x0_norm`` is the standardized initial state, (F, H, W) or (1, F, H, W), in the order of
    ``features`` (which must be both the model's inputs and outputs). A model with
    ``forcings`` also needs ``analysis_time`` and the grid (``latitude``, ``longitude``) to
    compute them at each step's input time.
    """
    import torch  # here, not at import: loading the code location must not import torch

    x0 = torch.as_tensor(np.asarray(x0_norm) if not isinstance(x0_norm, torch.Tensor) else x0_norm)
    if x0.ndim == 3:
        x0 = x0.unsqueeze(0)
    if x0.ndim != 4 or x0.shape[0] != 1 or x0.shape[1] != len(features):
        raise ValueError(
            f"initial state must be (1, {len(features)}, lat, lon), got {tuple(x0.shape)}"
        )
    forcings = check_forcings(forcings)
    if forcings:
        if analysis_time is None or latitude is None or longitude is None:
            raise ValueError(
                f"a model with forcings {forcings} needs analysis_time, latitude and longitude"
            )
        lat, lon = np.asarray(latitude, dtype=np.float64), np.asarray(longitude, dtype=np.float64)
        if (lat.size, lon.size) != tuple(x0.shape[-2:]):
            raise ValueError(
                f"latitude/longitude ({lat.size}, {lon.size}) do not match the state's grid "
                f"{tuple(x0.shape[-2:])}"
            )
        t_init = pd.Timestamp(analysis_time)
    check_finite(x0.detach().cpu().numpy(), features)  # before any model compute
    dev = select_device(device)
    model = model.to(dev).eval()
    mean, std, dmean, dstd = _stat_tensors(stats, features, dev)
    # Inference mode is entered per step and never held across a ``yield``: grad mode is
    # thread-local, so a generator suspended (or abandoned) inside it would leak inference
    # mode into the consumer's code, e.g. a later training run in the same process.
    with torch.inference_mode():
        s = initial_members(x0.to(dev, torch.float32), members, perturbation, seed)
        x = s * std + mean
    for step in range(1, steps + 1):
        t0 = _time.perf_counter()
        with torch.inference_mode():
            if forcings:
                # Forcings at the valid time of the state being stepped from (its input time).
                f = forcing_fields(forcings, t_init + timestep * (step - 1), lat, lon)
                f = torch.from_numpy(f).to(dev).unsqueeze(0).expand(s.shape[0], -1, -1, -1)
                tendency = model(torch.cat([s, f], dim=1))
            else:
                tendency = model(s)
            if tendency.shape != s.shape:
                raise ValueError(
                    f"model output {tuple(tendency.shape)} does not match state {tuple(s.shape)}"
                )
            x = x + dmean + dstd * tendency
            s = (x - mean) / std
            state = x.detach().to("cpu", torch.float32).numpy().copy()  # syncs the device
        yield RolloutStep(step, timestep * step, state, _time.perf_counter() - t0)
