"""Stack canonical datasets into feature tensors and standardize them.

Statistics follow mllam-data-prep: ``state__train__mean``/``state__train__std`` of the state
and ``state__train__diff_mean``/``state__train__diff_std`` of its one-step tendencies
``x[t+1] - x[t]``, each along a ``state_feature`` dimension. Statistics are unweighted over
time, latitude and longitude, as mllam-data-prep computes them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import xarray as xr

from weather_assets.canonical import VARIABLES, feature_name

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


def _available_features(ds: xr.Dataset) -> list[str]:
    names: list[str] = []
    for var, da in ds.data_vars.items():
        if "level" in da.dims:
            names.extend(feature_name(str(var), lev) for lev in da["level"].values)
        else:
            names.append(str(var))
    return names


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
    available = _available_features(ds)
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
