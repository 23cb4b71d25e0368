"""The forecast dataset layout: dims, coordinates, attributes and zarr encoding.

A forecast is ``(time, lead_time, [member], [level], latitude, longitude)`` per variable, with
``time`` the analysis time, ``lead_time`` a timedelta and the coordinate
``valid_time = time + lead_time``; ``member`` only in a store that holds several members. On
disk one lead time of one variable (and member) is one chunk, so that a forecast is written
lead time by lead time and a reader of one lead time touches one chunk per variable.

Everything here is pure (numpy/xarray): :func:`step_dataset` lays one rollout step out,
:func:`forecast_template` the whole forecast with lazy data (for laying a store out before
any lead time is computed), :func:`variable_features` says which state feature goes where.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from weather_assets.forecast.normalize import FEATURE_DIM, unstack_features
from weather_assets.forecast.rollout import RolloutStep

# Times are stored as integer seconds (CF units), whatever the in-memory resolution.
TIME_ENCODING = {"units": "seconds since 1970-01-01", "dtype": "int64"}
LEAD_TIME_ENCODING = {"units": "seconds", "dtype": "int64"}
# Dims of which one chunk holds a single entry (everything else of a variable is one chunk).
PER_CHUNK_DIMS = ("time", "lead_time", "member")


@dataclass(frozen=True, eq=False)  # holds arrays: compared by identity
class ForecastLayout:
    """What a forecast holds, known before the first step: what an output lays out at open.

    ``members`` is the number of members the rollout produces (an output decides whether
    they share one store, with a ``member`` dim, or get one store each); ``attrs`` become the
    dataset's attributes.
    """

    analysis_time: datetime | np.datetime64 | pd.Timestamp | str
    features: Sequence[str]
    latitude: Sequence[float]
    longitude: Sequence[float]
    lead_times: Sequence[timedelta]
    members: int = 1
    attrs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.lead_times:
            raise ValueError("a forecast needs at least one lead time")
        if len(set(self.lead_times)) != len(self.lead_times):
            raise ValueError(f"lead times repeat: {list(self.lead_times)}")
        if self.members < 1:
            raise ValueError(f"members must be >= 1, got {self.members}")

    def lead_index(self, lead_time: timedelta) -> int:
        """Position of ``lead_time`` along ``lead_time``; ``ValueError`` if not planned."""
        try:
            return list(self.lead_times).index(lead_time)
        except ValueError:
            raise ValueError(
                f"lead time {lead_time} is not among the planned ones "
                f"({self.lead_times[0]} .. {self.lead_times[-1]})"
            ) from None


def _analysis_time(value: Any) -> np.ndarray:
    """``(1,)`` datetime64[ns], naive UTC (tz-aware input is converted)."""
    t0 = pd.Timestamp(value)
    if t0.tzinfo is not None:
        t0 = t0.tz_convert("UTC").tz_localize(None)
    return np.array([t0.to_datetime64()], dtype="datetime64[ns]")


def _lead_times(lead_times: Iterable[timedelta]) -> np.ndarray:
    seconds = [np.timedelta64(int(lt.total_seconds()), "s") for lt in lead_times]
    return np.array(seconds).astype("timedelta64[ns]")


def _forecast_dataset(
    values: Any,
    *,
    analysis_time: Any,
    lead_times: Sequence[timedelta],
    features: Sequence[str],
    latitude: Sequence[float],
    longitude: Sequence[float],
    ensemble: bool,
    attrs: dict[str, Any] | None,
) -> xr.Dataset:
    """``values`` (time=1, lead_time, member, state_feature, lat, lon), numpy or dask."""
    time = _analysis_time(analysis_time)
    lead = _lead_times(lead_times)
    da = xr.DataArray(
        values,
        dims=("time", "lead_time", "member", FEATURE_DIM, "latitude", "longitude"),
        coords={
            "time": time,
            "lead_time": lead,
            "member": np.arange(values.shape[2], dtype=np.int64),
            FEATURE_DIM: list(features),
            "latitude": np.asarray(latitude, dtype=np.float64),
            "longitude": np.asarray(longitude, dtype=np.float64),
        },
    )
    if not ensemble:
        da = da.isel(member=0, drop=True)
    return _decorate(unstack_features(da), time, lead, ensemble, attrs)


def _decorate(
    ds: xr.Dataset, time: np.ndarray, lead: np.ndarray, ensemble: bool, attrs: dict | None
) -> xr.Dataset:
    """The forecast's ``valid_time`` coordinate and the attributes of its coordinates."""
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
    """One lead time in the forecast layout (time, lead_time, [member], [level], lat, lon).

    Without ``ensemble`` the dataset holds member 0 only, with no ``member`` dim.
    """
    return _forecast_dataset(
        step.state[None, None],
        analysis_time=analysis_time,
        lead_times=[step.lead_time],
        features=features,
        latitude=latitude,
        longitude=longitude,
        ensemble=ensemble,
        attrs=attrs,
    )


def steps_to_dataset(steps: Iterable[RolloutStep], **kwargs: Any) -> xr.Dataset:
    """All steps concatenated along ``lead_time`` (in memory; for tests and small runs)."""
    parts = [step_dataset(s, **kwargs) for s in steps]
    if not parts:
        raise ValueError("no steps to assemble")
    return xr.concat(parts, dim="lead_time", data_vars="minimal", coords="minimal")


def forecast_template(layout: ForecastLayout, *, ensemble: bool) -> xr.Dataset:
    """The whole forecast of ``layout`` with lazy, never-computed NaN data (dask).

    Written with ``to_zarr(compute=False)`` and ``forecast_encoding`` it lays a store out
    (metadata and coordinates, no data chunks) exactly as writing the computed forecast
    would; the lead times are then written into it chunk by chunk. ``ensemble``: all members with a ``member`` dim,
    else one member and no ``member`` dim.
    """
    import dask.array  # only laying a store out needs it (it imports scipy): not at load

    # The variables, their levels and attributes as ``unstack_features`` lays them out (from
    # a probe of one point per feature, as ``variable_features``); then the forecast's dims
    # and coordinates around them, as ``_forecast_dataset`` gives the computed forecast.
    # The data are never-computed dask arrays of the full shape, one chunk per variable, so
    # the graph is a handful of tasks however many lead times there are (the zarr chunks
    # come from ``forecast_encoding``).
    probe = _feature_probe(layout.features)
    time = _analysis_time(layout.analysis_time)
    lead = _lead_times(layout.lead_times)
    sizes = {
        "time": 1,
        "lead_time": len(lead),
        "member": layout.members,
        "latitude": len(layout.latitude),
        "longitude": len(layout.longitude),
        **{d: n for d, n in probe.sizes.items() if d not in ("latitude", "longitude")},
    }
    leading = ("time", "lead_time", "member") if ensemble else ("time", "lead_time")
    data_vars = {}
    for name, da in probe.data_vars.items():
        dims = leading + tuple(da.dims)
        shape = tuple(sizes[d] for d in dims)
        values = dask.array.full(shape, np.nan, dtype=np.float32, chunks=shape)
        data_vars[name] = xr.Variable(dims, values, da.attrs)
    coords: dict[str, Any] = {
        "time": time,
        "lead_time": lead,
        "latitude": np.asarray(layout.latitude, dtype=np.float64),
        "longitude": np.asarray(layout.longitude, dtype=np.float64),
    }
    if ensemble:
        coords["member"] = np.arange(layout.members, dtype=np.int64)
    if "level" in probe.coords:
        coords["level"] = probe["level"].variable
    ds = xr.Dataset(data_vars, coords=coords)
    return _decorate(ds, time, lead, ensemble, layout.attrs)


def forecast_encoding(ds: xr.Dataset) -> dict[str, dict[str, Any]]:
    """Zarr encoding: one chunk per lead time, member and variable (all levels, full grid)."""
    enc: dict[str, dict[str, Any]] = {}
    for name, da in ds.data_vars.items():
        chunks = tuple(1 if d in PER_CHUNK_DIMS else da.sizes[d] for d in da.dims)
        enc[str(name)] = {"chunks": chunks}
    enc["time"] = dict(TIME_ENCODING)
    enc["valid_time"] = dict(TIME_ENCODING)
    enc["lead_time"] = dict(LEAD_TIME_ENCODING)
    return enc


def _feature_probe(features: Sequence[str]) -> xr.Dataset:
    """The dataset ``unstack_features`` makes of one point whose value is each feature's
    index: the variables, levels and attributes, and where each feature goes (a copy of
    the one made once per feature list)."""
    return _probe(tuple(str(f) for f in features)).copy(deep=True)


@functools.lru_cache(maxsize=32)
def _probe(features: tuple[str, ...]) -> xr.Dataset:
    n = len(features)
    probe = xr.DataArray(
        np.arange(n, dtype=np.float64).reshape(n, 1, 1),
        dims=(FEATURE_DIM, "latitude", "longitude"),
        coords={FEATURE_DIM: list(features)},
    )
    return unstack_features(probe)


def variable_features(features: Sequence[str]) -> dict[str, np.ndarray]:
    """Per variable of the forecast dataset, the index into ``features`` of its values.

    A scalar index for a single-level variable, one index per entry of the dataset's
    ``level`` coordinate otherwise, ``-1`` where the variable has no feature at that level
    (the dataset shares one ``level`` coordinate between variables, so such a level reads
    as NaN). Derived by laying the feature indices themselves out with
    ``unstack_features``: a state slices into the variables exactly as the dataset does.
    """
    probe = _feature_probe(features)
    out = {}
    for name, da in probe.data_vars.items():
        index = da.values[..., 0, 0]
        out[str(name)] = np.where(np.isnan(index), -1, index).astype(np.intp)
    return out
