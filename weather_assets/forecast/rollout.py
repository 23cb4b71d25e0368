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

``rollout_cycles`` rolls several cycles (analysis times) out together, one network call per
step for all of them (a reforecast backfill's batch): each cycle keeps the forcings of its own
valid time, and gives what ``rollout`` gives it alone, up to batched kernels' float rounding.

torch is imported inside the functions that compute, so that the checks here (and the code
location that imports them) load without it.
"""

from __future__ import annotations

import time as _time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
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


def _forcing_grid(
    forcings: Sequence[str],
    times: Sequence[Any] | None,
    latitude: Sequence[float] | None,
    longitude: Sequence[float] | None,
    grid_shape: tuple[int, int],
    what: str,
) -> tuple[np.ndarray, np.ndarray] | None:
    """The grid (lat, lon) of a model with forcings (checked against the state's), else None.

    ``what`` names the missing argument in the error (``analysis_time`` or
    ``analysis_times``).
    """
    if not forcings:
        return None
    if times is None or latitude is None or longitude is None:
        raise ValueError(f"a model with forcings {forcings} needs {what}, latitude and longitude")
    lat, lon = np.asarray(latitude, dtype=np.float64), np.asarray(longitude, dtype=np.float64)
    if (lat.size, lon.size) != grid_shape:
        raise ValueError(
            f"latitude/longitude ({lat.size}, {lon.size}) do not match the state's grid "
            f"{grid_shape}"
        )
    return lat, lon


def _steps(
    model: torch.nn.Module,
    s: torch.Tensor,
    x: torch.Tensor,
    stats: tuple[torch.Tensor, ...],
    steps: range,
    forcings_at: Any,
    host_ring: int = 0,
) -> Iterator[tuple[int, np.ndarray, float]]:
    """The autoregressive loop: ``(step, physical state on the host, seconds)`` per step.

    ``s`` and ``x`` are the standardized and physical state to step from, (batch, F, H, W)
    on the model's device; ``forcings_at(step)`` gives that step's forcing channels,
    (batch, C, H, W), or None. ``seconds`` is the wall time the loop spent on that state.

    ``host_ring`` = 0: each state is the caller's own array. ``host_ring`` = R >= 1: a state
    is valid until the caller asks for the R-th state after it, which spares copies: on the
    CPU with R = 1 the state is a view of ``x`` itself (stepped in place by the next step);
    on a CUDA device with R >= 2 states are views into R reused page-locked buffers, their
    copies overlapped with compute (:func:`_steps_overlapped`).
    """
    if host_ring >= 2 and x.device.type == "cuda":
        yield from _steps_overlapped(model, s, x, stats, steps, forcings_at, host_ring)
        return
    import torch

    # On the CPU ``x`` itself is the host state: a copy unless the caller is done with it
    # before the next step.
    copy_on_host = x.device.type == "cpu" and host_ring != 1
    for step in steps:
        t0 = _time.perf_counter()
        # Inference mode is entered per step and never held across a ``yield``: grad mode is
        # thread-local, so a generator suspended (or abandoned) inside it would leak
        # inference mode into the consumer's code, e.g. a later training run in the process.
        with torch.inference_mode():
            _advance(model, s, x, stats, forcings_at(step))
            state = x.detach().to("cpu", torch.float32).numpy()  # syncs the device
            if copy_on_host:
                state = state.copy()
        yield step, state, _time.perf_counter() - t0


def _advance(
    model: torch.nn.Module,
    s: torch.Tensor,
    x: torch.Tensor,
    stats: tuple[torch.Tensor, ...],
    f: torch.Tensor | None,
    before_update: Any = None,
) -> None:
    """One step, in place: ``x`` (physical) and ``s`` (standardized) become the next state.

    ``before_update()``, if given, runs between the model call (which reads ``s`` only) and
    the in-place update of ``x``.
    """
    import torch

    mean, std, dmean, dstd = stats
    tendency = model(s if f is None else torch.cat([s, f], dim=1))
    if tendency.shape != s.shape:
        raise ValueError(
            f"model output {tuple(tendency.shape)} does not match state {tuple(s.shape)}"
        )
    if before_update is not None:
        before_update()
    # In place, in the same order as ``x + dmean + dstd * tendency`` and ``(x - mean) / std``
    # (the same bits): no state-sized temporaries beyond ``dstd * tendency``, so a CPU
    # rollout holds a few states, not a dozen.
    x.add_(dmean).add_(dstd * tendency)
    del tendency
    torch.sub(x, mean, out=s).div_(std)


def _steps_overlapped(
    model: torch.nn.Module,
    s: torch.Tensor,
    x: torch.Tensor,
    stats: tuple[torch.Tensor, ...],
    steps: range,
    forcings_at: Any,
    ring: int,
) -> Iterator[tuple[int, np.ndarray, float]]:
    """``_steps`` on a CUDA device, each state's copy to the host overlapped with compute.

    Step k is queued on the device before state k - 1 is handed out, so the device computes
    while the caller writes. State k is copied into page-locked buffer ``k % ring`` on a side
    stream once the caller asks for the next state (the buffer's previous state, k - ring,
    is then no longer the caller's); the copy waits for step k on the compute stream, and
    step k + 1's model call (which reads ``s`` only) runs beside it: only its in-place
    update of ``x`` waits for the copy. So the device never waits for the host, and the host
    never copies from pageable memory. A state handed out is valid until the caller asks
    for the ``ring``-th state after it (the forecast writer holds one state while it draws
    the next: ``ring = MAX_PENDING_LEADS + 1``).
    """
    import torch

    compute = torch.cuda.current_stream(x.device)
    copier = torch.cuda.Stream(x.device)
    x.record_stream(copier)  # read there: the allocator keeps it until the copies are done
    with torch.inference_mode():
        buffers = [torch.empty(x.shape, dtype=torch.float32, pin_memory=True) for _ in range(ring)]
    copied: torch.cuda.Event | None = None  # the last copy has read x
    ready: tuple[int, np.ndarray] | None = None  # copied or being copied, not handed out
    resumed = _time.perf_counter()
    for i, step in enumerate(steps):
        try:
            with torch.inference_mode():
                _advance(
                    model, s, x, stats, forcings_at(step),
                    before_update=None if copied is None else partial(compute.wait_event, copied),
                )  # fmt: skip
                computed = compute.record_event()
        except Exception:
            if ready is not None:  # the state before the failed step is still handed out
                assert copied is not None
                copied.synchronize()
                yield ready[0], ready[1], _time.perf_counter() - resumed
            raise
        if ready is not None:
            assert copied is not None
            copied.synchronize()
            yield ready[0], ready[1], _time.perf_counter() - resumed
            resumed = _time.perf_counter()
        # The caller asked for the next state: buffer i % ring (state i - ring) is free.
        with torch.inference_mode(), torch.cuda.stream(copier):
            copier.wait_event(computed)
            host = buffers[i % ring]
            host.copy_(x, non_blocking=True)
            copied = copier.record_event()
            ready = (step, host.numpy())
    if ready is not None:
        assert copied is not None
        copied.synchronize()
        yield ready[0], ready[1], _time.perf_counter() - resumed


def _prepare(
    x0: torch.Tensor,
    model: torch.nn.Module,
    stats: xr.Dataset,
    features: Sequence[str],
    device: str | torch.device | None,
    forcings: Sequence[str],
    times: Any,
    latitude: Sequence[float] | None,
    longitude: Sequence[float] | None,
    what: str,
) -> tuple[tuple[str, ...], Any, torch.device, torch.nn.Module, tuple[torch.Tensor, ...]]:
    """What both rollouts check and set up before any compute: the forcings and their grid,
    finite inputs, the device, the model on it and the statistics as tensors there."""
    forcings = check_forcings(forcings)
    grid = _forcing_grid(forcings, times, latitude, longitude, tuple(x0.shape[-2:]), what)
    check_finite(x0.detach().cpu().numpy(), features)  # before any model compute
    dev = select_device(device)
    return forcings, grid, dev, model.to(dev).eval(), _stat_tensors(stats, features, dev)


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
    first_step: int = 0,
    host_ring: int = 0,
) -> Iterator[RolloutStep]:
    """Yield the physical state at each lead time ``timestep * (1..steps)``.

    ``x0_norm`` is the standardized initial state, (F, H, W) or (1, F, H, W), in the order of
    ``features`` (which must be both the model's inputs and outputs). A model with
    ``forcings`` also needs ``analysis_time`` and the grid (``latitude``, ``longitude``) to
    compute them at each step's input time.

    ``first_step`` > 0 resumes an interrupted rollout at that step (steps ``first_step + 1
    .. steps`` are yielded, with their forcings and lead times): ``x0_norm`` is then the
    state that step yielded, every member, (members, F, H, W), *physical* as it was stored
    (float32, bit for bit), and is standardized exactly as the uninterrupted rollout did, so
    the resumed steps are the uninterrupted ones. Members are perturbed only at step 0 (no
    random numbers after it), so an ensemble resumes identically too.

    Each step's ``state`` is the caller's own array, unless ``host_ring`` = R >= 1: a state
    is then valid only until the caller asks for the R-th step after it (for a consumer that
    has written each state by then, like the forecast writer), which spares copies: on the
    CPU with R = 1 no copy at all; on a CUDA device with R >= 2 the states reach the host
    on a side stream, overlapped with the next step, in R reused page-locked buffers.
    """
    import torch  # here, not at import: loading the code location must not import torch

    x0 = torch.as_tensor(np.asarray(x0_norm) if not isinstance(x0_norm, torch.Tensor) else x0_norm)
    if x0.ndim == 3:
        x0 = x0.unsqueeze(0)
    if not 0 <= first_step <= steps:
        raise ValueError(f"first_step {first_step} is not in 0..{steps}")
    n0 = members if first_step else 1  # a resumed state holds every member
    if x0.ndim != 4 or x0.shape[0] != n0 or x0.shape[1] != len(features):
        raise ValueError(
            f"initial state must be ({n0}, {len(features)}, lat, lon), got {tuple(x0.shape)}"
        )
    forcings, grid, dev, model, stat = _prepare(
        x0, model, stats, features, device, forcings, analysis_time, latitude, longitude,
        "analysis_time",
    )  # fmt: skip
    mean, std = stat[0], stat[1]
    with torch.inference_mode():
        if first_step:  # the stored physical state, standardized as the step after it did
            x = x0.to(dev, torch.float32).clone()  # stepped in place: never the caller's
            s = (x - mean) / std
        else:
            s = initial_members(x0.to(dev, torch.float32), members, perturbation, seed)
            x = s * std + mean

    def forcings_at(step: int) -> torch.Tensor | None:
        if grid is None:
            return None
        # Forcings at the valid time of the state being stepped from (its input time).
        t = pd.Timestamp(analysis_time) + timestep * (step - 1)
        f = torch.from_numpy(forcing_fields(forcings, t, *grid)).to(dev)
        return f.unsqueeze(0).expand(x.shape[0], -1, -1, -1)

    for step, state, seconds in _steps(
        model, s, x, stat, range(first_step + 1, steps + 1), forcings_at, host_ring
    ):
        yield RolloutStep(step, timestep * step, state, seconds)


@dataclass(frozen=True)
class CyclesStep:
    """One lead time of a batch of cycles (analysis times) rolled out together."""

    step: int  # 1-based step index
    lead_time: timedelta
    states: np.ndarray  # (cycle, member, state_feature, latitude, longitude), float32, physical
    seconds: float  # wall time of the batched model step (device-synchronized)

    def cycle(self, index: int) -> RolloutStep:
        """This lead time of one cycle, as its own rollout would have yielded it."""
        return RolloutStep(self.step, self.lead_time, self.states[index], self.seconds)


def rollout_cycles(
    x0_norm: torch.Tensor | np.ndarray,
    model: torch.nn.Module,
    stats: xr.Dataset,
    steps: int,
    *,
    features: Sequence[str],
    timestep: timedelta,
    analysis_times: Sequence[datetime | np.datetime64 | pd.Timestamp | str] | None = None,
    members: int = 1,
    perturbation: float = DEFAULT_PERTURBATION,
    seed: int = 0,
    device: str | torch.device | None = None,
    forcings: Sequence[str] = (),
    latitude: Sequence[float] | None = None,
    longitude: Sequence[float] | None = None,
    host_ring: int = 0,
) -> Iterator[CyclesStep]:
    """``rollout`` of several cycles at once: one network call per step for all of them.

    ``x0_norm`` is (cycle, F, H, W), one standardized analysis per cycle, and
    ``analysis_times`` their analysis times, in the same order. The cycles are stacked along
    the network's batch dim (cycle-major, then member), so each step is one ``model`` call;
    each cycle's forcings are computed at *its own* input valid time
    ``analysis_times[c] + (k - 1) * timestep``, never at another cycle's (a batch of 00Z and
    12Z cycles must not share the sun). Ensemble members are drawn per cycle exactly as
    ``rollout`` draws them, so cycle ``c`` of the batch is cycle ``c`` rolled out alone, up
    to the float rounding of batched kernels (BLAS and FFT sum in another order).
    ``host_ring`` is ``rollout``'s: R >= 1 spares copies for a caller done with each step's
    states before it asks for the R-th step after it.
    """
    import torch  # here, not at import: loading the code location must not import torch

    x0 = torch.as_tensor(np.asarray(x0_norm) if not isinstance(x0_norm, torch.Tensor) else x0_norm)
    if x0.ndim != 4 or x0.shape[0] < 1 or x0.shape[1] != len(features):
        raise ValueError(
            f"initial states must be (cycle, {len(features)}, lat, lon), got {tuple(x0.shape)}"
        )
    cycles = int(x0.shape[0])
    if analysis_times is not None and len(analysis_times) != cycles:
        raise ValueError(f"{len(analysis_times)} analysis times for {cycles} initial states")
    forcings, grid, dev, model, stat = _prepare(
        x0, model, stats, features, device, forcings, analysis_times, latitude, longitude,
        "analysis_times",
    )  # fmt: skip
    mean, std = stat[0], stat[1]
    with torch.inference_mode():
        x0 = x0.to(dev, torch.float32)
        s = torch.cat(
            [initial_members(x0[c], members, perturbation, seed) for c in range(cycles)], dim=0
        )
        x = s * std + mean

    def forcings_at(step: int) -> torch.Tensor | None:
        if grid is None:
            return None
        # Each cycle's forcings at the valid time of its own input state.
        f = np.stack(
            [
                forcing_fields(forcings, pd.Timestamp(t) + timestep * (step - 1), *grid)
                for t in analysis_times
            ]
        )
        return torch.from_numpy(f).to(dev).repeat_interleave(members, dim=0)

    for step, states, seconds in _steps(
        model, s, x, stat, range(1, steps + 1), forcings_at, host_ring
    ):
        yield CyclesStep(
            step, timestep * step, states.reshape(cycles, members, *states.shape[1:]), seconds
        )
