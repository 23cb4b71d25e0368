"""The canonical gridded dataset: variable names, units and layout every part agrees on.

Names follow WeatherBench 2; units are SI with CF ``units``/``standard_name``/``long_name``
attributes. Dims are ``time``, optional ``level`` (hPa, descending pressure = ascending height
is *not* assumed: levels are sorted ascending in hPa), ``latitude`` (ascending, south to north)
and ``longitude`` (ascending, degrees east in [0, 360) or [-180, 180) as the source gives).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the tables are plain data: loading the code location needs no xarray
    import xarray as xr

SPATIAL_DIMS = ("latitude", "longitude")


@dataclass(frozen=True)
class VariableInfo:
    """CF metadata and plausible physical range of one canonical variable."""

    units: str
    standard_name: str
    long_name: str
    valid_min: float
    valid_max: float
    has_levels: bool


VARIABLES: dict[str, VariableInfo] = {
    "2m_temperature": VariableInfo(
        "K", "air_temperature", "2 metre temperature", 180.0, 340.0, False
    ),
    "10m_u_component_of_wind": VariableInfo(
        "m s-1", "eastward_wind", "10 metre U wind component", -100.0, 100.0, False
    ),
    "10m_v_component_of_wind": VariableInfo(
        "m s-1", "northward_wind", "10 metre V wind component", -100.0, 100.0, False
    ),
    "mean_sea_level_pressure": VariableInfo(
        "Pa", "air_pressure_at_mean_sea_level", "Mean sea level pressure", 85000.0, 110000.0, False
    ),
    "geopotential": VariableInfo("m2 s-2", "geopotential", "Geopotential", -5000.0, 350000.0, True),
    "temperature": VariableInfo("K", "air_temperature", "Temperature", 160.0, 340.0, True),
    "u_component_of_wind": VariableInfo(
        "m s-1", "eastward_wind", "U component of wind", -150.0, 150.0, True
    ),
    "v_component_of_wind": VariableInfo(
        "m s-1", "northward_wind", "V component of wind", -150.0, 150.0, True
    ),
    "specific_humidity": VariableInfo(
        "kg kg-1", "specific_humidity", "Specific humidity", 0.0, 0.05, True
    ),
}


def cf_attrs(name: str) -> dict[str, str]:
    """CF attributes (units, standard_name, long_name) of a canonical variable."""
    try:
        info = VARIABLES[name]
    except KeyError:
        raise KeyError(
            f"unknown variable {name!r}; canonical variables are: {', '.join(sorted(VARIABLES))}"
        ) from None
    return {"units": info.units, "standard_name": info.standard_name, "long_name": info.long_name}


def feature_name(variable: str, level: int | float | None = None) -> str:
    """Name of one model input/output channel: ``2m_temperature`` or ``geopotential_500hPa``."""
    if level is None:
        return variable
    return f"{variable}_{int(level) if float(level).is_integer() else level}hPa"


def features_of(ds: xr.Dataset) -> list[str]:
    """All channel names of a canonical dataset, in the dataset's variable and level order."""
    names: list[str] = []
    for var, da in ds.data_vars.items():
        if "level" in da.dims:
            names.extend(feature_name(str(var), lev) for lev in da["level"].values)
        else:
            names.append(str(var))
    return names
