"""Autoregressive rollout of a tendency model and the forecast dataset it produces.

Maths (per feature f, with mllam statistics mu, sigma of the state and delta_mu, delta_sigma of
its one-step tendency; s = (x - mu) / sigma is the standardized state)::

    x[t+1] = x[t] + delta_mu + delta_sigma * model(s[t])        (physical units)
    s[t+1] = (x[t+1] - mu) / sigma                              (re-normalized for next step)

i.e. the network predicts the standardized tendency, as in neural-lam. With identity
statistics (mu=0, sigma=1, delta_mu=0, delta_sigma=1) and a zero-output model this is
persistence. Steps are yielded one lead time at a time so the writer holds one step in memory.

A model with forcings (``weather_assets.forecast.normalize.FORCINGS``) takes
``concat(s[t], forcings(t))`` along the channel axis: the forcings are recomputed for each
step at the valid time ``t = analysis_time + (k - 1) * timestep`` of the state it steps from
(the input time, as in training), so only one step's forcings are ever held.
"""

from __future__ import annotations

import queue
import threading
import time as _time
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import torch
import xarray as xr

from weather_assets.forecast.normalize import (
    FEATURE_DIM,
    check_forcings,
    forcing_fields,
    stats_for,
    unstack_features,
)

# Initial-condition perturbation of ensemble members k>0: Gaussian white noise of this
# standard deviation in standardized units, i.e. 5 % of each feature's climatological spread,
# drawn from a CPU generator seeded with (seed, member) so every device gives the same noise.
DEFAULT_PERTURBATION = 0.05
# The platform stores zarr format 2 with consolidated metadata (resources/storage.py).
ZARR_FORMAT = 2
_TIME_ENCODING = {"units": "seconds since 1970-01-01", "dtype": "int64"}


@dataclass(frozen=True)
class RolloutStep:
    """One lead time of the rollout: the physical state of every member."""

    step: int  # 1-based step index
    lead_time: timedelta
    state: np.ndarray  # (member, state_feature, latitude, longitude), float32, physical units
    seconds: float  # wall time of the model step (device-synchronized)


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


def select_device(device: str | torch.device | None = None) -> torch.device:
    """The requested device, else CUDA when available, else CPU."""
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def check_finite(values: np.ndarray | torch.Tensor, features: Sequence[str]) -> None:
    """``ValueError`` naming the features with NaN/inf values (before any compute)."""
    arr = values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else values
    arr = np.asarray(arr)
    feature_axis = arr.ndim - 3  # (..., feature, lat, lon)
    other = tuple(i for i in range(arr.ndim) if i != feature_axis)
    bad = ~np.isfinite(arr).all(axis=other)
    if bad.any():
        names = [f for f, b in zip(features, bad, strict=True) if b]
        raise ValueError(f"initial state has NaN or infinite values in feature(s) {names}")


def check_grid(latitude: Sequence[float], longitude: Sequence[float], grid: Any) -> None:
    """``ValueError`` naming both grids when the data are not on the artifact's grid.

    ``grid`` is a ``model_registry.artifact.GridSummary`` (or None: grid-agnostic model).
    """
    if grid is None or grid.matches(latitude, longitude):
        return
    lat, lon = np.asarray(latitude, float), np.asarray(longitude, float)
    try:
        from model_registry.artifact import GridSummary

        have = GridSummary.from_coords(lat, lon).describe()
    except ValueError:
        have = f"{lat.size}x{lon.size} (irregular)"
    raise ValueError(f"input grid {have} does not match the artifact grid {grid.describe()}")


def _stat_tensors(stats: xr.Dataset, features: Sequence[str], device: torch.device):
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
    check_finite(x0, features)  # before any model compute
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


def step_dataset(
    step: RolloutStep,
    *,
    analysis_time: datetime | np.datetime64 | str,
    features: Sequence[str],
    latitude: Sequence[float],
    longitude: Sequence[float],
    ensemble: bool = False,
    attrs: dict[str, Any] | None = None,
) -> xr.Dataset:
    """One lead time in the forecast layout (time, lead_time, [member], [level], lat, lon)."""
    t0 = pd.Timestamp(analysis_time)
    if t0.tzinfo is not None:
        t0 = t0.tz_convert("UTC").tz_localize(None)
    time = np.array([t0.to_datetime64()], dtype="datetime64[ns]")
    lead = np.array([np.timedelta64(int(step.lead_time.total_seconds()), "s")]).astype(
        "timedelta64[ns]"
    )
    n_members = step.state.shape[0]
    da = xr.DataArray(
        step.state[None, None],
        dims=("time", "lead_time", "member", FEATURE_DIM, "latitude", "longitude"),
        coords={
            "time": time,
            "lead_time": lead,
            "member": np.arange(n_members, dtype=np.int64),
            FEATURE_DIM: list(features),
            "latitude": np.asarray(latitude, dtype=np.float64),
            "longitude": np.asarray(longitude, dtype=np.float64),
        },
    )
    if not ensemble:
        da = da.isel(member=0, drop=True)
    ds = unstack_features(da)
    ds = ds.assign_coords(valid_time=(("time", "lead_time"), time[:, None] + lead[None, :]))
    ds["time"].attrs.update(standard_name="forecast_reference_time", long_name="analysis time")
    ds["lead_time"].attrs.update(standard_name="forecast_period", long_name="lead time")
    ds["valid_time"].attrs.update(standard_name="time", long_name="valid time")
    ds["latitude"].attrs.update(units="degrees_north", standard_name="latitude")
    ds["longitude"].attrs.update(units="degrees_east", standard_name="longitude")
    if ensemble:
        ds["member"].attrs.update(long_name="ensemble member (0 = control)")
    ds.attrs.update(attrs or {})
    return ds


def forecast_encoding(ds: xr.Dataset) -> dict[str, dict[str, Any]]:
    """Zarr encoding: one chunk per lead time, member and variable (all levels, full grid)."""
    enc: dict[str, dict[str, Any]] = {}
    for name, da in ds.data_vars.items():
        chunks = tuple(1 if d in ("time", "lead_time", "member") else da.sizes[d] for d in da.dims)
        enc[str(name)] = {"chunks": chunks}
    enc["time"] = dict(_TIME_ENCODING)
    enc["valid_time"] = dict(_TIME_ENCODING)
    enc["lead_time"] = {"units": "seconds", "dtype": "int64"}
    return enc


def steps_to_dataset(steps: Iterable[RolloutStep], **kwargs: Any) -> xr.Dataset:
    """All steps concatenated along ``lead_time`` (in memory; for tests and small runs)."""
    parts = [step_dataset(s, **kwargs) for s in steps]
    if not parts:
        raise ValueError("no steps to assemble")
    return xr.concat(parts, dim="lead_time", data_vars="minimal", coords="minimal")


class _ZarrWriter:
    """Writes lead times into one store per entry of ``stores``.

    With the lead times known up front, the first step writes a lazy template of the whole
    forecast (metadata and coordinates only; unwritten chunks read as NaN) and every step
    then writes its chunks directly through zarr, which costs about half of xarray's
    ``append_dim`` (that re-reads and resizes the store each time). Without them, steps are
    appended.
    """

    def __init__(
        self,
        stores: Sequence[Any],
        storage_options: dict[str, Any] | None,
        zarr_format: int,
        layout: dict[str, Any],
        lead_times: Sequence[timedelta] | None,
    ) -> None:
        self.stores = list(stores)
        self.storage_options = storage_options
        self.zarr_format = zarr_format
        self.layout = layout
        self.lead_index = {lt: i for i, lt in enumerate(lead_times)} if lead_times else None
        self.groups: dict[int, Any] = {}

    def _parts(self, step: RolloutStep) -> list[tuple[int, RolloutStep]]:
        n_members = step.state.shape[0]
        if len(self.stores) not in (1, n_members):
            raise ValueError(
                f"{len(self.stores)} stores for {n_members} members; give 1 or one each"
            )
        if len(self.stores) == 1:
            return [(0, step)]
        return [(k, replace(step, state=step.state[k : k + 1])) for k in range(n_members)]

    def _create(self, i: int, ds: xr.Dataset) -> None:
        import zarr

        store = self.stores[i]
        common = {
            "consolidated": False,
            "zarr_format": self.zarr_format,
            "storage_options": self.storage_options,
        }
        if self.lead_index is None:
            ds.to_zarr(store, mode="w", encoding=forecast_encoding(ds), **common)
            return
        leads = np.array(
            [np.timedelta64(int(lt.total_seconds()), "s") for lt in self.lead_index]
        ).astype("timedelta64[ns]")
        template = ds.chunk().reindex(lead_time=leads)  # lazy: no data is materialized
        template = template.assign_coords(
            valid_time=(("time", "lead_time"), ds["time"].values[:, None] + leads[None, :])
        )
        template["valid_time"].attrs.update(ds["valid_time"].attrs)
        template["lead_time"].attrs.update(ds["lead_time"].attrs)
        template.to_zarr(store, mode="w", compute=False, encoding=forecast_encoding(ds), **common)
        extra = {"storage_options": self.storage_options} if self.storage_options else {}
        self.groups[i] = zarr.open_group(store, mode="r+", zarr_format=self.zarr_format, **extra)

    def write(self, step: RolloutStep, first: bool) -> int:
        """Write one lead time to every store; return the bytes of data written."""
        nbytes = 0
        for i, part in self._parts(step):
            ds = step_dataset(part, **self.layout)
            if first:
                self._create(i, ds)
            if self.lead_index is None:
                if not first:
                    ds.to_zarr(
                        self.stores[i],
                        append_dim="lead_time",
                        consolidated=False,
                        zarr_format=self.zarr_format,
                        storage_options=self.storage_options,
                    )
            else:
                if step.lead_time not in self.lead_index:
                    raise ValueError(f"lead time {step.lead_time} is not among the planned ones")
                k = self.lead_index[step.lead_time]
                group = self.groups[i]
                for name, da in ds.data_vars.items():
                    axis = da.dims.index("lead_time")
                    region = tuple(
                        slice(k, k + 1) if d == axis else slice(None) for d in range(da.ndim)
                    )
                    group[str(name)][region] = da.values
            nbytes += int(sum(v.nbytes for v in ds.data_vars.values()))
        return nbytes


_DONE = object()


def write_steps(
    steps: Iterable[RolloutStep],
    stores: Sequence[Any],
    *,
    summary: ForecastSummary | None = None,
    storage_options: dict[str, Any] | None = None,
    zarr_format: int = ZARR_FORMAT,
    queue_size: int = 2,
    lead_times: Sequence[timedelta] | None = None,
    **layout: Any,
) -> ForecastSummary:
    """Write steps into zarr stores as they arrive (the first creates, later ones append).

    One store: all members in it (a ``member`` dim for ensembles). One store per member:
    member k goes to ``stores[k]`` without a ``member`` dim, like per-member raw inputs.
    Metadata are consolidated at the end (the platform's "store complete" marker).
    ``lead_times`` (all that will come) lets the writer lay the store out once and write
    chunks in place; without it each step is appended.

    A writer thread overlaps writing lead time k with computing k+1 (the device is not idle
    while zarr compresses and stores); at most ``queue_size`` steps wait in memory. Errors
    from either side stop both and propagate; partial stores are left to the caller's
    staging to discard.
    """
    stores = list(stores)
    summary = summary or ForecastSummary(steps=0, members=0, device="cpu")
    writer_impl = _ZarrWriter(stores, storage_options, zarr_format, layout, lead_times)
    pending: queue.Queue = queue.Queue(maxsize=max(1, queue_size))
    failure: list[BaseException] = []

    def consume() -> None:
        first = True
        while (step := pending.get()) is not _DONE:
            if failure:
                continue  # keep draining so the producer never blocks on a full queue
            try:
                t0 = _time.perf_counter()
                summary.nbytes += writer_impl.write(step, first)
                summary.write_seconds += _time.perf_counter() - t0
                first = False
                summary.steps = step.step
                summary.members = step.state.shape[0]
            except BaseException as exc:  # re-raised in the caller's thread below
                failure.append(exc)

    writer = threading.Thread(target=consume, name="forecast-writer", daemon=True)
    writer.start()
    try:
        for step in steps:
            summary.step_seconds.append(step.seconds)
            pending.put(step)
            if failure:
                break
    finally:
        pending.put(_DONE)
        writer.join()
    if failure:
        raise failure[0]
    if summary.steps == 0:
        raise ValueError("rollout produced no steps; nothing was written")
    t0 = _time.perf_counter()
    for store in stores:
        consolidate(store, storage_options)
    summary.write_seconds += _time.perf_counter() - t0
    return summary


def consolidate(store: Any, storage_options: dict[str, Any] | None = None) -> None:
    """Consolidate zarr metadata once all appends are done (one read opens the store)."""
    import zarr

    if isinstance(store, str) and storage_options:
        store = zarr.storage.FsspecStore.from_url(store, storage_options=storage_options)
    with warnings.catch_warnings():
        # zarr 3 warns that consolidated metadata is not yet in the v3 spec; xarray uses it.
        warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
        zarr.consolidate_metadata(store)


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
    ``stores`` one zarr URL for all members or one per member (see ``write_steps``);
    ``forcings`` the model's forcing names (computed per step from the analysis time).
    """
    features = [str(f) for f in normalized[FEATURE_DIM].values]
    check_grid(normalized["latitude"].values, normalized["longitude"].values, grid)
    if normalized.sizes.get("time", 1) != 1:
        raise ValueError(f"expected one analysis time, got {normalized.sizes['time']}")
    values = np.asarray(normalized.transpose("time", FEATURE_DIM, "latitude", "longitude").values)
    check_finite(values, features)
    dev = select_device(device)
    summary = ForecastSummary(steps=0, members=members, device=str(dev))
    gen = rollout(
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
        analysis_time=normalized["time"].values[0],
        latitude=normalized["latitude"].values,
        longitude=normalized["longitude"].values,
    )
    return write_steps(
        gen,
        stores,
        summary=summary,
        lead_times=[timestep * k for k in range(1, steps + 1)],
        storage_options=storage_options,
        analysis_time=normalized["time"].values[0],
        features=features,
        latitude=normalized["latitude"].values,
        longitude=normalized["longitude"].values,
        ensemble=members > 1 and len(stores) == 1,
        attrs=attrs,
    )
