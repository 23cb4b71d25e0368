"""Stack canonical datasets into feature tensors and standardize them.

Statistics follow mllam-data-prep: ``state__train__mean``/``state__train__std`` of the state
and ``state__train__diff_mean``/``state__train__diff_std`` of its one-step tendencies
``x[t+1] - x[t]``, each along a ``state_feature`` dimension. Statistics are unweighted over
time, latitude and longitude, as mllam-data-prep computes them.

Forcings (``FORCINGS``) are extra network inputs that are known functions of time, latitude
and longitude (time of day, time of year, top-of-atmosphere insolation), computed rather than
read from data and never predicted, as GraphCast and Aurora feed them. They are bounded in
[-1, 1] by construction, i.e. already O(1) like a standardized state, so they carry no
statistics and are given to the network as they are (identity normalization): an artifact's
``stats`` cover its state features only.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from weather_assets.canonical import VARIABLES, features_of

FEATURE_DIM = "state_feature"
STAT_NAMES = (
    "state__train__mean",
    "state__train__std",
    "state__train__diff_mean",
    "state__train__diff_std",
)
_LEVEL_SUFFIX = re.compile(r"^(?P<var>.+)_(?P<level>\d+(?:\.\d+)?)hPa$")
# Floor for standard deviations so a constant channel does not divide by zero.
_MIN_STD = 1e-6


def parse_feature(feature: str) -> tuple[str, float | None]:
    """Inverse of ``feature_name``: ``temperature_500hPa`` -> (``temperature``, 500)."""
    match = _LEVEL_SUFFIX.match(feature)
    if match and match.group("var") in VARIABLES and VARIABLES[match.group("var")].has_levels:
        return match.group("var"), float(match.group("level"))
    return feature, None


def check_units(ds: xr.Dataset, variables: Sequence[str]) -> None:
    """Raise ``ValueError`` unless each canonical variable carries its canonical units."""
    for var in variables:
        if var not in VARIABLES:
            continue  # non-canonical extras: nothing to compare against
        expected = VARIABLES[var].units
        actual = ds[var].attrs.get("units")
        if actual is None:
            raise ValueError(f"variable {var!r} has no 'units' attribute; expected {expected!r}")
        if str(actual).strip() != expected:
            raise ValueError(f"variable {var!r} has units {actual!r}; expected {expected!r}")


def stack_features(ds: xr.Dataset, features: Sequence[str]) -> xr.DataArray:
    """Feature array (time, state_feature, latitude, longitude) in the given feature order.

    A missing feature raises ``KeyError`` naming it and listing what the data provides;
    wrong or missing units raise ``ValueError``.
    """
    available = features_of(ds)
    missing = [f for f in features if f not in available]
    if missing:
        raise KeyError(
            f"feature(s) {', '.join(missing)} not in the input data; it provides: "
            f"{', '.join(available)}"
        )
    check_units(ds, sorted({parse_feature(f)[0] for f in features}))
    arrays = []
    for feature in features:
        var, level = parse_feature(feature)
        da = ds[var]
        if level is not None:
            da = da.sel(level=level).drop_vars("level")
        if "time" not in da.dims:
            da = da.expand_dims("time")
        arrays.append(da.transpose("time", "latitude", "longitude").astype(np.float32))
    stacked = xr.concat(arrays, dim=FEATURE_DIM, coords="minimal", compat="override")
    stacked = stacked.assign_coords({FEATURE_DIM: list(features)})
    stacked.attrs = {}
    return stacked.transpose("time", FEATURE_DIM, "latitude", "longitude").rename("state")


def compute_stats(states: xr.DataArray) -> xr.Dataset:
    """mllam-data-prep statistics of a stacked training history (consecutive time steps)."""
    if states.sizes["time"] < 2:
        raise ValueError("need at least two time steps to compute tendency statistics")
    reduce_dims = [d for d in states.dims if d != FEATURE_DIM]
    values = states.astype(np.float64)
    diff = values.diff("time")
    stats = xr.Dataset(
        {
            "state__train__mean": values.mean(reduce_dims),
            "state__train__std": values.std(reduce_dims),
            "state__train__diff_mean": diff.mean(reduce_dims),
            "state__train__diff_std": diff.std(reduce_dims),
        }
    )
    for name in ("state__train__std", "state__train__diff_std"):
        stats[name] = np.maximum(stats[name], _MIN_STD)
    return stats.astype(np.float32).reset_coords(drop=True)


def identity_stats(features: Sequence[str]) -> xr.Dataset:
    """Statistics that leave data unchanged (persistence and container models)."""
    coords = {FEATURE_DIM: list(features)}
    zeros = xr.DataArray(np.zeros(len(features), np.float32), dims=FEATURE_DIM, coords=coords)
    ones = xr.ones_like(zeros)
    return xr.Dataset(
        {
            "state__train__mean": zeros,
            "state__train__std": ones,
            "state__train__diff_mean": zeros,
            "state__train__diff_std": ones,
        }
    )


def stats_for(stats: xr.Dataset, features: Sequence[str]) -> xr.Dataset:
    """Statistics reordered to ``features``; ``KeyError`` naming any the stats lack."""
    have = [str(f) for f in stats[FEATURE_DIM].values]
    missing = [f for f in features if f not in have]
    if missing:
        raise KeyError(f"no statistics for feature(s) {', '.join(missing)}; stats cover: {have}")
    absent = [n for n in STAT_NAMES if n not in stats]
    if absent:
        raise KeyError(f"statistics lack variable(s) {', '.join(absent)}")
    return stats[list(STAT_NAMES)].sel({FEATURE_DIM: list(features)})


def standardize(states: xr.DataArray, stats: xr.Dataset) -> xr.DataArray:
    """(x - mean) / std per feature."""
    s = stats_for(stats, [str(f) for f in states[FEATURE_DIM].values])
    out = (states - s["state__train__mean"]) / s["state__train__std"]
    return out.astype(np.float32).rename(states.name)


def destandardize(states: xr.DataArray, stats: xr.Dataset) -> xr.DataArray:
    """mean + std * x per feature (inverse of ``standardize``)."""
    s = stats_for(stats, [str(f) for f in states[FEATURE_DIM].values])
    out = states * s["state__train__std"] + s["state__train__mean"]
    return out.astype(np.float32).rename(states.name)


def unstack_features(states: xr.DataArray) -> xr.Dataset:
    """Canonical dataset from a feature array (inverse of ``stack_features``), CF attrs set."""
    by_var: dict[str, list[tuple[float | None, str]]] = {}
    for feature in (str(f) for f in states[FEATURE_DIM].values):
        var, level = parse_feature(feature)
        by_var.setdefault(var, []).append((level, feature))
    out: dict[str, xr.DataArray] = {}
    for var, items in by_var.items():
        if items[0][0] is None:
            da = states.sel({FEATURE_DIM: items[0][1]}, drop=True)
        else:
            levels = [lev for lev, _ in items]
            da = states.sel({FEATURE_DIM: [f for _, f in items]})
            da = da.rename({FEATURE_DIM: "level"}).assign_coords(
                level=np.asarray(levels).astype(np.int64)
                if all(float(lev).is_integer() for lev in levels)
                else np.asarray(levels)
            )
            # Level goes right after the leading (time/lead_time/member) dims.
            lead = [d for d in da.dims if d not in ("level", "latitude", "longitude")]
            da = da.transpose(*lead, "level", "latitude", "longitude")
        da = da.rename(var)
        da.attrs = {}
        if var in VARIABLES:
            info = VARIABLES[var]
            da.attrs.update(
                units=info.units, standard_name=info.standard_name, long_name=info.long_name
            )
        out[var] = da
    ds = xr.Dataset(out)
    if "level" in ds.coords:
        ds["level"].attrs.update(units="hPa", standard_name="air_pressure")
    return ds


# ---------------------------------------------------------------------------------------------
# forcings: known functions of (time, latitude, longitude) given to the network as inputs

# Solar declination amplitude (degrees) and the day of year of the December solstice offset
# (Cooper 1969: declination = -23.44 cos(2 pi (doy + 10) / 365)).
_OBLIQUITY = 23.44


@dataclass(frozen=True)
class _Clock:
    """One UTC time as the quantities the forcings are made of."""

    hour_utc: float  # hours since 00 UTC, fractional
    year_fraction: float  # (day of year - 1 + hour / 24) / days in the year, in [0, 1)


def _clock(time: Any) -> _Clock:
    ts = pd.Timestamp(time)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    hour = ts.hour + ts.minute / 60.0 + (ts.second + ts.microsecond * 1e-6) / 3600.0
    days_in_year = 366.0 if ts.is_leap_year else 365.0
    return _Clock(hour, (ts.dayofyear - 1 + hour / 24.0) / days_in_year)


def _hour_angle(c: _Clock, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Local solar hour angle (radians, 0 at local noon): local mean solar time = UTC + lon/15.

    One row (1, lon): it does not depend on latitude, so its cosine and sine are computed once
    per longitude and broadcast over the latitudes where they are stored.
    """
    local_hour = c.hour_utc + lon / 15.0
    return (2 * np.pi * (local_hour - 12.0) / 24.0)[None, :]


def _year_angle(c: _Clock, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    return np.full((lat.size, lon.size), 2 * np.pi * c.year_fraction)


def _cos_solar_zenith(c: _Clock, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Cosine of the solar zenith angle (negative at night): sin(lat) sin(decl) + ..."""
    declination = np.deg2rad(-_OBLIQUITY) * np.cos(2 * np.pi * (c.year_fraction + 10.0 / 365.0))
    phi = np.deg2rad(lat)[:, None]
    return np.sin(phi) * np.sin(declination) + np.cos(phi) * np.cos(declination) * np.cos(
        _hour_angle(c, lat, lon)
    )


def _toa_insolation(c: _Clock, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Cosine of the solar zenith angle clipped at 0 (TOA insolation / solar constant)."""
    return np.clip(_cos_solar_zenith(c, lat, lon), 0.0, None)


@dataclass(frozen=True)
class Forcing:
    """One forcing channel: what it is and how to compute it on a grid at one time."""

    name: str
    description: str
    compute: Callable[[_Clock, np.ndarray, np.ndarray], np.ndarray]


FORCINGS: dict[str, Forcing] = {
    f.name: f
    for f in (
        Forcing(
            "cos_local_hour",
            "cosine of the local solar hour angle (UTC hour + longitude/15; 1 at local noon)",
            lambda c, lat, lon: np.cos(_hour_angle(c, lat, lon)),
        ),
        Forcing(
            "sin_local_hour",
            "sine of the local solar hour angle (0 at local noon, -1 at 06 local time)",
            lambda c, lat, lon: np.sin(_hour_angle(c, lat, lon)),
        ),
        Forcing(
            "cos_day_of_year",
            "cosine of 2 pi x fraction of the UTC year (constant in space)",
            lambda c, lat, lon: np.cos(_year_angle(c, lat, lon)),
        ),
        Forcing(
            "sin_day_of_year",
            "sine of 2 pi x fraction of the UTC year (constant in space)",
            lambda c, lat, lon: np.sin(_year_angle(c, lat, lon)),
        ),
        Forcing(
            "cos_solar_zenith",
            "cosine of the solar zenith angle, not clipped (negative at night), as FourCastNet "
            "feeds it: a diurnal wave whose amplitude follows cos(latitude)",
            _cos_solar_zenith,
        ),
        Forcing(
            "toa_insolation",
            "top-of-atmosphere insolation over the solar constant: cosine of the solar "
            "zenith angle clipped at 0 (declination from the day of year)",
            _toa_insolation,
        ),
    )
}
FORCING_NAMES: tuple[str, ...] = tuple(FORCINGS)


def check_forcings(names: Sequence[str]) -> list[str]:
    """The names as a list; ``ValueError`` naming an unknown or repeated one and the valid ones."""
    names = [str(n) for n in names]
    for name in names:
        if name not in FORCINGS:
            raise ValueError(
                f"unknown forcing {name!r}; valid forcings are: {', '.join(FORCING_NAMES)}"
            )
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"forcing(s) {', '.join(map(repr, repeated))} listed more than once")
    return names


def forcing_fields(
    names: Sequence[str],
    time: datetime | np.datetime64 | pd.Timestamp | str,
    latitude: Sequence[float],
    longitude: Sequence[float],
) -> np.ndarray:
    """Forcings at one valid time as float32 ``(len(names), lat, lon)`` (deterministic)."""
    names = check_forcings(names)
    lat = np.asarray(latitude, dtype=np.float64)
    lon = np.asarray(longitude, dtype=np.float64)
    out = np.empty((len(names), lat.size, lon.size), dtype=np.float32)
    if names:
        c = _clock(time)
        for i, name in enumerate(names):
            out[i] = FORCINGS[name].compute(c, lat, lon)
    return out


def forcing_array(
    names: Sequence[str],
    times: Sequence[Any],
    latitude: Sequence[float],
    longitude: Sequence[float],
) -> np.ndarray:
    """Forcings at several valid times as float32 ``(time, len(names), lat, lon)``."""
    lat, lon = np.asarray(latitude), np.asarray(longitude)
    if len(times) == 0:
        return np.empty((0, len(names), lat.size, lon.size), dtype=np.float32)
    return np.stack([forcing_fields(names, t, lat, lon) for t in times])
