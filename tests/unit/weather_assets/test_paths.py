"""Tests for weather_assets.paths: exact round trips, DMI's failure cases, error messages."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from weather_assets import paths

UTC = dt.UTC

# --- strategies -------------------------------------------------------------------------------

finite_floats = st.floats(allow_nan=False, allow_infinity=False)
numbers_ = st.one_of(st.integers(), finite_floats)
# magnitudes from 1e-300 to 1e300, where repr switches to exponent notation at both ends
magnitude_floats = st.builds(
    lambda mantissa, exponent, sign: sign * mantissa * 10.0**exponent,
    st.floats(min_value=1.0, max_value=9.999999, allow_nan=False),
    st.integers(min_value=-300, max_value=300),
    st.sampled_from([-1.0, 1.0]),
)
positive_numbers = st.one_of(
    st.integers(min_value=1, max_value=10**12),
    st.floats(min_value=5e-324, allow_nan=False, allow_infinity=False),
)
units = st.sampled_from(paths.VALID_LENGTH_UNITS)
bboxes = st.fixed_dictionaries({key: numbers_ for key in paths.BBOX_KEYS})
resolutions = st.fixed_dictionaries(
    {"dx": positive_numbers, "dy": positive_numbers, "units": units}
)
equal_resolutions = st.builds(lambda d, u: {"dx": d, "dy": d, "units": u}, positive_numbers, units)
offsets = st.integers(min_value=-23 * 60 - 59, max_value=23 * 60 + 59).map(
    lambda minutes: dt.timezone(dt.timedelta(minutes=minutes))
)
whole_seconds = st.datetimes(
    min_value=dt.datetime(1000, 1, 2), max_value=dt.datetime(9999, 12, 30)
).map(lambda t: t.replace(microsecond=0))
aware_times = st.builds(lambda t, tz: t.replace(tzinfo=tz), whole_seconds, offsets)
names = st.text(
    alphabet=st.characters(blacklist_characters="/", blacklist_categories=("Cs",)), min_size=1
).filter(lambda s: s not in (".", ".."))


def same_number(a: object, b: object) -> bool:
    """Exact equality: same type, same value, same sign of zero."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
    return a == b


# --- numbers ----------------------------------------------------------------------------------


@given(numbers_)
def test_number_round_trip(x: int | float) -> None:
    text = paths.format_number(x)
    assert "." not in text and "+" not in text
    assert same_number(paths.parse_number(text), x)


@given(magnitude_floats)
def test_number_round_trip_all_magnitudes(x: float) -> None:
    assert same_number(paths.parse_number(paths.format_number(x)), x)


@given(st.text(alphabet="0123456789-pem", min_size=1, max_size=12))
def test_parse_number_string_round_trip_or_value_error(text: str) -> None:
    """Any string either parses to a number that formats back to the same value or fails."""
    try:
        value = paths.parse_number(text)
    except ValueError as err:
        assert "number" in str(err)
    else:
        assert same_number(paths.parse_number(paths.format_number(value)), value)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.1, "0p1"),
        (-10.5, "-10p5"),
        (2, "2"),
        (-3, "-3"),
        (2.0, "2p0"),
        (1e-05, "1em05"),
        (1.5e16, "1p5e16"),
        (-2.5e-7, "-2p5em07"),
        (-0.0, "-0p0"),
    ],
)
def test_number_examples(value: int | float, text: str) -> None:
    assert paths.format_number(value) == text
    assert same_number(paths.parse_number(text), value)


def test_int_and_float_are_distinct() -> None:
    assert type(paths.parse_number("2")) is int
    assert type(paths.parse_number("2p0")) is float


def test_numpy_scalars_are_plain_numbers() -> None:
    assert paths.format_number(np.float64(0.1)) == "0p1"
    assert paths.format_number(np.int64(7)) == "7"
    assert type(paths.parse_number(paths.format_number(np.int32(7)))) is int


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), True, "1.5", None])
def test_format_number_rejects(bad: object) -> None:
    with pytest.raises(ValueError, match="number"):
        paths.format_number(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "bad", ["", "1.5", "1p", "p5", "1e", "inf", "nan", "1_0", "+1", "1p5p5", "1e309"]
)
def test_parse_number_rejects(bad: str) -> None:
    with pytest.raises(ValueError, match=r"number '.*' is malformed"):
        paths.parse_number(bad)


# --- bbox -------------------------------------------------------------------------------------


@given(bboxes)
def test_bbox_round_trip(bbox: dict[str, int | float]) -> None:
    parsed = paths.parse_bbox(paths.format_bbox(bbox))
    assert list(parsed) == list(paths.BBOX_KEYS)
    assert all(same_number(parsed[k], bbox[k]) for k in paths.BBOX_KEYS)


def test_bbox_dmi_calling_conventions() -> None:
    bbox = {"lon_min": -10.5, "lat_min": 35.0, "lon_max": 10.5, "lat_max": 45}
    text = "w-10p5_s35p0_e10p5_n45"
    assert paths.format_bbox(bbox) == text
    assert paths.format_bbox(**bbox) == text
    assert paths.format_bbox(-10.5, 35.0, 10.5, 45) == text
    assert paths.parse_bbox(text) == bbox


@pytest.mark.parametrize(
    "bad",
    [
        {"lon_min": 1, "lat_min": 2, "lon_max": 3},
        {"lon_min": 1, "lat_min": 2, "lon_max": 3, "lat_max": 4, "extra": 5},
        {"lon_min": 1, "lat_min": 2, "lon_max": 3, "lat_max": float("nan")},
    ],
)
def test_format_bbox_rejects(bad: dict) -> None:
    with pytest.raises(ValueError, match="bbox"):
        paths.format_bbox(bad)


@pytest.mark.parametrize(
    "bad", ["w10_s5_e3", "w10_s5_e3_n4_", "x10_s5_e3_n4", "w10_s5_e3_n4p", "w1.5_s5_e3_n4", ""]
)
def test_parse_bbox_rejects(bad: str) -> None:
    with pytest.raises(ValueError, match=r"bbox '.*' is malformed: expected w<lon_min>"):
        paths.parse_bbox(bad)


# --- resolution -------------------------------------------------------------------------------


def _assert_resolution_equal(parsed: dict, resolution: dict) -> None:
    assert parsed["units"] == resolution["units"]
    assert same_number(parsed["dx"], resolution["dx"])
    assert same_number(parsed["dy"], resolution["dy"])


@given(resolutions)
def test_resolution_round_trip(resolution: dict) -> None:
    text = paths.format_resolution(resolution)
    _assert_resolution_equal(paths.parse_resolution(text), resolution)


@given(equal_resolutions)
def test_resolution_round_trip_equal_dx_dy(resolution: dict) -> None:
    text = paths.format_resolution(resolution)
    _assert_resolution_equal(paths.parse_resolution(text), resolution)


def test_resolution_equal_dx_dy_dmi_failure_case() -> None:
    """DMI's parser read ``dx2p5km_dy2p5km`` as dx=2 with unit ``p5km``."""
    parsed = paths.parse_resolution("dx2p5km_dy2p5km")
    assert parsed == {"dx": 2.5, "dy": 2.5, "units": "km"}
    assert paths.format_resolution(dx=2.5, dy=2.5, units="km") == "dx2p5km_dy2p5km"


@pytest.mark.parametrize(
    ("resolution", "text"),
    [
        ({"dx": 0.1, "dy": 0.2, "units": "deg"}, "dx0p1deg_dy0p2deg"),
        ({"dx": 2500, "dy": 2500, "units": "m"}, "dx2500m_dy2500m"),
        ({"dx": 1e-05, "dy": 1e20, "units": "deg"}, "dx1em05deg_dy1e20deg"),
        ({"dx": 1e-05, "dy": 1e-05, "units": "m"}, "dx1em05m_dy1em05m"),
    ],
)
def test_resolution_examples(resolution: dict, text: str) -> None:
    assert paths.format_resolution(resolution) == text
    _assert_resolution_equal(paths.parse_resolution(text), resolution)


def test_resolution_accepts_dmi_names() -> None:
    dmi = {"lon_resolution": 0.1, "lat_resolution": 0.2, "unit": "deg"}
    text = "dx0p1deg_dy0p2deg"
    assert paths.format_resolution(dmi) == text
    assert paths.format_resolution(**dmi) == text
    assert paths.format_resolution(0.1, 0.2, "deg") == text
    parsed = paths.parse_resolution(text)
    assert parsed == {"dx": 0.1, "dy": 0.2, "units": "deg"}
    assert (parsed["lon_resolution"], parsed["lat_resolution"], parsed["unit"]) == (0.1, 0.2, "deg")
    assert parsed.get("unit") == "deg" and parsed.get("nope") is None
    with pytest.raises(KeyError):
        parsed["nope"]


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        ({"dx": 1, "dy": 1, "units": "mi"}, "units 'mi'"),
        ({"dx": 0, "dy": 1, "units": "m"}, "dx must be positive"),
        ({"dx": 1, "dy": -1.5, "units": "m"}, "dy must be positive"),
        ({"dx": 1, "units": "m"}, "keys dx, dy, units"),
        ({"dx": 1, "lon_resolution": 1, "dy": 1, "units": "m"}, "keys dx, dy, units"),
    ],
)
def test_format_resolution_rejects(bad: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        paths.format_resolution(bad)


@pytest.mark.parametrize(
    "bad",
    [
        "dx2p5km_dy2p5deg",
        "dx2p5_dy2p5",
        "dx2p5mi_dy2p5mi",
        "dx0km_dy1km",
        "dy1m_dx1m",
        "dx-1m_dy1m",
    ],
)
def test_parse_resolution_rejects(bad: str) -> None:
    with pytest.raises(ValueError, match=r"resolution '.*' is malformed"):
        paths.parse_resolution(bad)


# --- analysis time ----------------------------------------------------------------------------


@given(aware_times)
def test_analysis_time_round_trip_aware(t: dt.datetime) -> None:
    parsed = paths.parse_analysis_time(paths.format_analysis_time(t))
    assert parsed == t
    assert parsed.utcoffset() == dt.timedelta(0)
    assert parsed.tzinfo is UTC


@given(whole_seconds)
def test_analysis_time_round_trip_naive_is_utc(t: dt.datetime) -> None:
    assert paths.parse_analysis_time(paths.format_analysis_time(t)) == t.replace(tzinfo=UTC)


def test_analysis_time_examples() -> None:
    assert paths.format_analysis_time(dt.datetime(2026, 1, 1, 6)) == "2026-01-01T0600Z"
    assert paths.format_analysis_time(dt.datetime(2026, 1, 1, 6, 0, 30)) == "2026-01-01T060030Z"
    assert paths.parse_analysis_time("2026-01-01T060030Z") == dt.datetime(
        2026, 1, 1, 6, 0, 30, tzinfo=UTC
    )
    assert paths.parse_analysis_time("2026-01-01T060000Z") == dt.datetime(2026, 1, 1, 6, tzinfo=UTC)
    assert paths.format_analysis_time(np.datetime64("2026-01-01T06:00")) == "2026-01-01T0600Z"
    assert paths.format_analysis_time("2026-01-01T060000Z") == "2026-01-01T0600Z"


def test_analysis_time_tz_aware_dmi_failure_case() -> None:
    """DMI wrote local wall-clock time followed by Z; 08:00+02:00 is 06:00 UTC."""
    local = dt.datetime(2026, 1, 1, 8, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert paths.format_analysis_time(local) == "2026-01-01T0600Z"
    across_midnight = dt.datetime(2026, 1, 1, 1, 0, tzinfo=dt.timezone(dt.timedelta(hours=3)))
    assert paths.format_analysis_time(across_midnight) == "2025-12-31T2200Z"


def test_analysis_time_rejects_sub_second() -> None:
    with pytest.raises(ValueError, match="sub-second"):
        paths.format_analysis_time(dt.datetime(2026, 1, 1, 6, 0, 0, 500))


@pytest.mark.parametrize(
    "bad",
    [
        "2026-01-01T06:00Z",
        "2026-01-01T0600",
        "2026-01-01T06Z",
        "2026-13-01T0600Z",
        "2026-02-30T0600Z",
        "2026-01-01T2400Z",
        "20260101T0600Z",
        "2026-01-01T0600+0200",
    ],
)
def test_parse_analysis_time_rejects(bad: str) -> None:
    with pytest.raises(ValueError, match=r"analysis_time '.*' is malformed: expected YYYY"):
        paths.parse_analysis_time(bad)


def test_format_analysis_time_rejects_non_datetime() -> None:
    with pytest.raises(ValueError, match="analysis_time"):
        paths.format_analysis_time(dt.date(2026, 1, 1))  # type: ignore[arg-type]


# --- whole paths ------------------------------------------------------------------------------


@given(
    model_name=names,
    model_config=names,
    bbox=bboxes,
    resolution=st.one_of(resolutions, equal_resolutions),
    analysis_time=aware_times,
    data_kind=names,
    member=st.integers(min_value=0, max_value=10_000),
    prefix=st.sampled_from(["", "/data/root/", "s3://bucket/prefix/", "relative/"]),
)
def test_path_round_trip(
    model_name: str,
    model_config: str,
    bbox: dict,
    resolution: dict,
    analysis_time: dt.datetime,
    data_kind: str,
    member: int,
    prefix: str,
) -> None:
    path = paths.create_path(
        model_name, model_config, bbox, resolution, analysis_time, data_kind, member=member
    )
    assert path.count("/") == 6 and path.endswith(".zarr")
    parsed = paths.parse_path(prefix + path)
    assert set(parsed) == {
        "model_name",
        "model_config",
        "bbox",
        "resolution",
        "analysis_time",
        "member",
        "data_kind",
    }
    assert parsed["model_name"] == model_name
    assert parsed["model_config"] == model_config
    assert all(same_number(parsed["bbox"][k], bbox[k]) for k in paths.BBOX_KEYS)
    _assert_resolution_equal(parsed["resolution"], resolution)
    assert parsed["analysis_time"] == analysis_time
    assert parsed["analysis_time"].tzinfo is UTC
    assert parsed["member"] == member and type(parsed["member"]) is int
    assert parsed["data_kind"] == data_kind
    # parse -> create gives back the same relative path
    again = paths.create_path(**parsed)
    assert again == path


def test_path_example_and_dmi_call() -> None:
    """The call in DMI's own test works unchanged (positional, DMI's resolution keys)."""
    bbox = {"lon_min": -10.5, "lat_min": 35.0, "lon_max": 10.5, "lat_max": 45.0}
    resolution = {"lon_resolution": 0.1, "lat_resolution": 0.2, "unit": "deg"}
    analysis_time = dt.datetime(2023, 1, 1, 12, 0, 0)
    path = paths.create_path(
        "harmonie_cy46", "default", bbox, resolution, analysis_time, "surface_levels"
    )
    assert path == (
        "harmonie_cy46/default/w-10p5_s35p0_e10p5_n45p0/dx0p1deg_dy0p2deg/"
        "2023-01-01T1200Z/member0/surface_levels.zarr"
    )
    parsed = paths.parse_path(path)
    assert parsed["bbox"] == bbox
    assert parsed["resolution"]["lon_resolution"] == 0.1
    assert parsed["resolution"]["unit"] == "deg"
    assert parsed["analysis_time"] == analysis_time.replace(tzinfo=UTC)
    assert parsed["member"] == 0


def test_parse_path_with_prefix_and_trailing_slash() -> None:
    rel = "dini/v1/w-10_s50_e20_n60/dx2p5km_dy2p5km/2026-01-01T0600Z/member3/pressure_levels.zarr"
    for prefix in ("s3://bucket/root/", "/data/root/", "file:///tmp/x/"):
        parsed = paths.parse_path(prefix + rel + "/")
        assert parsed["model_name"] == "dini"
        assert parsed["resolution"] == {"dx": 2.5, "dy": 2.5, "units": "km"}
        assert parsed["member"] == 3
        assert parsed["data_kind"] == "pressure_levels"


GOOD = "m/c/w10_s5_e3_n4/dx1km_dy1km/2026-01-01T0600Z/member0/surface.zarr"


@pytest.mark.parametrize(
    ("path", "component", "value"),
    [
        ("m/c/w10_s5_e3/dx1km_dy1km/2026-01-01T0600Z/member0/surface.zarr", "bbox", "w10_s5_e3"),
        (
            "m/c/w10_s5_e3_n4/dx2km_dy2p5/2026-01-01T0600Z/member0/surface.zarr",
            "resolution",
            "dx2km_dy2p5",
        ),
        (
            "m/c/w10_s5_e3_n4/dx1km_dy1km/2026-01-01T06:00Z/member0/surface.zarr",
            "analysis_time",
            "2026-01-01T06:00Z",
        ),
        (
            "m/c/w10_s5_e3_n4/dx1km_dy1km/2026-01-01T0600Z/member-1/surface.zarr",
            "member",
            "member-1",
        ),
        ("m/c/w10_s5_e3_n4/dx1km_dy1km/2026-01-01T0600Z/m0/surface.zarr", "member", "m0"),
        (
            "m/c/w10_s5_e3_n4/dx1km_dy1km/2026-01-01T0600Z/member0/surface.nc",
            "data_kind",
            "surface.nc",
        ),
        ("m/c/w10_s5_e3_n4/dx1km_dy1km/2026-01-01T0600Z/member0/.zarr", "data_kind", ".zarr"),
        ("m/c/w10_s5_e3_n4/dx1km_dy1km/2026-01-01T0600Z/member0/...zarr", "data_kind", "...zarr"),
        ("m//w10_s5_e3_n4/dx1km_dy1km/2026-01-01T0600Z/member0/surface.zarr", "model_config", ""),
    ],
)
def test_parse_path_names_bad_component(path: str, component: str, value: str) -> None:
    with pytest.raises(ValueError) as info:
        paths.parse_path(path)
    message = str(info.value)
    assert message.startswith(f"{component} component {value!r} of path {path!r} is malformed")
    assert "expected" in message


def test_parse_path_bbox_message_is_the_documented_one() -> None:
    path = GOOD.replace("w10_s5_e3_n4", "w10_s5_e3")
    with pytest.raises(ValueError) as info:
        paths.parse_path(path)
    assert str(info.value) == (
        f"bbox component 'w10_s5_e3' of path {path!r} is malformed: "
        "expected w<lon_min>_s<lat_min>_e<lon_max>_n<lat_max>"
    )


def test_parse_path_too_short() -> None:
    with pytest.raises(ValueError, match="expected at least 7"):
        paths.parse_path("m/c/w10_s5_e3_n4/dx1km_dy1km/2026-01-01T0600Z/surface.zarr")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"model_name": ""}, "model_name"),
        ({"model_name": "a/b"}, "model_name"),
        ({"model_config": ".."}, "model_config"),
        ({"data_kind": ""}, "data_kind"),
        ({"data_kind": "x/y"}, "data_kind"),
        ({"member": -1}, "member"),
        ({"member": 1.0}, "member"),
        ({"member": True}, "member"),
        ({"bbox": {"lon_min": 1}}, "bbox"),
        ({"resolution": {"dx": 1, "dy": 1, "units": "ft"}}, "units"),
        ({"analysis_time": "yesterday"}, "analysis_time"),
    ],
)
def test_create_path_rejects(kwargs: dict, match: str) -> None:
    args = {
        "model_name": "m",
        "model_config": "c",
        "bbox": {"lon_min": 0, "lat_min": 0, "lon_max": 1, "lat_max": 1},
        "resolution": {"dx": 1, "dy": 1, "units": "km"},
        "analysis_time": dt.datetime(2026, 1, 1),
        "data_kind": "surface",
    } | kwargs
    with pytest.raises(ValueError, match=match):
        paths.create_path(**args)
