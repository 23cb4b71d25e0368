"""Verify one forecast against the analyses at its valid times, as a tidy table of scores.

The table has one row per (model, analysis_time, region, lead_time, variable, level, metric)
with the score ``value`` and ``n``, the number of grid points where forecast and truth were
both valid (see :mod:`weather_assets.verification.schemas`). Surface fields have ``level`` -1.

Regions (:mod:`weather_assets.verification.regions`): every score is computed over the
``global`` domain and over each region asked for (the verification asset asks for
``tropics`` 20S-20N, ``northern_extratropics`` 20N-90N, ``southern_extratropics`` 90S-20S,
plus the bounding boxes configured with ``WXPLAT_VERIFICATION_REGIONS``). A region's score is the same metric
with the area weights set to zero outside it (forecast and truth set to 0 there, so a NaN
outside a region never reaches its score); ``n`` counts its valid points. A region without
grid points in the domain (the tropics of a European grid) is left out with a note. On a
limited-area grid (projected ``y``/``x``, or latitudes not reaching both poles) the
``boundary_points`` outermost rows and columns, where the lateral boundary conditions drive
the model, are left out of every region, ``global`` included. Tables written before regions
existed have no ``region`` column; :func:`with_region` reads them as ``global``.

Metrics (all latitude-weighted on regular lat-lon grids, from
:mod:`weather_assets.verification.metrics`):

- deterministic forecasts: ``rmse``, ``bias``, ``mae`` and, with a climatology, ``acc``;
- ensembles (a ``member`` dim with at least 2 members): the same four of the ensemble mean
  (so the scorecard compares ensemble-mean RMSE with deterministic RMSE), plus ``crps_fair``,
  ``spread`` and ``spread_skill`` (WB2's sqrt((M+1)/M) * spread / ensemble-mean RMSE).

Bad input fails before any score is computed, naming the problem: a forecast variable the
truth lacks, different levels, grids or units. Leads whose valid time has no analysis are
left out of the table and reported as missing. NaNs are never averaged over silently: by
default a NaN anywhere in a (lead, variable, level) slice makes that score NaN, and ``n``
says how many points were valid; with ``skipna=True`` scores use the valid points only, and
``n`` says how many that was.

Aggregating over a period (:func:`aggregate_scores`) averages per-cycle MSEs before taking
the root for ``rmse`` (and variances for ``spread``), and plain means of ``bias``, ``mae``,
``acc`` and ``crps_fair``; :func:`aggregate_tables` does it for parquet files (the command
``wxplat scores <scores.parquet or a folder of them>... --start ... --end ...``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import xarray as xr

from weather_assets.canonical import VARIABLES
from weather_assets.verification import metrics as m
from weather_assets.verification.regions import (
    DEFAULT_REGIONS,
    Region,
    boundary_mask,
    get_region,
    region_mask,
    region_weights,
)

MEMBER_DIM = m.MEMBER_DIM
SURFACE_LEVEL = -1
KEY_COLUMNS = ("model", "analysis_time", "region", "lead_time", "variable", "level", "metric")
COLUMNS = (*KEY_COLUMNS, "value", "n")
GLOBAL_REGION = "global"
DETERMINISTIC_METRICS = ("rmse", "bias", "mae", "acc")
ENSEMBLE_METRICS = ("crps_fair", "spread", "spread_skill")
METRICS = DETERMINISTIC_METRICS + ENSEMBLE_METRICS
HIGHER_IS_BETTER = ("acc",)  # the metrics where a higher score is better
AGGREGATE_COLUMNS = (
    "model",
    "region",
    "lead_time",
    "variable",
    "level",
    "metric",
    "value",
    "n",
    "cycles",
)
_SPATIAL_CANDIDATES = (("latitude", "longitude"), ("y", "x"))
# Coordinates of two grids closer than this (degrees or metres) are taken as the same grid.
GRID_TOLERANCE = 1e-6


@dataclass(frozen=True)
class Verification:
    """The scores of one forecast and what could not be scored."""

    table: pd.DataFrame
    scored_leads: list[pd.Timedelta]
    missing_leads: list[pd.Timedelta]
    members: int
    notes: list[str] = field(default_factory=list)

    @property
    def nan_rows(self) -> pd.DataFrame:
        """Rows whose value is NaN (some input was missing)."""
        return self.table[self.table["value"].isna()]


# ---------------------------------------------------------------------------------------------
# input checks


def spatial_dims(ds: xr.Dataset | xr.DataArray) -> tuple[str, str]:
    """The spatial dims of a canonical dataset: (latitude, longitude) or (y, x)."""
    for dims in _SPATIAL_CANDIDATES:
        if all(d in ds.dims for d in dims):
            return dims
    raise ValueError(
        f"no spatial dims: expected latitude/longitude or y/x, the data has {list(ds.dims)}"
    )


def _describe_axis(values: np.ndarray) -> str:
    if values.size == 0:
        return "0 points"
    return f"{values.size} points, {values[0]:g} .. {values[-1]:g}"


def check_compatible(forecast: xr.Dataset, truth: xr.Dataset) -> xr.Dataset:
    """Truth restricted to the forecast's variables and levels, on the forecast's grid.

    ValueError naming the problem when a forecast variable is missing from the truth, the
    levels, grids or units differ, or the forecast lacks the ``lead_time``/``time`` dims.
    """
    for dim in ("time", "lead_time"):
        if dim not in forecast.dims:
            raise ValueError(f"the forecast has no {dim!r} dim; it has {list(forecast.dims)}")
    if forecast.sizes["time"] != 1:
        raise ValueError(f"a forecast has one analysis time; this one has {forecast.sizes['time']}")
    missing = [v for v in forecast.data_vars if v not in truth.data_vars]
    if missing:
        raise ValueError(
            f"forecast variable(s) {', '.join(map(str, missing))} are not in the truth, which "
            f"has {', '.join(map(str, truth.data_vars)) or 'no variables'}"
        )
    truth = truth[list(forecast.data_vars)]
    f_dims, t_dims = spatial_dims(forecast), spatial_dims(truth)
    if f_dims != t_dims:
        raise ValueError(f"forecast grid dims {f_dims} differ from truth grid dims {t_dims}")
    for dim in f_dims:
        f_axis = np.asarray(forecast[dim].values, dtype=np.float64)
        t_axis = np.asarray(truth[dim].values, dtype=np.float64)
        if f_axis.shape != t_axis.shape or not np.allclose(
            f_axis, t_axis, rtol=0, atol=GRID_TOLERANCE
        ):
            raise ValueError(
                f"forecast and truth are on different grids: forecast {dim} has "
                f"{_describe_axis(f_axis)}, truth {dim} has {_describe_axis(t_axis)}"
            )
    # Same grid up to rounding: give the truth the forecast's coordinates, so that the
    # metrics' exact alignment holds.
    truth = truth.assign_coords({d: forecast[d] for d in f_dims})
    if "level" in forecast.dims:
        if "level" not in truth.dims:
            raise ValueError("the forecast has pressure levels but the truth has none")
        f_levels = [int(v) for v in forecast["level"].values]
        t_levels = {int(v) for v in truth["level"].values}
        absent = [lev for lev in f_levels if lev not in t_levels]
        if absent:
            raise ValueError(
                f"forecast level(s) {absent} hPa are not in the truth, which has levels "
                f"{sorted(t_levels)}"
            )
        truth = truth.sel(level=forecast["level"].values)
    for name in forecast.data_vars:
        f_has, t_has = "level" in forecast[name].dims, "level" in truth[name].dims
        if f_has != t_has:
            raise ValueError(
                f"variable {name!r} has levels in the {'forecast' if f_has else 'truth'} only"
            )
        f_units, t_units = forecast[name].attrs.get("units"), truth[name].attrs.get("units")
        if f_units is not None and t_units is not None and str(f_units) != str(t_units):
            raise ValueError(
                f"variable {name!r} has units {f_units!r} in the forecast but {t_units!r} in "
                "the truth"
            )
    return truth


def select_truth_member(truth: xr.Dataset, member: int | str = 0) -> xr.Dataset:
    """One truth from an ensemble of analyses: a member (default the control) or ``"mean"``."""
    if MEMBER_DIM not in truth.dims:
        return truth
    if member == "mean":
        return truth.mean(MEMBER_DIM, keep_attrs=True)
    if int(member) not in {int(v) for v in truth[MEMBER_DIM].values}:
        raise ValueError(
            f"truth member {member} is not in the analyses, which have members "
            f"{[int(v) for v in truth[MEMBER_DIM].values]}"
        )
    return truth.sel({MEMBER_DIM: int(member)}, drop=True)


def valid_times(forecast: xr.Dataset) -> pd.DatetimeIndex:
    """Valid times (analysis time + lead time) of the forecast's leads.

    ValueError if a ``valid_time`` coordinate is present and disagrees.
    """
    t0 = pd.Timestamp(forecast["time"].values[0])
    leads = pd.to_timedelta(forecast["lead_time"].values)
    times = pd.DatetimeIndex(t0 + leads)
    if "valid_time" in forecast.coords:
        given = pd.DatetimeIndex(np.ravel(forecast["valid_time"].values))
        if len(given) != len(times) or not (given == times).all():
            raise ValueError(
                f"the forecast's valid_time coordinate {list(given)} is not its analysis time "
                f"{t0} plus its lead times"
            )
    return times


def align_truth(
    forecast: xr.Dataset, truth: xr.Dataset
) -> tuple[xr.Dataset, xr.Dataset, list[pd.Timedelta]]:
    """Forecast and truth on a common ``lead_time`` axis (the leads with an analysis).

    ``truth`` has a ``time`` dim of valid times (any order, any extra times). Returns the
    forecast without its ``time`` dim, the truth indexed by lead time, and the missing leads.
    """
    times = valid_times(forecast)
    leads = pd.to_timedelta(forecast["lead_time"].values)
    available = set(pd.DatetimeIndex(truth["time"].values))
    have = [i for i, t in enumerate(times) if t in available]
    missing = [leads[i] for i in range(len(leads)) if i not in set(have)]
    fc = forecast.isel(time=0, drop=True).isel(lead_time=have)
    fc = fc.drop_vars([c for c in ("valid_time",) if c in fc.coords])
    tr = truth.sel(time=times[have].values)
    tr = tr.rename({"time": "lead_time"}).assign_coords(lead_time=fc["lead_time"].values)
    return fc, tr, missing


# ---------------------------------------------------------------------------------------------
# scoring


def _rows(scores: xr.Dataset, counts: xr.Dataset, metric: str) -> list[dict[str, object]]:
    """Table rows of one metric's per-(lead, level) values and their valid-point counts."""
    rows: list[dict[str, object]] = []
    for name in scores.data_vars:
        values, n = scores[name], counts[name].broadcast_like(scores[name])
        levels = values["level"].values if "level" in values.dims else [None]
        for level in levels:
            v = values.sel(level=level) if level is not None else values
            c = n.sel(level=level) if level is not None else n
            for lead, value, count in zip(
                v["lead_time"].values,
                np.atleast_1d(v.values),
                np.atleast_1d(c.values),
                strict=True,
            ):
                rows.append(
                    {
                        "lead_time": pd.Timedelta(lead),
                        "variable": str(name),
                        "level": SURFACE_LEVEL if level is None else int(level),
                        "metric": metric,
                        "value": float(value),
                        "n": int(count),
                    }
                )
    return rows


def empty_table() -> pd.DataFrame:
    """A scores table without rows, with the schema's dtypes."""
    return pd.DataFrame(
        {
            "model": pd.Series(dtype=object),
            "analysis_time": pd.Series(dtype="datetime64[ns]"),
            "region": pd.Series(dtype=object),
            "lead_time": pd.Series(dtype="timedelta64[ns]"),
            "variable": pd.Series(dtype=object),
            "level": pd.Series(dtype="int64"),
            "metric": pd.Series(dtype=object),
            "value": pd.Series(dtype="float64"),
            "n": pd.Series(dtype="int64"),
        }
    )


def _as_table(
    rows: list[dict[str, object]], model: str, analysis_time: pd.Timestamp
) -> pd.DataFrame:
    """The rows (each with its ``region``) as a table, regions in the order they were scored."""
    if not rows:
        return empty_table()
    df = pd.DataFrame(rows)
    order = {name: i for i, name in enumerate(dict.fromkeys(df["region"]))}
    df["_region_order"] = df["region"].map(order)
    df.insert(0, "analysis_time", pd.Timestamp(analysis_time).as_unit("ns"))
    df.insert(0, "model", model)
    df = df.astype(
        {
            "analysis_time": "datetime64[ns]",
            "lead_time": "timedelta64[ns]",
            "level": "int64",
            "value": "float64",
            "n": "int64",
        }
    )
    df = df.sort_values(["_region_order", "variable", "level", "metric", "lead_time"])
    return df[list(COLUMNS)].reset_index(drop=True)


def _climatology_for(
    climatology: xr.Dataset, fc: xr.Dataset, times: pd.DatetimeIndex, dims: Sequence[Hashable]
) -> tuple[xr.Dataset | None, list[str]]:
    """The climatology on the forecast's lead axis, for the variables it covers, and notes."""
    from weather_assets.verification.climatology import climatology_at

    notes: list[str] = []
    names = [v for v in fc.data_vars if v in climatology.data_vars]
    skipped = [str(v) for v in fc.data_vars if v not in climatology.data_vars]
    if skipped:
        notes.append(f"no climatology for {', '.join(skipped)}: ACC not scored for them")
    if not names:
        return None, notes
    clim = climatology_at(climatology[names], times)
    clim = clim.rename({"time": "lead_time"}).assign_coords(lead_time=fc["lead_time"].values)
    for dim in dims:
        c_axis = np.asarray(clim[dim].values, dtype=np.float64)
        f_axis = np.asarray(fc[dim].values, dtype=np.float64)
        if c_axis.shape != f_axis.shape or not np.allclose(c_axis, f_axis, atol=GRID_TOLERANCE):
            raise ValueError(
                f"the climatology is on another grid than the forecast: climatology {dim} has "
                f"{_describe_axis(c_axis)}, forecast {dim} has {_describe_axis(f_axis)}"
            )
    clim = clim.assign_coords({d: fc[d] for d in dims})
    if "level" in fc.dims and "level" in clim.dims:
        have = {int(v) for v in clim["level"].values}
        want = [int(v) for v in fc["level"].values]
        if not set(want) <= have:
            notes.append(f"climatology lacks levels {sorted(set(want) - have)}: ACC not scored")
            return None, notes
        clim = clim.sel(level=fc["level"].values)
    return clim, notes


def is_limited_area(ds: xr.Dataset | xr.DataArray) -> bool:
    """Whether ``ds`` is on a limited-area grid: projected (``y``/``x``), or a lat-lon grid
    whose latitudes do not reach both poles (within one grid step)."""
    dims = spatial_dims(ds)
    if dims == ("y", "x"):
        return True
    lat = np.asarray(ds["latitude"].values, dtype=np.float64)
    if lat.size < 2:
        return True
    step = float(np.abs(np.diff(lat)).max())
    return bool(lat.min() > -90 + step or lat.max() < 90 - step)


@dataclass(frozen=True)
class ScoringRegion:
    """A region as scored on one grid: its name and weights (None: the plain global ones)."""

    name: str
    mask: xr.DataArray | None  # True inside; None: the whole grid, no boundary zone
    weights: xr.DataArray | None


def scoring_regions(
    ds: xr.Dataset,
    regions: Sequence[str | Region] | None = None,
    boundary_points: int = 0,
) -> tuple[list[ScoringRegion], list[str]]:
    """The regions to score on the grid of ``ds`` (``global`` first, then ``regions``; None:
    the named ones), and notes on those left out: no points in the domain, or no
    latitude/longitude to place them on a projected grid.

    ``boundary_points``: on a limited-area grid (:func:`is_limited_area`), the rows and
    columns at each edge left out of every region.
    """
    wanted = [get_region(r) for r in (DEFAULT_REGIONS if regions is None else regions)]
    named = {r.name: r for r in wanted}
    named.pop(GLOBAL_REGION, None)
    ordered = [get_region(GLOBAL_REGION), *named.values()]
    notes: list[str] = []
    boundary = None
    if boundary_points > 0 and is_limited_area(ds):
        boundary = boundary_mask(ds, width=boundary_points, dims=spatial_dims(ds))
        if not bool(boundary.any()):
            raise ValueError(
                f"a boundary zone of {boundary_points} grid points leaves no interior on this "
                f"grid ({dict((d, ds.sizes[d]) for d in spatial_dims(ds))}); lower "
                "WXPLAT_VERIFICATION_BOUNDARY_POINTS"
            )
        notes.append(f"limited-area grid: {boundary_points} grid points at each edge not scored")
    has_coords = "latitude" in ds.coords and "longitude" in ds.coords
    out: list[ScoringRegion] = []
    for region in ordered:
        if region.name == GLOBAL_REGION and boundary is None:
            out.append(ScoringRegion(region.name, None, m.spatial_weights(ds)))
            continue
        if region.name == GLOBAL_REGION:
            mask = boundary
        elif not has_coords:
            notes.append(f"region {region.name} not scored: the grid has no latitude/longitude")
            continue
        else:
            mask = region_mask(ds, region)
            mask = mask & boundary if boundary is not None else mask
        if not bool(mask.any()):
            notes.append(f"region {region.name} not scored: no grid point of the domain in it")
            continue
        if region.name == GLOBAL_REGION and not has_coords:
            base = m.spatial_weights(ds)
            weights = (xr.ones_like(mask, dtype=np.float64) if base is None else base) * mask
        else:
            weights = region_weights(ds, region, boundary)
        out.append(ScoringRegion(region.name, mask, weights.astype(np.float64)))
    return out, notes


def verify_forecast(
    forecast: xr.Dataset,
    truth: xr.Dataset,
    *,
    model: str,
    climatology: xr.Dataset | None = None,
    truth_member: int | str = 0,
    skipna: bool = False,
    regions: Sequence[str | Region] | None = None,
    boundary_points: int = 0,
) -> Verification:
    """Score one forecast (dims time=1, lead_time, [member], [level], grid) against the truth.

    ``truth`` holds analyses with a ``time`` dim of valid times (a ``member`` dim is reduced
    with :func:`select_truth_member`); ``climatology`` (from
    :func:`weather_assets.verification.climatology.compute_climatology`) enables ACC.
    ``regions``: names or :class:`Region` s scored besides ``global`` (default none: the
    verification asset passes the named ones and the configured boxes);
    ``boundary_points``: the boundary zone of a limited-area grid (module docstring).
    """
    truth = select_truth_member(truth, truth_member)
    truth = check_compatible(forecast, truth)
    analysis_time = pd.Timestamp(forecast["time"].values[0])
    fc, tr, missing = align_truth(forecast, truth)
    scored = [pd.Timedelta(v) for v in fc["lead_time"].values]
    members = int(fc.sizes.get(MEMBER_DIM, 1))
    if MEMBER_DIM in fc.dims and members == 1:
        fc = fc.isel({MEMBER_DIM: 0}, drop=True)
    notes: list[str] = []
    if not scored:
        return Verification(empty_table(), [], missing, members, ["no lead has an analysis yet"])

    dims = spatial_dims(fc)
    areas, region_notes = scoring_regions(fc, regions or [GLOBAL_REGION], boundary_points)
    notes.extend(region_notes)
    ensemble = MEMBER_DIM in fc.dims
    clim = None
    if climatology is not None:
        scored_times = pd.DatetimeIndex(analysis_time + pd.to_timedelta(scored))
        clim, clim_notes = _climatology_for(climatology, fc, scored_times, dims)
        notes.extend(clim_notes)
    else:
        notes.append("no climatology: ACC not scored")
    lazy: dict[tuple[str, str], xr.Dataset] = {}
    for area in areas:
        lazy.update(_region_scores(area, fc, tr, clim, dims, ensemble, skipna))
    # One compute for everything: dask-backed inputs are read once.
    import dask  # here, not at load: only the verification step computes

    results = dict(zip(lazy, dask.compute(*lazy.values()), strict=True))
    rows: list[dict[str, object]] = []
    for area in areas:
        n = results[(area.name, "__n__")]
        if ensemble:
            # From the scores just computed: "rmse" is the ensemble mean's (NaN where exact).
            results[(area.name, "spread_skill")] = m.spread_skill(
                results[(area.name, "spread")], results[(area.name, "rmse")], members
            )
        for metric in METRICS:
            if (area.name, metric) in results:
                rows.extend(
                    {**row, "region": area.name}
                    for row in _rows(results[(area.name, metric)], n, metric)
                )
    table = _as_table(rows, model, analysis_time)
    if missing:
        notes.append("no analysis yet for lead(s) " + ", ".join(format_lead(x) for x in missing))
    points = {
        a.name: math.prod(fc.sizes[d] for d in dims) if a.mask is None else int(a.mask.sum())
        for a in areas
    }
    nan = table[table["value"].isna()]
    full = nan["n"] == nan["region"].map(points)
    holes, undefined = nan[~full], nan[full]
    if len(holes):
        notes.append(
            f"{len(holes)} score(s) are NaN because of missing values in forecast or truth "
            f"(n below the region's grid points): {_labels(holes)}"
        )
    if len(undefined):
        notes.append(
            f"{len(undefined)} score(s) are undefined on complete data (zero variance or zero "
            f"error, e.g. ACC against a climatology equal to the truth): {_labels(undefined)}"
        )
    return Verification(table, scored, missing, members, notes)


def _region_scores(
    area: ScoringRegion,
    fc: xr.Dataset,
    tr: xr.Dataset,
    clim: xr.Dataset | None,
    dims: Sequence[Hashable],
    ensemble: bool,
    skipna: bool,
) -> dict[tuple[str, str], xr.Dataset]:
    """The lazy scores of one region, keyed (region, metric), and its counts (``__n__``)."""
    if area.mask is not None:
        # Zero outside the region, where its weights are zero too: the weighted means are the
        # region's, and a NaN outside it does not reach them.
        fc, tr = fc.where(area.mask, 0.0), tr.where(area.mask, 0.0)
        clim = clim.where(area.mask, 0.0) if clim is not None else None
    weights, kwargs = area.weights, {"skipna": skipna}
    point = fc.mean(MEMBER_DIM, skipna=False) if ensemble else fc
    valid = fc.notnull().all(MEMBER_DIM) if ensemble else fc.notnull()
    inside = valid & tr.notnull()
    if area.mask is not None:
        inside = inside & area.mask
    out = {
        "__n__": inside.sum(list(dims)),
        "rmse": m.rmse(point, tr, weights, dims, **kwargs),
        "bias": m.bias(point, tr, weights, dims, **kwargs),
        "mae": m.mae(point, tr, weights, dims, **kwargs),
    }
    if clim is not None:
        names = list(clim.data_vars)
        out["acc"] = m.acc(point[names], tr[names], clim, weights, dims, **kwargs)
    if ensemble:
        ens = {"member_dim": MEMBER_DIM, **kwargs}
        out["crps_fair"] = m.crps_fair(fc, tr, weights, dims, **ens)
        out["spread"] = m.spread(fc, weights, dims, **ens)
    return {(area.name, metric): value for metric, value in out.items()}


def _labels(rows: pd.DataFrame) -> str:
    """``rmse 2m_temperature, acc geopotential_500hPa`` for the distinct rows given."""
    labels = {
        f"{metric} {feature_label(variable, level)}"
        for metric, variable, level in zip(
            rows["metric"], rows["variable"], rows["level"], strict=True
        )
    }
    return ", ".join(sorted(labels))


def format_lead(lead: timedelta | pd.Timedelta | np.timedelta64) -> str:
    """A lead time as ``+24h`` (or ``+90m`` when not whole hours)."""
    seconds = int(pd.Timedelta(lead).total_seconds())
    if seconds % 3600 == 0:
        return f"+{seconds // 3600}h"
    return f"+{seconds // 60}m"


def feature_label(variable: str, level: int) -> str:
    """``geopotential_500hPa`` or ``2m_temperature`` (the model channel name)."""
    return variable if level == SURFACE_LEVEL else f"{variable}_{level}hPa"


# ---------------------------------------------------------------------------------------------
# units and headline scores

# Metrics without units (a correlation, a ratio); the others are in the variable's units,
# except ``mse``-type scores (none stored today), in its units squared.
DIMENSIONLESS_METRICS = ("acc", "spread_skill")
SQUARED_METRICS = ("mse",)
DIMENSIONLESS = "1"  # the CF units string of a dimensionless quantity

# The scores shown as numbers per cycle and as trends over analysis time, when present:
# (metric, variable, level), at these leads.
HEADLINES: tuple[tuple[str, str, int], ...] = (
    ("rmse", "geopotential", 500),
    ("rmse", "temperature", 850),
    ("rmse", "2m_temperature", -1),
    ("rmse", "mean_sea_level_pressure", -1),
    ("acc", "geopotential", 500),
    ("crps_fair", "geopotential", 500),
    ("crps_fair", "temperature", 850),
    ("spread_skill", "geopotential", 500),
    ("spread_skill", "temperature", 850),
)
HEADLINE_LEADS = (timedelta(hours=24), timedelta(hours=72), timedelta(hours=120))

_UNIT_TOKEN = re.compile(r"([^\s\d+-]+)([+-]?\d+)?")


def square_units(units: str) -> str:
    """CF units squared: ``m s-1`` -> ``m2 s-2``, ``K`` -> ``K2``, ``1`` -> ``1``."""
    if units.strip() in ("", DIMENSIONLESS):
        return DIMENSIONLESS
    out = []
    for token in units.split():
        match = _UNIT_TOKEN.fullmatch(token)
        if match is None:
            raise ValueError(f"cannot square the units {units!r}: unexpected {token!r}")
        symbol, exponent = match[1], int(match[2] or 1)
        out.append(f"{symbol}{2 * exponent}")
    return " ".join(out)


def score_units(metric: str, variable: str) -> str:
    """CF units of a score: the variable's (``VARIABLES[...].units``), squared for MSE-type
    metrics, ``1`` for dimensionless ones (ACC, spread/skill); ``?`` for unknown variables."""
    if metric in DIMENSIONLESS_METRICS:
        return DIMENSIONLESS
    info = VARIABLES.get(variable)
    if info is None:
        return "?"
    return square_units(info.units) if metric in SQUARED_METRICS else info.units


# ---------------------------------------------------------------------------------------------
# aggregation over a period


def _utc_naive(t: datetime | str | pd.Timestamp | np.datetime64) -> pd.Timestamp:
    """A time as a naive UTC timestamp (partition keys, ISO strings, aware datetimes)."""
    if isinstance(t, str):
        from weather_assets.paths import parse_analysis_time

        try:
            t = parse_analysis_time(t)
        except ValueError:
            t = pd.Timestamp(t)
    ts = pd.Timestamp(t)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts.as_unit("ns")


def _root_mean_square(values: pd.Series) -> float:
    return float(np.sqrt(np.mean(np.square(values.to_numpy(dtype=np.float64)))))


def with_region(table: pd.DataFrame) -> pd.DataFrame:
    """The table with a ``region`` column: a table from before regions is all ``global``."""
    if "region" in table.columns:
        return table
    out = table.assign(region=GLOBAL_REGION)
    first = [c for c in COLUMNS if c in out.columns]
    return out[first + [c for c in out.columns if c not in first]]


def global_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The ``global`` rows of a scores table (all of a table from before regions)."""
    if "region" not in table.columns:
        return table
    return table[table["region"] == GLOBAL_REGION]


def in_window(
    table: pd.DataFrame,
    start: datetime | str | pd.Timestamp | None = None,
    end: datetime | str | pd.Timestamp | None = None,
) -> pd.DataFrame:
    """The rows with ``start <= analysis_time <= end`` (either end open if None)."""
    df = table
    if start is not None:
        df = df[df["analysis_time"] >= _utc_naive(start)]
    if end is not None:
        df = df[df["analysis_time"] <= _utc_naive(end)]
    return df


def aggregate_scores(
    table: pd.DataFrame,
    start: datetime | str | pd.Timestamp | None = None,
    end: datetime | str | pd.Timestamp | None = None,
) -> pd.DataFrame:
    """Scores over the cycles with ``start <= analysis_time <= end`` (either end open if None).

    One row per (model, lead_time, variable, level, metric): ``rmse`` and ``spread`` are the
    root of the mean per-cycle square (MSE and ensemble variance averaged before the root),
    ``spread_skill`` is recomputed from those, the others are means. A NaN in any cycle makes
    the aggregate NaN (never averaged away); ``n`` sums the valid points, ``cycles`` counts
    the cycles. Per region (a table without ``region`` is ``global``).
    """
    df = in_window(with_region(table), start, end)
    keys = ["model", "region", "lead_time", "variable", "level", "metric"]
    if df.empty:
        return pd.DataFrame(columns=list(AGGREGATE_COLUMNS)).astype(
            {"lead_time": "timedelta64[ns]", "level": "int64", "value": "float64"}
        )
    rows = []
    for key, group in df.groupby(keys, sort=True):
        metric = key[-1]
        values = group["value"]
        if metric in ("rmse", "spread"):
            value = _root_mean_square(values)
        else:
            value = float(values.to_numpy(dtype=np.float64).mean())
        rows.append(
            {
                **dict(zip(keys, key, strict=True)),
                "value": value,
                "n": int(group["n"].sum()),
                "cycles": int(group["analysis_time"].nunique()),
            }
        )
    out = pd.DataFrame(rows)
    out = _recompute_spread_skill(df, out, keys)
    return out[list(AGGREGATE_COLUMNS)].reset_index(drop=True)


def _recompute_spread_skill(
    table: pd.DataFrame, aggregated: pd.DataFrame, keys: list[str]
) -> pd.DataFrame:
    """Spread/skill over a period: :func:`metrics.spread_skill` of the aggregated scores.

    The tables do not hold the ensemble size M; it is recovered from each cycle's three
    scores (spread_skill * rmse / spread = sqrt((M+1)/M)).
    """
    if not (aggregated["metric"] == "spread_skill").any():
        return aggregated
    ids = [k for k in keys if k != "metric"]
    per_cycle = table.set_index([*ids, "analysis_time", "metric"])["value"].unstack("metric")
    if not {"spread", "rmse", "spread_skill"} <= set(per_cycle.columns):
        return aggregated
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = per_cycle["spread_skill"] * per_cycle["rmse"] / per_cycle["spread"]
        members = 1.0 / (factor**2 - 1.0)
    # Cycles whose ratio is undefined (NaN) say nothing about M; the others agree.
    members = members.groupby(level=ids).median().round()
    wide = aggregated.set_index([*ids, "metric"])["value"].unstack("metric")
    ratio = m.spread_skill(wide["spread"], wide["rmse"], members).rename("ratio")
    merged = aggregated.merge(ratio.reset_index(), on=ids, how="left")
    is_ratio = merged["metric"] == "spread_skill"
    merged.loc[is_ratio, "value"] = merged.loc[is_ratio, "ratio"]
    return merged.drop(columns="ratio")


# ---------------------------------------------------------------------------------------------
# reading tables


def read_tables(locations: Sequence[str], storage_options: dict | None = None) -> pd.DataFrame:
    """Concatenate scores tables from parquet files or folders (searched for ``*.parquet``)."""
    import fsspec

    frames = []
    for location in locations:
        fs, path = fsspec.core.url_to_fs(location, **(storage_options or {}))
        if not fs.exists(path):
            raise FileNotFoundError(f"no scores tables at {location}: it does not exist")
        files = sorted(fs.glob(f"{path.rstrip('/')}/**/*.parquet")) if fs.isdir(path) else [path]
        for file in files:
            with fs.open(file, "rb") as fh:
                frames.append(pd.read_parquet(fh))
    if not frames:
        raise FileNotFoundError(f"no scores tables (*.parquet) at {', '.join(locations)}")
    return pd.concat([with_region(f) for f in frames], ignore_index=True)


def aggregate_tables(
    locations: Sequence[str],
    start: datetime | str | pd.Timestamp | None = None,
    end: datetime | str | pd.Timestamp | None = None,
    storage_options: dict | None = None,
) -> pd.DataFrame:
    """:func:`aggregate_scores` of the tables in parquet files or folders (:func:`read_tables`)."""
    return aggregate_scores(read_tables(locations, storage_options), start, end)


def format_aggregate(aggregate: pd.DataFrame) -> str:
    """An aggregate as a markdown table (plain text without ``tabulate``), leads as ``+24h``."""
    shown = aggregate.assign(lead_time=aggregate["lead_time"].map(format_lead))
    try:
        return shown.to_markdown(index=False)
    except ImportError:  # pandas needs the optional tabulate for markdown
        return shown.to_string(index=False)
