"""Test GRIB files made from the shared ERA5 sample with the ecCodes Python API.

Every builder copies messages of the real ERA5 GRIB (10 members, z and t at 500/850 hPa,
3-degree global grid, analyses at 2017-01-01T00 .. 2017-01-02T12, 12-hourly), edits a few
keys with ``codes_set`` and writes the result: no binary test data is committed. Builders
return the path they wrote.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import eccodes
import numpy as np

from tests.conftest import ERA5_GRIB

# The cycle the builders copy by default (base time of the forecasts they fake).
CYCLE = datetime(2017, 1, 1, 12)


@contextmanager
def era5_messages(
    src: Path = ERA5_GRIB,
    time: datetime | None = CYCLE,
    numbers: Iterable[int] | None = (0,),
    short_names: Iterable[str] | None = None,
    levels: Iterable[int] | None = None,
) -> Iterator[list[int]]:
    """Handles of the ``src`` messages matching all filters (None: any), released on exit."""
    numbers = None if numbers is None else set(numbers)
    short_names = None if short_names is None else set(short_names)
    levels = None if levels is None else set(levels)
    picked: list[int] = []
    try:
        with open(src, "rb") as f:
            while (h := eccodes.codes_grib_new_from_file(f)) is not None:
                base = datetime.strptime(
                    f"{eccodes.codes_get(h, 'dataDate')}{eccodes.codes_get(h, 'dataTime'):04d}",
                    "%Y%m%d%H%M",
                )
                keep = (
                    (time is None or base == time)
                    and (numbers is None or eccodes.codes_get(h, "number") in numbers)
                    and (short_names is None or eccodes.codes_get(h, "shortName") in short_names)
                    and (levels is None or eccodes.codes_get(h, "level") in levels)
                )
                if keep:
                    picked.append(h)
                else:
                    eccodes.codes_release(h)
        yield picked
    finally:
        for h in picked:
            eccodes.codes_release(h)


def edited(handle: int, **keys: Any) -> int:
    """A clone of ``handle`` with ``keys`` set in the given order (caller releases it)."""
    clone = eccodes.codes_clone(handle)
    for key, value in keys.items():
        eccodes.codes_set(clone, key, value)
    return clone


def write_messages(dst: Path, handles: Iterable[int]) -> Path:
    """Write ``handles`` to ``dst`` in order (handles are released)."""
    with open(dst, "wb") as f:
        for h in handles:
            eccodes.codes_write(h, f)
            eccodes.codes_release(h)
    return dst


def copy_era5(
    dst: Path,
    edit: Callable[[int], dict[str, Any] | None] = lambda h: {},
    **filters: Any,
) -> Path:
    """The ERA5 messages matching ``filters`` (see :func:`era5_messages`), each edited.

    ``edit(handle)`` returns the keys to set on that message's copy (None: leave it out).
    """
    with era5_messages(**filters) as handles:
        out = []
        for h in handles:
            keys = edit(h)
            if keys is not None:
                out.append(edited(h, **keys))
        return write_messages(dst, out)


def forecast_copy(dst: Path, step: int = 72, number: int = 0, **filters: Any) -> Path:
    """The cycle's member-``number`` analyses turned into ``step`` h forecasts from it."""
    return copy_era5(
        dst,
        lambda h: {"dataType": "fc", "stepRange": str(step)},
        **{"numbers": (number,), **filters},
    )


def member_copy(dst: Path, number: int = 5, **filters: Any) -> Path:
    """Only ensemble member ``number`` of the cycle's analyses (unchanged messages)."""
    return copy_era5(dst, **{"numbers": (number,), **filters})


def pa_levels_copy(
    dst: Path, pa_levels: Iterable[int] = (850,), edition: int = 2, **filters: Any
) -> Path:
    """The cycle's member-0 analyses, ``pa_levels`` (hPa) coded in Pa (isobaricInPa).

    GRIB 1 codes Pa levels as their own level type (210) in 16 bits: 50000 Pa fits, 85000 Pa
    needs ``edition=2``. GRIB 2 always codes pressure in Pa, and ecCodes reads a whole number
    of hPa back as ``isobaricInhPa``: only a level below 1 hPa (e.g. 50 Pa) stays
    ``isobaricInPa`` there.
    """
    pa = set(pa_levels)

    def edit(h: int) -> dict[str, Any]:
        level = eccodes.codes_get(h, "level")
        if level in pa:
            return {"edition": edition, "typeOfLevel": "isobaricInPa", "level": level * 100}
        return {"edition": edition}

    return copy_era5(dst, edit, **filters)


def mixed_analysis_forecast_copy(
    dst: Path, steps: Iterable[int] = (6, 12), forecasts_first: bool = True, **filters: Any
) -> Path:
    """The cycle's member-0 analyses, each with ``steps`` h forecasts of the same field.

    Forecast values are the analysis plus 1000 per hour of step, so a forecast taken for the
    analysis shows in the values. ``forecasts_first``: each field's forecasts come before its
    analysis in the file.
    """
    with era5_messages(**{"numbers": (0,), **filters}) as handles:
        out = []
        for h in handles:
            forecasts = []
            for step in steps:
                fc = edited(h, dataType="fc", stepRange=str(step))
                eccodes.codes_set_values(fc, eccodes.codes_get_values(h) + 1000.0 * step)
                forecasts.append(fc)
            analysis = [eccodes.codes_clone(h)]
            out.extend(forecasts + analysis if forecasts_first else analysis + forecasts)
        return write_messages(dst, out)


def single_level_copy(dst: Path, short_name: str = "t", level: int = 850, **filters: Any) -> Path:
    """Only ``short_name`` at one pressure ``level`` of the cycle (member 0)."""
    return copy_era5(dst, **{"short_names": (short_name,), "levels": (level,), **filters})


def grib_with_missing_values(
    dst: Path,
    short_name: str = "t",
    level: int = 850,
    points: int | slice | np.ndarray = slice(0, 10),
    **filters: Any,
) -> Path:
    """The cycle's analyses (member 0 by default) with ``points`` of one field missing.

    The ``short_name``/``level`` message gets a bitmap (``bitmapPresent=1``) and its values at
    ``points`` (an index, slice or index array into the GRIB's value order) set to the
    message's ``missingValue``: a reader must return them as NaN.
    """

    with era5_messages(**filters) as handles:
        out = []
        for h in handles:
            clone = eccodes.codes_clone(h)
            name, lev = eccodes.codes_get(clone, "shortName"), eccodes.codes_get(clone, "level")
            if name == short_name and lev == level:
                eccodes.codes_set(clone, "bitmapPresent", 1)
                values = eccodes.codes_get_values(clone)
                values[points] = eccodes.codes_get(clone, "missingValue")
                eccodes.codes_set_values(clone, values)
            out.append(clone)
        return write_messages(dst, out)
