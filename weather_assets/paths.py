"""Storage paths, compatible with DMI's ``mlwm.paths`` convention.

A dataset is stored at::

    <model_name>/<model_config>/<bbox>/<resolution>/<analysis_time>/member<k>/<data_kind>.zarr

- ``bbox``: ``w<lon_min>_s<lat_min>_e<lon_max>_n<lat_max>``, e.g. ``w-10p5_s35_e10p5_n45``.
- ``resolution``: ``dx<dx><unit>_dy<dy><unit>`` with one unit in ``m``, ``km``, ``deg``,
  e.g. ``dx2p5km_dy2p5km``.
- ``analysis_time``: ``YYYY-MM-DDThhmmZ`` in UTC (``2026-01-01T0600Z``, the same string as the
  Dagster partition key); a time with nonzero seconds is written ``YYYY-MM-DDThhmmssZ``.
- ``member<k>``: ensemble member, ``member0`` is the control.

Numbers. An ``int`` is written as itself (``2``, ``-3``) and parses back as ``int``. A ``float``
is written from its shortest round-tripping ``repr`` with ``p`` for the decimal point
(``0.1`` -> ``0p1``, ``-10.5`` -> ``-10p5``, ``2.0`` -> ``2p0``) and, where ``repr`` uses an
exponent, ``e`` for a positive and ``em`` for a negative one (``1e-05`` -> ``1em05``,
``1.5e+16`` -> ``1p5e16``); such strings always parse back as ``float``, bit-for-bit. NaN and
infinities are rejected; numpy scalars are converted to Python ``int``/``float`` first. The
grammar ``-?D+(pD+)?((e|em)D+)?`` (D a digit) never ends in a letter, so a number followed by a unit
(``1e20deg``, ``1em05m``) splits one way only.

Differences from DMI's implementation (all fixes; paths DMI writes for UTC times parse here):

- equal dx/dy (``dx2p5km_dy2p5km``) parses as dx=2.5 km (DMI's parsed dx=2, unit ``p5km``);
- tz-aware times are converted to UTC before formatting (DMI wrote local time with a ``Z``);
  naive times are taken as UTC; parsed times are tz-aware UTC;
- floats whose ``repr`` uses an exponent round-trip (DMI's failed on ``1e-05``);
- ``parse_path`` accepts a root prefix (``s3://bucket/root/...``) and parses the last 7
  components;
- malformed input raises ``ValueError`` naming the component and the value.

Resolution dicts use the keys ``dx``, ``dy``, ``units``. DMI's key names ``lon_resolution``,
``lat_resolution``, ``unit`` are accepted on input, and a parsed resolution (a
:class:`Resolution`) also answers to them on lookup, so code written against ``mlwm.paths``
keeps working. ``format_bbox``/``format_resolution`` take either one dict or DMI's separate
arguments (``format_bbox(**bbox)``, ``format_resolution(**resolution)``).
"""

from __future__ import annotations

import datetime as dt
import numbers
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

Number = int | float

VALID_LENGTH_UNITS = ("m", "km", "deg")
BBOX_KEYS = ("lon_min", "lat_min", "lon_max", "lat_max")
RESOLUTION_KEYS = ("dx", "dy", "units")
# DMI's names for the resolution keys, accepted as aliases.
DMI_RESOLUTION_ALIASES = {"lon_resolution": "dx", "lat_resolution": "dy", "unit": "units"}

PATH_TEMPLATE = (
    "<model_name>/<model_config>/<bbox>/<resolution>/<analysis_time>/member<k>/<data_kind>.zarr"
)
BBOX_TEMPLATE = "w<lon_min>_s<lat_min>_e<lon_max>_n<lat_max>"
RESOLUTION_TEMPLATE = "dx<dx><unit>_dy<dy><unit> with unit in m, km, deg"
ANALYSIS_TIME_TEMPLATE = "YYYY-MM-DDThhmmZ or YYYY-MM-DDThhmmssZ"
NUMBER_TEMPLATE = (
    "an int (-12) or a float with p for the point and e/em for the exponent (0p1, 1em05)"
)
N_PATH_COMPONENTS = 7

_NUM = r"-?\d+(?:p\d+)?(?:em?\d+)?"
_INT_RE = re.compile(r"-?\d+")
_NUM_RE = re.compile(_NUM)
_UNIT = "|".join(VALID_LENGTH_UNITS)
_BBOX_RE = re.compile(
    rf"w(?P<lon_min>{_NUM})_s(?P<lat_min>{_NUM})_e(?P<lon_max>{_NUM})_n(?P<lat_max>{_NUM})"
)
_RESOLUTION_RE = re.compile(
    rf"dx(?P<dx>{_NUM})(?P<unit_x>{_UNIT})_dy(?P<dy>{_NUM})(?P<unit_y>{_UNIT})"
)
_TIME_RE = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2})(\d{2})(\d{2})?Z")
_MEMBER_RE = re.compile(r"member(\d+)")


class Resolution(dict):
    """A parsed resolution ``{"dx", "dy", "units"}`` that also answers to DMI's key names."""

    def __missing__(self, key: str) -> Any:
        """Look DMI's ``lon_resolution``/``lat_resolution``/``unit`` up under our names."""
        if key in DMI_RESOLUTION_ALIASES:
            return self[DMI_RESOLUTION_ALIASES[key]]
        raise KeyError(key)

    def get(self, key: str, default: Any = None) -> Any:
        """``dict.get`` that also resolves DMI's key names."""
        try:
            return self[key]
        except KeyError:
            return default


def _malformed(component: str, value: object, expected: str, path: str | None = None) -> ValueError:
    """A ValueError naming the component, its value and (if any) the path it came from."""
    where = f"{component} {value!r}"
    if path is not None:
        where = f"{component} component {value!r} of path {path!r}"
    return ValueError(f"{where} is malformed: expected {expected}")


def _as_number(x: object, name: str) -> Number:
    """``x`` as a Python int or finite float; ValueError naming ``name`` otherwise."""
    if isinstance(x, bool | np.bool_) or not isinstance(x, numbers.Real):
        raise ValueError(f"{name} must be an int or float, got {x!r} ({type(x).__name__})")
    if isinstance(x, numbers.Integral):
        return int(x)
    value = float(x)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {x!r}")
    return value


# ---------------------------------------------------------------------------------------------
# numbers


def format_number(number: Number) -> str:
    """Format an int as itself and a float with ``p``/``e``/``em`` (``-10.5`` -> ``-10p5``)."""
    value = _as_number(number, "number")
    if isinstance(value, int):
        return str(value)
    # float.__repr__ is the shortest string that round-trips (and avoids numpy's repr).
    text = float.__repr__(value)
    return text.replace(".", "p").replace("e-", "em").replace("e+", "e")


def _parse_number(text: str, component: str, path: str | None) -> Number:
    """Parse one formatted number, naming ``component`` in the error."""
    if not isinstance(text, str) or not _NUM_RE.fullmatch(text):
        raise _malformed(component, text, NUMBER_TEMPLATE, path)
    if _INT_RE.fullmatch(text):
        return int(text)
    value = float(text.replace("em", "e-").replace("p", "."))
    if not np.isfinite(value):
        raise _malformed(component, text, "a number within float range", path)
    return value


def parse_number(number: str) -> Number:
    """Parse a number written by :func:`format_number` (``0p1`` -> 0.1, ``2`` -> 2)."""
    return _parse_number(number, "number", None)


# ---------------------------------------------------------------------------------------------
# bbox


def _bbox_values(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Number]:
    """Normalize ``format_bbox`` arguments (one dict, or DMI's four values) to a dict."""
    if len(args) == 1 and isinstance(args[0], Mapping) and not kwargs:
        given = dict(args[0])
    else:
        if len(args) > len(BBOX_KEYS):
            raise ValueError(f"bbox takes at most {len(BBOX_KEYS)} values, got {len(args)}")
        given = dict(zip(BBOX_KEYS, args, strict=False))
        for key, value in kwargs.items():
            if key in given:
                raise ValueError(f"bbox value {key!r} given twice")
            given[key] = value
    if set(given) != set(BBOX_KEYS):
        raise ValueError(
            f"bbox must have exactly the keys {', '.join(BBOX_KEYS)}; got {', '.join(given)}"
        )
    return {key: _as_number(given[key], f"bbox {key}") for key in BBOX_KEYS}


def format_bbox(*args: Any, **kwargs: Any) -> str:
    """Format a bbox as ``w<lon_min>_s<lat_min>_e<lon_max>_n<lat_max>``.

    Takes one dict with keys lon_min, lat_min, lon_max, lat_max, or (as DMI's function) the
    four values as positional or keyword arguments.
    """
    values = _bbox_values(args, kwargs)
    return "w{}_s{}_e{}_n{}".format(*(format_number(values[key]) for key in BBOX_KEYS))


def _parse_bbox(text: str, path: str | None) -> dict[str, Number]:
    """Parse a bbox component, naming the path in the error if given."""
    match = _BBOX_RE.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise _malformed("bbox", text, BBOX_TEMPLATE, path)
    return {key: _parse_number(match[key], f"bbox {key}", path) for key in BBOX_KEYS}


def parse_bbox(bbox: str) -> dict[str, Number]:
    """Parse ``w<lon_min>_s<lat_min>_e<lon_max>_n<lat_max>`` into a dict of numbers."""
    return _parse_bbox(bbox, None)


# ---------------------------------------------------------------------------------------------
# resolution


def _resolution_values(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """Normalize ``format_resolution`` arguments to ``{"dx", "dy", "units"}``.

    Accepts one dict, or separate values (positional in the order dx, dy, units), under our
    key names or DMI's (lon_resolution, lat_resolution, unit).
    """
    if len(args) == 1 and isinstance(args[0], Mapping) and not kwargs:
        raw = dict(args[0])
    else:
        if len(args) > len(RESOLUTION_KEYS):
            raise ValueError(f"resolution takes at most 3 values, got {len(args)}")
        raw = dict(zip(RESOLUTION_KEYS, args, strict=False))
        for key, value in kwargs.items():
            if key in raw:
                raise ValueError(f"resolution value {key!r} given twice")
            raw[key] = value
    given: dict[str, Any] = {}
    for key, value in raw.items():
        name = DMI_RESOLUTION_ALIASES.get(key, key)
        if name not in RESOLUTION_KEYS or name in given:
            raise ValueError(
                "resolution must have exactly the keys dx, dy, units (or DMI's lon_resolution, "
                f"lat_resolution, unit); got {', '.join(raw)}"
            )
        given[name] = value
    if set(given) != set(RESOLUTION_KEYS):
        raise ValueError(
            "resolution must have exactly the keys dx, dy, units (or DMI's lon_resolution, "
            f"lat_resolution, unit); got {', '.join(raw)}"
        )
    units = given["units"]
    if units not in VALID_LENGTH_UNITS:
        raise ValueError(
            f"resolution units {units!r} is not one of {', '.join(VALID_LENGTH_UNITS)}"
        )
    out: dict[str, Any] = {"units": units}
    for key in ("dx", "dy"):
        value = _as_number(given[key], f"resolution {key}")
        if value <= 0:
            raise ValueError(f"resolution {key} must be positive, got {value!r}")
        out[key] = value
    return out


def format_resolution(*args: Any, **kwargs: Any) -> str:
    """Format a grid spacing as ``dx<dx><unit>_dy<dy><unit>``.

    Takes one dict with keys dx, dy, units (or DMI's lon_resolution, lat_resolution, unit), or
    the three values as positional or keyword arguments. dx and dy must be positive.
    """
    values = _resolution_values(args, kwargs)
    units = values["units"]
    return f"dx{format_number(values['dx'])}{units}_dy{format_number(values['dy'])}{units}"


def _parse_resolution(text: str, path: str | None) -> Resolution:
    """Parse a resolution component, naming the path in the error if given."""
    match = _RESOLUTION_RE.fullmatch(text) if isinstance(text, str) else None
    if match is None or match["unit_x"] != match["unit_y"]:
        raise _malformed("resolution", text, RESOLUTION_TEMPLATE + ", the same for dx and dy", path)
    dx = _parse_number(match["dx"], "resolution dx", path)
    dy = _parse_number(match["dy"], "resolution dy", path)
    if dx <= 0 or dy <= 0:
        raise _malformed("resolution", text, "positive dx and dy", path)
    return Resolution(dx=dx, dy=dy, units=match["unit_x"])


def parse_resolution(resolution: str) -> Resolution:
    """Parse ``dx<dx><unit>_dy<dy><unit>`` into ``{"dx", "dy", "units"}``."""
    return _parse_resolution(resolution, None)


# ---------------------------------------------------------------------------------------------
# analysis time


def _to_utc(t: object) -> dt.datetime:
    """An analysis time as an aware UTC datetime (naive input is taken as UTC)."""
    if isinstance(t, str):
        return parse_analysis_time(t)
    if isinstance(t, np.datetime64):
        t = t.astype("datetime64[us]").item()
    if not isinstance(t, dt.datetime):
        raise ValueError(f"analysis_time must be a datetime, got {t!r} ({type(t).__name__})")
    if t.tzinfo is None or t.utcoffset() is None:
        return t.replace(tzinfo=dt.UTC)
    try:
        return t.astimezone(dt.UTC)
    except OverflowError as err:
        raise ValueError(f"analysis_time {t!r} is out of range in UTC") from err


def format_analysis_time(t: dt.datetime | np.datetime64 | str) -> str:
    """Format a time in UTC as ``YYYY-MM-DDThhmmZ`` (``...ThhmmssZ`` if seconds are nonzero).

    Aware times are converted to UTC, naive ones are taken as UTC; sub-second precision
    cannot be written and raises ``ValueError``. A string is validated and normalized.
    """
    utc = _to_utc(t)
    if utc.microsecond:
        raise ValueError(f"analysis_time {t!r} has sub-second precision, which paths cannot hold")
    text = f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T{utc.hour:02d}{utc.minute:02d}"
    if utc.second:
        text += f"{utc.second:02d}"
    return text + "Z"


def _parse_analysis_time(text: str, path: str | None) -> dt.datetime:
    """Parse an analysis-time component, naming the path in the error if given."""
    match = _TIME_RE.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise _malformed("analysis_time", text, ANALYSIS_TIME_TEMPLATE, path)
    year, month, day, hour, minute, second = (int(g) if g else 0 for g in match.groups())
    try:
        return dt.datetime(year, month, day, hour, minute, second, tzinfo=dt.UTC)
    except ValueError as err:
        raise _malformed(
            "analysis_time",
            text,
            f"{ANALYSIS_TIME_TEMPLATE} with a valid date and time ({err})",
            path,
        ) from None


def parse_analysis_time(t: str) -> dt.datetime:
    """Parse ``YYYY-MM-DDThhmmZ`` or ``YYYY-MM-DDThhmmssZ`` into an aware UTC datetime."""
    return _parse_analysis_time(t, None)


# ---------------------------------------------------------------------------------------------
# whole paths


def _check_name(component: str, value: object) -> str:
    """Validate a free-text path component (model_name, model_config, data_kind)."""
    if not isinstance(value, str) or not value or "/" in value or value in (".", ".."):
        raise ValueError(
            f"{component} {value!r} is malformed: expected a non-empty string without '/' "
            "(and not '.' or '..')"
        )
    return value


def _check_member(member: object) -> int:
    """Validate an ensemble member number (a non-negative int)."""
    if isinstance(member, bool | np.bool_) or not isinstance(member, numbers.Integral):
        raise ValueError(f"member must be a non-negative int, got {member!r}")
    if member < 0:
        raise ValueError(f"member must be a non-negative int, got {member!r}")
    return int(member)


def create_path(
    model_name: str,
    model_config: str,
    bbox: Mapping[str, Number],
    resolution: Mapping[str, Any],
    analysis_time: dt.datetime | np.datetime64 | str,
    data_kind: str,
    member: int = 0,
) -> str:
    """Build ``<model_name>/<model_config>/<bbox>/<resolution>/<time>/member<k>/<kind>.zarr``.

    The path is relative: join it to the storage root. ``member=0`` is the control.
    """
    return "/".join(
        (
            _check_name("model_name", model_name),
            _check_name("model_config", model_config),
            format_bbox(bbox),
            format_resolution(resolution),
            format_analysis_time(analysis_time),
            f"member{_check_member(member)}",
            _check_name("data_kind", data_kind) + ".zarr",
        )
    )


def parse_path(path: str) -> dict[str, Any]:
    """Parse a path made by :func:`create_path` into its components.

    Any prefix (storage root, ``s3://bucket/...``) is ignored: the last seven ``/``-separated
    components are parsed. Returns a dict with keys model_name, model_config, bbox,
    resolution, analysis_time (aware UTC), member and data_kind.
    """
    if not isinstance(path, str):
        raise ValueError(f"path must be a string, got {path!r}")
    parts = path.rstrip("/").split("/")
    if len(parts) < N_PATH_COMPONENTS:
        raise ValueError(
            f"path {path!r} has {len(parts)} components, expected at least "
            f"{N_PATH_COMPONENTS}: {PATH_TEMPLATE}"
        )
    model_name, model_config, bbox, resolution, analysis_time, member, store = parts[
        -N_PATH_COMPONENTS:
    ]
    for component, value in (("model_name", model_name), ("model_config", model_config)):
        if not value or value in (".", ".."):
            raise _malformed(component, value, "a non-empty name", path)
    member_match = _MEMBER_RE.fullmatch(member)
    if member_match is None:
        raise _malformed("member", member, "member<k> with k a non-negative integer", path)
    data_kind = store.removesuffix(".zarr")
    if not store.endswith(".zarr") or data_kind in ("", ".", ".."):
        raise _malformed("data_kind", store, "<data_kind>.zarr with a non-empty data_kind", path)
    return {
        "model_name": model_name,
        "model_config": model_config,
        "bbox": _parse_bbox(bbox, path),
        "resolution": _parse_resolution(resolution, path),
        "analysis_time": _parse_analysis_time(analysis_time, path),
        "member": int(member_match[1]),
        "data_kind": data_kind,
    }


# ---------------------------------------------------------------------------------------------
# products and their promotion decisions

PRODUCT_MODEL_NAME = "product"
PROMOTION_DIR = "promotion"


def product_path(
    product: str,
    bbox: Mapping[str, Number],
    resolution: Mapping[str, Any],
    analysis_time: dt.datetime | np.datetime64 | str,
    data_kind: str = "forecast",
) -> str:
    """A published product's store: ``product/<product>/<bbox>/<res>/<t>/member0/<kind>.zarr``
    (the GRIB2 file beside it: swap ``.zarr`` for ``.grib2``)."""
    return create_path(PRODUCT_MODEL_NAME, product, bbox, resolution, analysis_time, data_kind)


def promotion_path(product: str, filename: str) -> str:
    """A product's promotion state: ``promotion/<product>/<filename>`` (the operator's pin log
    ``pins.json``, the decisions ``decisions.parquet``)."""
    return "/".join(
        (PROMOTION_DIR, _check_name("product", product), _check_name("filename", filename))
    )
