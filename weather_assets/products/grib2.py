"""A canonical forecast written as GRIB2 with ecCodes: one message per (time, member, lead,
variable, level).

Every canonical variable has a fixed WMO encoding (:data:`PARAMETERS`): discipline, parameter
category and number (GRIB2 code table 4.2) and the type and value of its fixed surface (code
table 4.5: 100 isobaric surface with the level in Pa, 103 height above ground in m, 101 mean
sea level). ecCodes derives the short name and paramId from these keys, so cfgrib reads the
file back under the usual names (``t2m``, ``u10``, ``v10``, ``msl``, ``z``, ``t``, ``u``,
``v``, ``q``).

Sections written:

- section 1: ``centre``/``subCentre`` (attrs ``centre``/``sub_centre``, default 255 =
  missing: the platform is no WMO centre), reference time = analysis time
  (``significanceOfReferenceTime`` 1, start of forecast), ``productionStatusOfProcessedData``
  (attr ``production_status``, default 0 operational), ``typeOfProcessedData`` 1 forecast,
  or 5 control and perturbed forecast for every member of an ensemble (ecCodes dataType
  ``cp``: 3 and 4 would make cfgrib split the control from the other members).
- section 3: template 3.0, regular latitude-longitude on a sphere of radius 6371229 m
  (``shapeOfTheEarth`` 6); the scanning mode follows the data's order (``jScansPositively``
  1 for south-to-north latitudes as in the canonical dataset, 0 for north-to-south;
  ``iScansNegatively`` 1 for descending longitudes), so values are written as they lie.
- section 4: template 4.0 (deterministic: the dataset has no ``member`` dim) or 4.1 (ensemble:
  ``perturbationNumber`` = member, ``numberOfForecastsInEnsemble`` = members, member 0 the
  unperturbed control), forecast step in hours (minutes when a lead time is not a whole
  hour), ``typeOfGeneratingProcess`` 2 forecast / 4 ensemble forecast,
  ``generatingProcessIdentifier`` (attr ``generating_process_identifier``, else a stable
  number 1..254 derived from ``model`` and ``artifact_version``).
- section 5: CCSDS (``grid_ccsds``, lossless coding of the scaled integers) or simple packing
  at ``bits_per_value`` bits (default 16): a value is off by at most
  ``(max - min) / (2**bits_per_value - 1)`` of its field, plus float32 rounding of the
  reference value. Missing values (NaN) are written through a bitmap (section 6).

GRIB2 has no portable place for free text: the section 2 local definitions ecCodes can write
belong to particular centres (ECMWF's needs centre 98). The model, artifact version and every
other attribute therefore go to a JSON sidecar ``<file>.json`` next to the GRIB file, with the
file's sha256, the ``generatingProcessIdentifier`` it maps to and the encoding settings.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from weather_assets.canonical import VARIABLES

# Code table 4.5 (type of fixed surface).
ISOBARIC = 100
MEAN_SEA = 101
HEIGHT_ABOVE_GROUND = 103
LEVEL_TYPES = {
    ISOBARIC: "isobaricInhPa",
    MEAN_SEA: "meanSea",
    HEIGHT_ABOVE_GROUND: "heightAboveGround",
}

# WMO tables version the files declare (every parameter used exists since version 4); pinned so
# that the bytes do not change with the installed ecCodes, lowered only if that one is older.
TABLES_VERSION = 31
EARTH_RADIUS_SHAPE = 6  # code table 3.2: sphere of radius 6371229 m
MISSING_VALUE = 9.999e20  # fill for NaN under the bitmap; outside every canonical range
PACKINGS = {"ccsds": "grid_ccsds", "simple": "grid_simple"}


@dataclass(frozen=True)
class GribParameter:
    """The GRIB2 encoding of one canonical variable (and what ecCodes calls it)."""

    discipline: int
    category: int
    number: int
    level_type: int  # code table 4.5
    height_m: int | None  # fixed height of a heightAboveGround variable
    short_name: str  # ecCodes shortName
    param_id: int  # ecCodes paramId
    cf_var_name: str  # the variable name cfgrib gives it

    @property
    def type_of_level(self) -> str:
        return LEVEL_TYPES[self.level_type]


PARAMETERS: dict[str, GribParameter] = {
    "2m_temperature": GribParameter(0, 0, 0, HEIGHT_ABOVE_GROUND, 2, "2t", 167, "t2m"),
    "10m_u_component_of_wind": GribParameter(0, 2, 2, HEIGHT_ABOVE_GROUND, 10, "10u", 165, "u10"),
    "10m_v_component_of_wind": GribParameter(0, 2, 3, HEIGHT_ABOVE_GROUND, 10, "10v", 166, "v10"),
    # Pressure (0/3/0) at mean sea level, as ECMWF and ERA5 write it (ecCodes "msl", 151);
    # the alternative 0/3/1 "pressure reduced to MSL" reads as "prmsl".
    "mean_sea_level_pressure": GribParameter(0, 3, 0, MEAN_SEA, None, "msl", 151, "msl"),
    "geopotential": GribParameter(0, 3, 4, ISOBARIC, None, "z", 129, "z"),
    "temperature": GribParameter(0, 0, 0, ISOBARIC, None, "t", 130, "t"),
    "u_component_of_wind": GribParameter(0, 2, 2, ISOBARIC, None, "u", 131, "u"),
    "v_component_of_wind": GribParameter(0, 2, 3, ISOBARIC, None, "v", 132, "v"),
    "specific_humidity": GribParameter(0, 1, 0, ISOBARIC, None, "q", 133, "q"),
}


def sidecar_path(path: str | os.PathLike[str]) -> Path:
    """Where the JSON sidecar of a GRIB2 product file lives: ``<file>.json``."""
    p = Path(path)
    return p.with_name(p.name + ".json")


def generating_process_identifier(attrs: Mapping[str, str]) -> int:
    """The section 4 ``generatingProcessIdentifier`` (0..254) for a model and artifact version.

    ``generating_process_identifier`` in ``attrs`` wins; otherwise a stable number 1..254
    from ``model`` and ``artifact_version`` (the sidecar records which pair it stands for).
    """
    given = attrs.get("generating_process_identifier")
    if given is not None:
        value = int(given)
        if not 0 <= value <= 254:
            raise ValueError(f"generating_process_identifier must be in 0..254, got {value}")
        return value
    key = f"{attrs.get('model', '')}:{attrs.get('artifact_version', '')}".encode()
    return 1 + int.from_bytes(hashlib.sha256(key).digest()[:4], "big") % 254


def _regular_axis(values: np.ndarray, name: str) -> float:
    """The constant step of a 1-D coordinate (negative when descending)."""
    if values.ndim != 1 or values.size < 2:
        raise ValueError(f"{name} must be a 1-D coordinate with at least 2 points")
    steps = np.diff(values.astype(np.float64))
    step = float(steps.mean())
    if step == 0 or not np.allclose(steps, step, rtol=0, atol=1e-6 * max(abs(step), 1e-12) + 1e-9):
        raise ValueError(
            f"{name} is not regularly spaced (steps {steps.min():g} .. {steps.max():g}); "
            "GRIB2 template 3.0 needs a regular latitude-longitude grid"
        )
    return step


def _check(forecast: xr.Dataset) -> None:
    """Refuse, by name, what cannot be written as canonical GRIB2."""
    unknown = [str(v) for v in forecast.data_vars if v not in PARAMETERS]
    if unknown:
        raise ValueError(
            f"no GRIB2 encoding for variables {unknown}; canonical variables are: "
            f"{', '.join(sorted(PARAMETERS))}"
        )
    if not forecast.data_vars:
        raise ValueError("the forecast holds no variable")
    allowed = {"time", "lead_time", "member", "level", "latitude", "longitude"}
    for name, da in forecast.data_vars.items():
        extra = set(map(str, da.dims)) - allowed
        if extra or not {"time", "lead_time", "latitude", "longitude"} <= set(map(str, da.dims)):
            raise ValueError(
                f"{name} has dims {da.dims}; a canonical forecast has (time, lead_time, "
                "[member], [level], latitude, longitude)"
            )
        info = VARIABLES[str(name)]
        if info.has_levels != ("level" in da.dims):
            want = "needs" if info.has_levels else "must not have"
            raise ValueError(f"{name} {want} a level dim")
        units = da.attrs.get("units")
        if units is not None and units != info.units:
            raise ValueError(f"{name} is in {units!r}; GRIB2 expects canonical {info.units!r}")


def _whole_minutes(td: np.timedelta64, what: str) -> int:
    seconds = td / np.timedelta64(1, "s")
    if seconds < 0 or seconds % 60:
        raise ValueError(f"{what} {td} is not a non-negative whole number of minutes")
    return int(seconds // 60)


def _base_handle(forecast: xr.Dataset, attrs: Mapping[str, str], packing: str, bits: int) -> int:
    """A GRIB2 handle with sections 1, 3 and 5 set for the forecast's grid."""
    import eccodes

    lat = np.asarray(forecast["latitude"].values, dtype=np.float64)
    lon = np.asarray(forecast["longitude"].values, dtype=np.float64)
    dlat, dlon = _regular_axis(lat, "latitude"), _regular_axis(lon, "longitude")
    h = eccodes.codes_grib_new_from_samples("GRIB2")
    latest = int(eccodes.codes_get(h, "tablesVersionLatest"))
    keys: list[tuple[str, Any]] = [
        ("centre", int(attrs.get("centre", 255))),
        ("subCentre", int(attrs.get("sub_centre", 0))),
        ("tablesVersion", min(TABLES_VERSION, latest)),
        ("localTablesVersion", 0),
        ("significanceOfReferenceTime", 1),
        ("productionStatusOfProcessedData", int(attrs.get("production_status", 0))),
        ("gridDefinitionTemplateNumber", 0),
        ("shapeOfTheEarth", EARTH_RADIUS_SHAPE),
        ("Ni", lon.size),
        ("Nj", lat.size),
        ("iScansNegatively", int(dlon < 0)),
        ("jScansPositively", int(dlat > 0)),
        ("jPointsAreConsecutive", 0),
        ("latitudeOfFirstGridPointInDegrees", float(lat[0])),
        ("longitudeOfFirstGridPointInDegrees", float(lon[0] % 360)),
        ("latitudeOfLastGridPointInDegrees", float(lat[-1])),
        ("longitudeOfLastGridPointInDegrees", float(lon[-1] % 360)),
        ("ijDirectionIncrementGiven", 1),
        ("iDirectionIncrementInDegrees", abs(dlon)),
        ("jDirectionIncrementInDegrees", abs(dlat)),
        ("packingType", PACKINGS[packing]),
        ("bitsPerValue", bits),
    ]
    try:
        for key, value in keys:
            eccodes.codes_set(h, key, value)
    except Exception:
        eccodes.codes_release(h)
        raise
    return h


def _fixed_surface(h: int, param: GribParameter, level: float | None) -> None:
    import eccodes

    eccodes.codes_set(h, "typeOfFirstFixedSurface", param.level_type)
    if param.level_type == ISOBARIC:
        if level is None:
            raise ValueError(f"{param.short_name} is on pressure levels but has no level")
        pa = float(level) * 100.0
        if pa <= 0 or abs(pa - round(pa)) > 1e-6:
            raise ValueError(f"level {level} hPa is not a positive whole number of Pa")
        eccodes.codes_set(h, "scaleFactorOfFirstFixedSurface", 0)
        eccodes.codes_set(h, "scaledValueOfFirstFixedSurface", int(round(pa)))
    elif param.height_m is not None:
        eccodes.codes_set(h, "scaleFactorOfFirstFixedSurface", 0)
        eccodes.codes_set(h, "scaledValueOfFirstFixedSurface", param.height_m)
    else:
        eccodes.codes_set_missing(h, "scaleFactorOfFirstFixedSurface")
        eccodes.codes_set_missing(h, "scaledValueOfFirstFixedSurface")
    eccodes.codes_set(h, "typeOfSecondFixedSurface", 255)
    eccodes.codes_set_missing(h, "scaleFactorOfSecondFixedSurface")
    eccodes.codes_set_missing(h, "scaledValueOfSecondFixedSurface")


def _set_values(h: int, field: np.ndarray) -> None:
    import eccodes

    values = np.asarray(field, dtype=np.float64).ravel()
    missing = ~np.isfinite(values)
    if missing.any():
        eccodes.codes_set(h, "bitmapPresent", 1)
        eccodes.codes_set(h, "missingValue", MISSING_VALUE)
        values = np.where(missing, MISSING_VALUE, values)
    eccodes.codes_set_values(h, values)


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_grib2(
    forecast: xr.Dataset,
    path: str | os.PathLike[str],
    *,
    attrs: Mapping[str, str],
    packing: str = "ccsds",
    bits_per_value: int = 16,
) -> Path:
    """Write a canonical forecast as GRIB2 at ``path`` and its metadata at ``<path>.json``.

    ``forecast`` has per variable the dims (time, lead_time, [member], [level], latitude,
    longitude) with 1-D regular ``latitude``/``longitude`` and canonical units; ``attrs``
    (string values) names what produced it: ``model``, ``artifact_version`` and optionally
    ``generating_process_identifier``, ``centre``, ``sub_centre``, ``production_status``; all
    of them are copied to the sidecar. Messages come in the order time, member, lead time,
    variable (dataset order), level (dataset order). The file and the sidecar are each
    written to a temporary name and moved into place, so a reader never sees half a file.
    """
    import eccodes

    if packing not in PACKINGS:
        raise ValueError(f"packing must be one of {sorted(PACKINGS)}, got {packing!r}")
    if not 1 <= bits_per_value <= 32:
        raise ValueError(f"bits_per_value must be in 1..32, got {bits_per_value}")
    _check(forecast)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ensemble = "member" in forecast.dims
    numbers = [int(m) for m in forecast["member"].values] if ensemble else []
    if len(set(numbers)) != len(numbers) or not all(0 <= m <= 254 for m in numbers):
        raise ValueError(f"member numbers must be distinct and in 0..254, got {numbers}")
    members: list[int | None] = list(numbers) if ensemble else [None]
    n_members = int(attrs.get("number_of_forecasts_in_ensemble", len(members)))
    if ensemble and not max(numbers) < n_members <= 255:
        raise ValueError(
            f"numberOfForecastsInEnsemble {n_members} must exceed the highest member "
            f"number {max(numbers)} and be at most 255"
        )
    gpi = generating_process_identifier(attrs)
    leads = forecast["lead_time"].values.astype("timedelta64[s]")
    lead_minutes = [_whole_minutes(lt, "lead time") for lt in leads]
    hourly = all(m % 60 == 0 for m in lead_minutes)

    reference = [_reference_time(t) for t in forecast["time"].values]
    base = _base_handle(forecast, attrs, packing, bits_per_value)
    count = 0
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            for cell in _cells(forecast, members):
                h = eccodes.codes_clone(base)
                try:
                    _set_message(
                        h,
                        cell,
                        reference=reference[cell.time_index],
                        minutes=lead_minutes[cell.lead_index],
                        hourly=hourly,
                        n_members=n_members,
                        gpi=gpi,
                    )
                    _set_values(h, cell.values())
                    out.write(eccodes.codes_get_message(h))
                finally:
                    eccodes.codes_release(h)
                count += 1
        sha256 = hashlib.sha256(Path(tmp).read_bytes()).hexdigest()
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    finally:
        eccodes.codes_release(base)

    sidecar = {
        "format": "GRIB2",
        "file": path.name,
        "sha256": sha256,
        "messages": count,
        "attrs": {str(k): str(v) for k, v in attrs.items()},
        "generatingProcessIdentifier": gpi,
        "centre": int(attrs.get("centre", 255)),
        "productDefinitionTemplateNumber": 1 if ensemble else 0,
        "numberOfForecastsInEnsemble": n_members if ensemble else None,
        "packingType": PACKINGS[packing],
        "bitsPerValue": bits_per_value,
        "stepUnits": "h" if hourly else "m",
        "parameters": {
            str(v): {
                "shortName": PARAMETERS[str(v)].short_name,
                "paramId": PARAMETERS[str(v)].param_id,
                "typeOfLevel": PARAMETERS[str(v)].type_of_level,
            }
            for v in forecast.data_vars
        },
    }
    # The sidecar lands first, then the file; its sha256 tells a reader whether they match.
    try:
        _atomic_write(sidecar_path(path), (json.dumps(sidecar, indent=2) + "\n").encode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


@dataclass(frozen=True)
class _Cell:
    """One message's worth of a forecast: a variable at one time, member, lead and level."""

    data: xr.DataArray  # (latitude, longitude), lazily indexed
    param: GribParameter
    time_index: int
    lead_index: int
    member: int | None  # None: deterministic (template 4.0)
    level: float | None  # hPa, None for a single-level variable

    def values(self) -> np.ndarray:
        return np.asarray(self.data.transpose("latitude", "longitude").values)


def _cells(forecast: xr.Dataset, members: list[int | None]) -> Iterator[_Cell]:
    """Every (time, member, lead, variable, level) of the forecast, in message order."""
    for ti in range(forecast.sizes["time"]):
        for mi, member in enumerate(members):
            for li in range(forecast.sizes["lead_time"]):
                for name, da in forecast.data_vars.items():
                    sel = {"time": ti, "lead_time": li} | ({} if member is None else {"member": mi})
                    cell = da.isel(sel)
                    levels = cell["level"].values if "level" in cell.dims else [None]
                    for ki, level in enumerate(levels):
                        yield _Cell(
                            data=cell if level is None else cell.isel(level=ki),
                            param=PARAMETERS[str(name)],
                            time_index=ti,
                            lead_index=li,
                            member=member,
                            level=None if level is None else float(level),
                        )


def _reference_time(t: np.datetime64) -> tuple[int, int]:
    """ecCodes ``dataDate`` (YYYYMMDD) and ``dataTime`` (HHMM) of an analysis time."""
    stamp = str(np.datetime64(t, "s"))  # YYYY-MM-DDThh:mm:ss
    if not stamp.endswith(":00"):
        raise ValueError(f"analysis time {stamp} is not a whole minute")
    return int(stamp[:10].replace("-", "")), int(stamp[11:16].replace(":", ""))


def _set_message(
    h: int,
    cell: _Cell,
    *,
    reference: tuple[int, int],
    minutes: int,
    hourly: bool,
    n_members: int,
    gpi: int,
) -> None:
    """Set sections 0, 1 and 4 of one message."""
    import eccodes

    param, member = cell.param, cell.member
    eccodes.codes_set(h, "discipline", param.discipline)
    eccodes.codes_set(h, "dataDate", reference[0])
    eccodes.codes_set(h, "dataTime", reference[1])
    if member is None:
        eccodes.codes_set(h, "typeOfProcessedData", 1)  # forecast product
        eccodes.codes_set(h, "productDefinitionTemplateNumber", 0)
        eccodes.codes_set(h, "typeOfGeneratingProcess", 2)  # forecast
    else:
        # 5: "control and perturbed forecast products", for every member alike, so that cfgrib
        # reads all members as one ``number`` dim (3 and 4 would split them into cf and pf);
        # the control is told apart by typeOfEnsembleForecast 0 and perturbationNumber 0.
        eccodes.codes_set(h, "typeOfProcessedData", 5)
        eccodes.codes_set(h, "productDefinitionTemplateNumber", 1)
        eccodes.codes_set(h, "typeOfGeneratingProcess", 4)  # ensemble forecast
        # code table 4.6: 0 unperturbed high-resolution control, 3 positively perturbed
        eccodes.codes_set(h, "typeOfEnsembleForecast", 0 if member == 0 else 3)
        eccodes.codes_set(h, "perturbationNumber", member)
        eccodes.codes_set(h, "numberOfForecastsInEnsemble", n_members)
    eccodes.codes_set(h, "parameterCategory", param.category)
    eccodes.codes_set(h, "parameterNumber", param.number)
    eccodes.codes_set(h, "backgroundProcess", 255)
    eccodes.codes_set(h, "generatingProcessIdentifier", gpi)
    eccodes.codes_set(h, "hoursAfterDataCutoff", 0)
    eccodes.codes_set(h, "minutesAfterDataCutoff", 0)
    eccodes.codes_set(h, "indicatorOfUnitOfTimeRange", 1 if hourly else 0)  # hour / minute
    eccodes.codes_set(h, "forecastTime", minutes // 60 if hourly else minutes)
    _fixed_surface(h, param, cell.level)
