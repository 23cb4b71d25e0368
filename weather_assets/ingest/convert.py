"""Conversion of upstream datasets (GRIB via cfgrib, NetCDF, zarr) to the canonical dataset.

Pure functions on xarray objects. Variables are recognised by canonical name, ECMWF/cfgrib
short name or CF long variable names; units must already be the canonical SI units (spelling
variants such as ``m**2 s**-2`` are accepted). Wrong units are refused, not silently
rescaled: geopotential height given for geopotential, or hPa for a pressure, is a data
problem that an operator must see.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from weather_assets.canonical import VARIABLES, cf_attrs

# Source names (cfgrib/ECMWF short names, common NetCDF names) -> canonical names.
VARIABLE_ALIASES = {
    "z": "geopotential",
    "t": "temperature",
    "u": "u_component_of_wind",
    "v": "v_component_of_wind",
    "q": "specific_humidity",
    "t2m": "2m_temperature",
    "2t": "2m_temperature",
    "u10": "10m_u_component_of_wind",
    "10u": "10m_u_component_of_wind",
    "v10": "10m_v_component_of_wind",
    "10v": "10m_v_component_of_wind",
    "msl": "mean_sea_level_pressure",
    "prmsl": "mean_sea_level_pressure",
}
DIM_ALIASES = {
    "isobaricInhPa": "level",
    "pressure_level": "level",
    "plev": "level",
    "number": "member",
    "realization": "member",
    "lat": "latitude",
    "lon": "longitude",
    "valid_time": "time",
}
# Spelling variants of the canonical units.
UNIT_ALIASES = {
    "m**2 s**-2": "m2 s-2",
    "m^2/s^2": "m2 s-2",
    "m2/s2": "m2 s-2",
    "m**2/s**2": "m2 s-2",
    "m s**-1": "m s-1",
    "m/s": "m s-1",
    "m s^-1": "m s-1",
    "kelvin": "K",
    "k": "K",
    "pa": "Pa",
    "kg kg**-1": "kg kg-1",
    "kg/kg": "kg kg-1",
    "1": "kg kg-1",
}
# Units that signal a known mix-up, with the explanation an operator needs.
UNIT_MIXUPS = {
    ("geopotential", "m"): "geopotential height (m), not geopotential (m2 s-2 = g * height)",
    ("geopotential", "gpm"): "geopotential height (gpm), not geopotential (m2 s-2 = g * height)",
    ("mean_sea_level_pressure", "hPa"): "hPa, not Pa",
    ("temperature", "degC"): "degrees Celsius, not K",
    ("2m_temperature", "degC"): "degrees Celsius, not K",
    ("2m_temperature", "C"): "degrees Celsius, not K",
}
# Scalar coordinates cfgrib attaches that the canonical dataset does not keep (a scalar
# pressure level is kept: it becomes a length-1 ``level`` dim, see ``to_canonical``).
_DROP_COORDS = ("step", "surface", "heightAboveGround", "meanSea", "number")

# GRIB ``dataType`` (type of data) values that are an analysis of the state at their time.
ANALYSIS_DATA_TYPES = frozenset({"an", "ia", "oi", "3v", "4v", "4i"})
# Forecasts whose step 0 is the state they start from (taken only where there is no analysis).
INITIAL_STATE_DATA_TYPES = frozenset({"fc", "cf", "pf"})
# What the other common ``dataType`` values are, for error messages.
DATA_TYPE_NAMES = {
    "em": "ensemble mean",
    "es": "ensemble standard deviation",
    "ep": "event probability",
    "ea": "analysis error estimate",
    "ef": "forecast error estimate",
    "cl": "climatology",
    "fa": "forecast accumulation",
    "sv": "singular vector",
}
# Coordinates that give a forecast step or an ensemble member number in NetCDF files.
STEP_NAMES = ("step", "lead_time", "forecast_period")
MEMBER_NAMES = ("number", "realization", "member")


def canonical_units(units: str | None) -> str | None:
    """Canonical spelling of a unit string (unknown spellings are returned unchanged)."""
    if units is None:
        return None
    return UNIT_ALIASES.get(units.strip(), UNIT_ALIASES.get(units.strip().lower(), units.strip()))


def ascending(ds: xr.Dataset, dim: str) -> xr.Dataset:
    """``ds`` ordered by ``dim`` ascending, copying data only when it must be reordered.

    Already strictly ascending: ``ds`` itself. Strictly descending: a reversed view (the
    same result as ``sortby``, which would gather a copy). Anything else: ``sortby``.
    """
    values = ds[dim].values
    if values.size < 2 or bool(np.all(values[1:] > values[:-1])):
        return ds
    if bool(np.all(values[1:] < values[:-1])):
        return ds.isel({dim: slice(None, None, -1)})
    return ds.sortby(dim)


def as_float32(da: xr.DataArray) -> xr.DataArray:
    """``da`` as float32, without copying data that already is.

    The result looks exactly like ``da.astype(np.float32)``: same values and attributes, and
    no encoding of the variable itself (its coordinates keep theirs), so the store written
    from it does not depend on whether a conversion happened.
    """
    if da.dtype != np.float32:
        return da.astype(np.float32)
    out = da.copy(deep=False)
    out.encoding = {}
    return out


def to_canonical(ds: xr.Dataset, source: str) -> xr.Dataset:
    """Rename, check units, order dims and sort latitude ascending; ``source`` names the file.

    Data that already has the canonical dtype and order is not copied (lazily opened data
    stays lazy), so a canonical input costs no more than reading it.

    Raises ValueError naming ``source`` and the variable when units are wrong or missing,
    and when no canonical variable is present.
    """
    ds = ds.drop_vars([c for c in _DROP_COORDS if c in ds.coords and ds[c].ndim == 0])
    # cfgrib analyses carry time (dim) and valid_time (coord, equal for step 0).
    if "valid_time" in ds.coords and "time" in ds.dims:
        ds = ds.drop_vars("valid_time")
    dim_renames = {
        k: v for k, v in DIM_ALIASES.items() if k in ds.variables and v not in ds.variables
    }
    ds = ds.rename(dim_renames)
    var_renames = {k: v for k, v in VARIABLE_ALIASES.items() if k in ds.data_vars}
    ds = ds.rename(var_renames)
    known = [v for v in ds.data_vars if v in VARIABLES]
    if not known:
        raise ValueError(
            f"{source} holds no known variable (found: {', '.join(map(str, ds.data_vars))}); "
            f"expected any of: {', '.join(sorted(VARIABLES))}"
        )
    ds = ds[known]
    if "level" in ds.coords and ds["level"].ndim == 0:
        # A file of one pressure level keeps it: a length-1 ``level`` dim of level variables.
        ds = xr.Dataset(
            {
                name: ds[name].expand_dims("level")
                if VARIABLES[str(name)].has_levels
                else ds[name].drop_vars("level")
                for name in known
            }
        )
    for dim in ("latitude", "longitude", "time"):
        if dim not in ds.dims:
            raise ValueError(
                f"{source} has no {dim!r} dimension (dims: {', '.join(map(str, ds.dims))})"
            )
    for name in known:
        units = canonical_units(ds[name].attrs.get("units"))
        expected = VARIABLES[name].units
        if units == expected:
            continue
        if units is None:
            raise ValueError(
                f"{source}: variable {name!r} has no units attribute; expected {expected!r}"
            )
        why = UNIT_MIXUPS.get((name, units))
        hint = f" (that is {why})" if why else ""
        raise ValueError(
            f"{source}: variable {name!r} has units {units!r}{hint}; expected {expected!r}"
        )
    if "level" in ds.dims:
        level_units = ds["level"].attrs.get("units", "hPa")
        if level_units not in ("hPa", "millibars", "mbar"):
            raise ValueError(f"{source}: pressure levels are in {level_units!r}; expected 'hPa'")
        ds = ascending(ds.assign_coords(level=ds["level"].values.astype(np.int64)), "level")
    if ds["latitude"].size > 1 and ds["latitude"].values[0] > ds["latitude"].values[-1]:
        ds = ds.isel(latitude=slice(None, None, -1))
    order = [d for d in ("member", "time", "level", "latitude", "longitude") if d in ds.dims]
    ds = ds.transpose(*order, ...)
    out = xr.Dataset(
        {str(name): as_float32(ds[name]).assign_attrs(cf_attrs(str(name))) for name in known}
    )
    out["latitude"].attrs.update(units="degrees_north", standard_name="latitude")
    out["longitude"].attrs.update(units="degrees_east", standard_name="longitude")
    if "level" in out.coords:
        out["level"].attrs.update(units="hPa", standard_name="air_pressure")
    out.attrs["source"] = str(source)
    return out


def _hours(coord: xr.DataArray) -> np.ndarray:
    """A step coordinate in hours (timedelta, or numbers in their ``units``, hours if none)."""
    values = np.atleast_1d(coord.values)
    if np.issubdtype(values.dtype, np.timedelta64):
        return values / np.timedelta64(1, "h")
    per_hour = {"minutes": 60.0, "min": 60.0, "seconds": 3600.0, "s": 3600.0, "days": 1 / 24}
    return values.astype(float) / per_hour.get(str(coord.attrs.get("units", "hours")), 1.0)


def select_analysis(ds: xr.Dataset, source: str) -> xr.Dataset:
    """The analysis part of a dataset whose metadata says it may hold forecasts.

    A step coordinate (``step``/``lead_time``/``forecast_period``) must be 0 (a step dim keeps
    only step 0), and a ``GRIB_dataType`` attribute (cfgrib-written NetCDF) must be an
    analysis or a forecast's initial state. Raises ValueError naming ``source``, the
    coordinate or variable and its value otherwise.
    """
    for name in STEP_NAMES:
        if name not in ds.coords:
            continue
        hours = _hours(ds[name])
        if not (hours == 0).any():
            steps = ", ".join(f"{h:g}" for h in hours[:6]) + (" ..." if hours.size > 6 else "")
            raise ValueError(
                f"{source} is a forecast: its {name!r} is {steps} h, not 0 (an analysis)"
            )
        if ds[name].ndim == 1 and ds[name].dims[0] in ds.dims:
            ds = ds.isel({ds[name].dims[0]: int(np.flatnonzero(hours == 0)[0])}, drop=True)
        else:
            ds = ds.drop_vars(name)
    for name, var in ds.data_vars.items():
        data_type = var.attrs.get("GRIB_dataType")
        if data_type and data_type not in ANALYSIS_DATA_TYPES | INITIAL_STATE_DATA_TYPES:
            kind = DATA_TYPE_NAMES.get(data_type, "not a model state")
            raise ValueError(
                f"{source}: variable {name!r} is not an analysis: its GRIB_dataType is "
                f"{data_type!r} ({kind})"
            )
    return ds


def _members_text(members: set[int] | list[int]) -> str:
    """``0..9`` for a run of member numbers, else the numbers listed."""
    ms = sorted(int(m) for m in members)
    if len(ms) > 3 and ms == list(range(ms[0], ms[-1] + 1)):
        return f"{ms[0]}..{ms[-1]}"
    return ", ".join(map(str, ms))


def member_refusal(member: int, members: set[int] | list[int]) -> str:
    """The end of the sentence refusing ``member`` of a source that is not an ensemble."""
    return (
        f"is ensemble member {member} (the file holds members {_members_text(members)}), but "
        "the upstream source is not an ensemble (WXPLAT_UPSTREAM_ENSEMBLE=false), so only "
        "member 0 or an unnumbered field can be its analysis"
    )


def select_members(ds: xr.Dataset, ensemble: bool, source: str) -> xr.Dataset:
    """Ensemble members as a ``member`` dim with their own numbers, only for an ensemble.

    For an ensemble source, a scalar member number becomes a length-1 dim (member 5 stays 5)
    and a file without one is member 0. Otherwise any member other than 0 is refused.
    """
    # A member dim without a coordinate counts its members from 0, as xarray indexes it.
    name = next((n for n in MEMBER_NAMES if n in ds.coords or n in ds.dims), None)
    if name is None:
        return ds.expand_dims(member=[0]) if ensemble else ds
    numbers = np.atleast_1d(ds[name].values).astype(np.int64)
    if ensemble:
        return ds if ds[name].ndim == 1 else ds.expand_dims(name)
    stray = [int(n) for n in numbers if n != 0]
    if stray:
        raise ValueError(
            f"{source}: the data (coordinate {name!r}) "
            f"{member_refusal(stray[0], set(numbers.tolist()))}"
        )
    if ds[name].ndim == 1:
        return ds.isel({ds[name].dims[0]: 0}, drop=True)
    return ds.drop_vars(name)


def select_time(ds: xr.Dataset, analysis_time: np.datetime64, source: str) -> xr.Dataset:
    """The one analysis time of a canonical dataset (keeps a length-1 ``time`` dim).

    Selected with a slice, so in-memory data is a view and lazily opened data is read with
    one contiguous selection (a list index would gather a copy / a point selection).
    """
    t = np.datetime64(analysis_time, "ns")
    times = ds["time"].values.astype("datetime64[ns]")
    at = np.flatnonzero(times == t)
    if at.size == 0:
        have = ", ".join(str(x)[:16] for x in times[:6]) + (" ..." if times.size > 6 else "")
        raise ValueError(f"{source} has no analysis for {str(t)[:16]}; it holds: {have}")
    if at.size > 1:  # a repeated time: label selection says what is wrong with the index
        return ds.sel(time=[t])
    return ds.isel(time=slice(int(at[0]), int(at[0]) + 1))


def subset_domain(ds: xr.Dataset, bbox: dict, resolution: dict, source: str) -> xr.Dataset:
    """Cut a canonical dataset to ``bbox`` and check its grid spacing equals ``resolution``.

    Longitudes are shifted to the bbox's convention ([-180, 180) when ``lon_min`` < 0).
    """
    if resolution.get("units") != "deg":
        raise ValueError(
            f"{source}: regular lat-lon data can only be cut to a resolution in deg, "
            f"not {resolution.get('units')!r}"
        )
    lon = ds["longitude"].values
    if bbox["lon_min"] < 0 and lon.max() > 180:
        ds = ds.assign_coords(longitude=((ds["longitude"] + 180) % 360) - 180).sortby("longitude")
    elif bbox["lon_min"] >= 0 and lon.min() < 0:
        ds = ds.assign_coords(longitude=ds["longitude"] % 360).sortby("longitude")
    eps = 1e-6
    out = ds.sel(
        latitude=slice(bbox["lat_min"] - eps, bbox["lat_max"] + eps),
        longitude=slice(bbox["lon_min"] - eps, bbox["lon_max"] + eps),
    )
    lat, lon = out["latitude"].values, out["longitude"].values
    covered = (
        lat.size > 1
        and lon.size > 1
        and abs(lat[0] - bbox["lat_min"]) < 1e-4
        and abs(lat[-1] - bbox["lat_max"]) < 1e-4
        and abs(lon[0] - bbox["lon_min"]) < 1e-4
        and abs(lon[-1] - bbox["lon_max"]) < 1e-4
    )
    if not covered:
        raise ValueError(
            f"{source}: grid spanning lat {ds['latitude'].values.min()}..{ds['latitude'].values.max()}"
            f", lon {ds['longitude'].values.min()}..{ds['longitude'].values.max()} does not cover "
            f"the domain {bbox} on its grid points"
        )
    dlat, dlon = np.diff(lat), np.diff(lon)
    for name, d, want in (("dy", dlat, resolution["dy"]), ("dx", dlon, resolution["dx"])):
        if not np.allclose(d, want, atol=1e-6):
            raise ValueError(
                f"{source}: grid spacing {name}={float(np.median(d))} deg differs from the "
                f"configured resolution {name}={want} deg"
            )
    return out
