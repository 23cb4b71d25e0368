"""Readers of upstream files and stores: each returns one cycle as a canonical dataset.

GRIB files are read message by message with ecCodes: each message says what it is (type of
data, step, ensemble member, level), so a forecast, a stray ensemble member or a level that
does not fit is refused by name before any array is built, instead of being merged into the
cycle's analysis. Only the accepted messages are decoded.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np
import xarray as xr

from weather_assets.canonical import VARIABLES
from weather_assets.ingest.convert import (
    ANALYSIS_DATA_TYPES,
    DATA_TYPE_NAMES,
    INITIAL_STATE_DATA_TYPES,
    VARIABLE_ALIASES,
    member_refusal,
    select_analysis,
    select_members,
    select_time,
    to_canonical,
)

# Level types whose ``level`` is a pressure, and the factor to hPa.
_PRESSURE_LEVELS = {"isobaricInhPa": 1.0, "isobaricInPa": 0.01}
# Grid keys two messages must share to be stacked on one latitude-longitude grid.
_GRID_KEYS = (
    "gridType",
    "Ni",
    "Nj",
    "latitudeOfFirstGridPointInDegrees",
    "longitudeOfFirstGridPointInDegrees",
    "latitudeOfLastGridPointInDegrees",
    "longitudeOfLastGridPointInDegrees",
    "iScansNegatively",
    "jScansPositively",
    "jPointsAreConsecutive",
)


@dataclass(frozen=True)
class GribMessage:
    """What one GRIB message holds, from its keys, and where it starts in the file."""

    index: int  # 1-based position in the file, as grib_ls counts
    offset: int
    short_name: str
    type_of_level: str
    level: float
    number: int | None  # None: the message has no ensemble member number
    data_type: str | None
    base: np.datetime64
    valid: np.datetime64
    units: str | None
    grid: tuple

    @property
    def variable(self) -> str:
        """Canonical name of the message's parameter (its short name if unknown)."""
        return VARIABLE_ALIASES.get(self.short_name, self.short_name)

    @property
    def member(self) -> int:
        """The member number, 0 for an unnumbered (deterministic) message."""
        return self.number or 0

    @property
    def step_hours(self) -> float:
        """Hours from the base time to the valid time (0 for an analysis)."""
        return float((self.valid - self.base) / np.timedelta64(1, "h"))

    @property
    def field(self) -> tuple:
        """What the message is a value of, whatever its time: parameter, level, member."""
        return (self.short_name, self.type_of_level, self.level, self.number)

    @property
    def label(self) -> str:
        """``message 3 (t at 850 hPa, member 5)``."""
        units = {"isobaricInhPa": "hPa", "isobaricInPa": "Pa"}
        if self.type_of_level in units:
            where = f"{self.level:g} {units[self.type_of_level]}"
        else:
            where = f"{self.type_of_level} level {self.level:g}"
        member = "" if self.number is None else f", member {self.number}"
        return f"message {self.index} ({self.short_name} at {where}{member})"


def _key(handle: int, key: str, ktype: type | None = None) -> Any:
    """A message key's value, or None when the message does not define it."""
    import eccodes

    try:
        return eccodes.codes_get(handle, key, ktype) if ktype else eccodes.codes_get(handle, key)
    except eccodes.KeyValueNotFoundError:
        return None


def _datetime(date: int, time: int) -> np.datetime64:
    """ecCodes ``YYYYMMDD`` and ``HHMM`` integers as a datetime64[ns]."""
    d, hhmm = f"{int(date):08d}", f"{int(time):04d}"
    return np.datetime64(f"{d[:4]}-{d[4:6]}-{d[6:]}T{hhmm[:2]}:{hhmm[2:]}", "ns")


def _message(handle: int, index: int) -> GribMessage:
    """The keys of one message that say what it is (GRIB 1 and 2 alike)."""
    data_type = _key(handle, "dataType") or _key(handle, "typeOfProcessedData", str)
    return GribMessage(
        index=index,
        offset=int(_key(handle, "offset", int)),
        short_name=str(_key(handle, "shortName")),
        type_of_level=str(_key(handle, "typeOfLevel")),
        level=float(_key(handle, "level", float) or 0.0),
        number=_key(handle, "number", int),
        data_type=None if data_type in (None, "unknown") else str(data_type),
        base=_datetime(_key(handle, "dataDate"), _key(handle, "dataTime")),
        valid=_datetime(_key(handle, "validityDate"), _key(handle, "validityTime")),
        units=_key(handle, "units"),
        grid=tuple(_key(handle, k) for k in _GRID_KEYS),
    )


def scan_grib(path: str) -> list[GribMessage]:
    """The keys of every message of a GRIB file, in file order (values are not decoded)."""
    import eccodes  # imported here: eccodes is only needed for GRIB sources

    messages: list[GribMessage] = []
    try:
        with open(path, "rb") as f:
            while (handle := eccodes.codes_grib_new_from_file(f)) is not None:
                try:
                    messages.append(_message(handle, len(messages) + 1))
                finally:
                    eccodes.codes_release(handle)
    except Exception as exc:  # eccodes raises many unrelated types for broken files
        raise ValueError(f"GRIB file {path} is corrupt or truncated: {exc}") from None
    if not messages:
        raise ValueError(f"GRIB file {path} is corrupt or truncated: it holds no GRIB message")
    return messages


def _not_analysis(msg: GribMessage, analysis_time: np.datetime64) -> str | None:
    """Why a message is not an analysis valid at ``analysis_time`` (None: it is one)."""
    at = str(analysis_time)[:16]
    data_type = "unknown" if msg.data_type is None else repr(msg.data_type)
    if msg.step_hours != 0 or msg.valid != analysis_time:
        return (
            f"is a forecast: dataType {data_type}, step {msg.step_hours:g} h, valid "
            f"{str(msg.valid)[:16]}, not an analysis valid at {at}"
        )
    if msg.data_type is not None and msg.data_type not in (
        ANALYSIS_DATA_TYPES | INITIAL_STATE_DATA_TYPES
    ):
        kind = DATA_TYPE_NAMES.get(msg.data_type, "not a model state")
        return f"is not an analysis: dataType {data_type} ({kind}), step 0 h, valid {at}"
    return None


def select_analyses(
    messages: list[GribMessage], analysis_time: np.datetime64, path: str
) -> list[GribMessage]:
    """The messages of canonical variables that are the analysis valid at ``analysis_time``.

    Messages of other cycles (neither based nor valid at that time) are other rows of a
    multi-time file and are left out. A forecast or other product of this cycle is an error
    naming it, unless the file also holds the analysis of the same field, which is then taken
    (a forecast's step-0 state is taken only where the file holds no analysis proper).
    """
    known = [m for m in messages if m.variable in VARIABLES]
    of_cycle = [m for m in known if analysis_time in (m.base, m.valid)]
    analyses = [m for m in of_cycle if _not_analysis(m, analysis_time) is None]
    proper = {m.field for m in analyses if m.data_type in ANALYSIS_DATA_TYPES}
    analyses = [m for m in analyses if m.data_type in ANALYSIS_DATA_TYPES or m.field not in proper]
    fields = {m.field for m in analyses}
    for msg in of_cycle:
        reason = _not_analysis(msg, analysis_time)
        if reason and msg.field not in fields:
            raise ValueError(f"GRIB file {path}: {msg.label} {reason}")
    if not analyses:
        if not known:
            names = sorted({m.short_name for m in messages})
            raise ValueError(
                f"GRIB file {path} holds no known variable (found: {', '.join(names)}); "
                f"expected any of: {', '.join(sorted(VARIABLES))}"
            )
        times = sorted({m.valid for m in known if _not_analysis(m, m.valid) is None})
        have = ", ".join(str(t)[:16] for t in times[:6]) + (" ..." if len(times) > 6 else "")
        raise ValueError(
            f"GRIB file {path} has no analysis for {str(analysis_time)[:16]}; "
            f"it holds: {have or 'no analysis at all'}"
        )
    return analyses


def _pressure_hpa(msg: GribMessage, path: str) -> int | None:
    """The message's pressure level in whole hPa (None for a single-level variable).

    Raises ValueError naming the message when its level cannot be placed on the canonical
    ``level`` axis (whole hPa) or does not suit its variable.
    """
    has_levels = VARIABLES[msg.variable].has_levels
    factor = _PRESSURE_LEVELS.get(msg.type_of_level)
    where = f"GRIB file {path}: {msg.label} cannot be placed in the canonical dataset"
    if has_levels and factor is None:
        raise ValueError(
            f"{where}: {msg.variable} is read on pressure levels, not on {msg.type_of_level!r}"
        )
    if not has_levels and factor is not None:
        raise ValueError(f"{where}: {msg.variable} is a single-level variable")
    if factor is None:
        return None
    hpa = msg.level * factor
    if hpa <= 0 or abs(hpa - round(hpa)) > 1e-6:
        raise ValueError(f"{where}: {hpa:g} hPa is not a positive whole number of hPa")
    return int(round(hpa))


def _place(
    analyses: list[GribMessage], path: str, ensemble: bool
) -> dict[tuple[str, int, int | None], GribMessage]:
    """Each analysis message under its (variable, member, hPa level) cell of the dataset.

    Raises ValueError naming the message on a member a deterministic source cannot hold,
    a level that cannot be placed, a second message for one cell, or another grid.
    """
    members = {m.member for m in analyses}
    stray = next((m for m in analyses if m.member != 0), None)
    if not ensemble and stray is not None:
        raise ValueError(f"GRIB file {path}: {stray.label} {member_refusal(stray.member, members)}")
    cells: dict[tuple[str, int, int | None], GribMessage] = {}
    for msg in analyses:
        if msg.grid[0] not in ("regular_ll", "regular_gg"):
            raise ValueError(
                f"GRIB file {path}: {msg.label} is on a {msg.grid[0]!r} grid; only regular "
                "latitude-longitude or Gaussian grids can be read"
            )
        if msg.grid != analyses[0].grid:
            raise ValueError(
                f"GRIB file {path}: {msg.label} is on another grid than "
                f"{analyses[0].label} ({dict(zip(_GRID_KEYS, msg.grid, strict=True))})"
            )
        cell = (msg.variable, msg.member, _pressure_hpa(msg, path))
        if cell in cells:
            raise ValueError(
                f"GRIB file {path}: {msg.label} is a second analysis of the field of "
                f"{cells[cell].label}; the file must hold each field once"
            )
        cells[cell] = msg
    return cells


def _rows(handle: int, points: np.ndarray) -> np.ndarray:
    """A message's per-point array as (latitude, longitude) rows, whatever its scan order."""
    ni, nj = _key(handle, "Ni", int), _key(handle, "Nj", int)
    if _key(handle, "jPointsAreConsecutive", int):  # stored column by column
        return points.reshape(ni, nj).T
    return points.reshape(nj, ni)


@contextmanager
def _message_at(f: BinaryIO, msg: GribMessage, path: str) -> Iterator[int]:
    """The ecCodes handle of one scanned message; a decoding failure names file and message."""
    import eccodes

    handle = None
    try:
        f.seek(msg.offset)
        handle = eccodes.codes_grib_new_from_file(f)
        yield handle
    except Exception as exc:  # eccodes raises many unrelated types for broken files
        raise ValueError(
            f"GRIB file {path} is corrupt or truncated: {msg.label} cannot be decoded ({exc})"
        ) from None
    finally:
        if handle is not None:
            eccodes.codes_release(handle)


def _values(handle: int) -> np.ndarray:
    """A message's values as (latitude, longitude) rows, points missing in its bitmap NaN."""
    import eccodes

    values = eccodes.codes_get_values(handle).astype(np.float64)
    if _key(handle, "bitmapPresent", int):
        values[values == _key(handle, "missingValue", float)] = np.nan
    return _rows(handle, values)


def _axes(handle: int) -> tuple[np.ndarray, np.ndarray]:
    """The latitude and longitude axes of a message's regular grid, in its scan order."""
    import eccodes

    lats = _rows(handle, eccodes.codes_get_array(handle, "latitudes"))
    lons = _rows(handle, eccodes.codes_get_array(handle, "longitudes"))
    return lats[:, 0], lons[0, :]


def _build(
    cells: dict[tuple[str, int, int | None], GribMessage],
    path: str,
    analysis_time: np.datetime64,
    ensemble: bool,
) -> xr.Dataset:
    """Decode the placed messages into one dataset (member, time, level, latitude, longitude).

    A variable missing a member or level that the file holds for it elsewhere is an error:
    a hole would otherwise become NaNs in a dataset that looks complete.
    """
    members = sorted({member for _, member, _ in cells})
    arrays: list[xr.DataArray] = []
    with open(path, "rb") as f:
        # All placed messages share one grid (checked by _place): its axes are read once.
        with _message_at(f, next(iter(cells.values())), path) as handle:
            lat, lon = _axes(handle)
        for var in dict.fromkeys(v for v, _, _ in cells):
            levels = sorted({lev for v, _, lev in cells if v == var and lev is not None})
            # Decoded straight into the canonical float32 (rounded as astype would round the
            # stacked float64 fields), so the cycle is never held twice or in double precision.
            data = np.empty((len(members), 1, len(levels) or 1, lat.size, lon.size), np.float32)
            for i, member in enumerate(members):
                for j, level in enumerate(levels or [None]):
                    msg = cells.get((var, member, level))
                    if msg is None:
                        at = "" if level is None else f" at {level} hPa"
                        raise ValueError(
                            f"GRIB file {path} holds no {var}{at} for member {member} "
                            f"although it holds {var} for members {members} and levels {levels}"
                        )
                    with _message_at(f, msg, path) as handle:
                        values = _values(handle)
                    data[i, 0, j] = values
            first = next(m for (v, _, _), m in cells.items() if v == var)
            da = xr.DataArray(
                data,
                dims=("member", "time", "level", "latitude", "longitude"),
                coords={
                    "member": members,
                    "time": [analysis_time],
                    "level": levels or [0],
                    "latitude": lat,
                    "longitude": lon,
                },
                name=var,
                attrs={"units": first.units} if first.units else {},
            )
            if not levels:
                da = da.isel(level=0, drop=True)
            arrays.append(da if ensemble else da.isel(member=0, drop=True))
    ds = xr.merge(arrays, join="outer", compat="no_conflicts", combine_attrs="override")
    if "level" in ds.coords:
        ds["level"].attrs["units"] = "hPa"
    return ds


def read_grib(path: str, analysis_time: np.datetime64, ensemble: bool = False) -> xr.Dataset:
    """The analysis valid at ``analysis_time`` in a GRIB file, as a canonical dataset.

    Only analysis messages are taken (see :func:`select_analyses`); ensemble members only when
    ``ensemble`` (with their own numbers on a ``member`` dim), else every message must be
    member 0 or unnumbered. Pressure levels coded in Pa are converted to hPa. Every message
    of the cycle is either placed in the dataset or refused by name: none is dropped.
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"GRIB file {path} does not exist")
    t = np.datetime64(analysis_time, "ns")
    cells = _place(select_analyses(scan_grib(path), t, path), path, ensemble)
    return to_canonical(_build(cells, path, t, ensemble), source=f"GRIB file {path}")


def read_netcdf(path: str, analysis_time: np.datetime64, ensemble: bool = False) -> xr.Dataset:
    """One analysis time of a NetCDF file as a canonical dataset.

    A forecast step or an ensemble member, where the file says so, follows the GRIB rule:
    see :func:`~weather_assets.ingest.convert.select_analysis` and ``select_members``.
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"NetCDF file {path} does not exist")
    try:
        raw = xr.open_dataset(path)
    except Exception as exc:
        raise ValueError(f"NetCDF file {path} cannot be read: {exc}") from None
    source = f"NetCDF file {path}"
    with raw:
        ds = select_members(select_analysis(raw, source), ensemble, source)
        ds = to_canonical(ds, source=source)
        return select_time(ds, analysis_time, source=source).load()


def read_zarr(url: str, storage_options: dict[str, Any] | None = None) -> xr.Dataset:
    """A zarr store (any fsspec URL, consolidated metadata) as a canonical dataset."""
    try:
        raw = xr.open_zarr(url, consolidated=True, storage_options=storage_options or None)
    except (FileNotFoundError, KeyError) as exc:
        raise FileNotFoundError(
            f"zarr store {url} does not exist or is incomplete ({exc})"
        ) from None
    return to_canonical(raw, source=f"zarr store {url}").load()
