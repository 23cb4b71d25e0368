"""GRIB2 product writer: WMO encoding of every canonical variable, read back with ecCodes and
cfgrib (names, levels, steps, valid times, members, latitude order, values)."""

from __future__ import annotations

import json

import eccodes
import numpy as np
import pytest
import xarray as xr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from weather_assets.canonical import VARIABLES
from weather_assets.products.grib2 import (
    PARAMETERS,
    generating_process_identifier,
    sidecar_path,
    write_grib2,
)

T0 = np.datetime64("2026-01-01T06:00", "ns")
LEADS = np.array([6, 12], dtype="timedelta64[h]").astype("timedelta64[ns]")
LEVELS = np.array([500, 850])
ATTRS = {"model": "fno-demo", "artifact_version": "2026.01.1", "product": "global-demo"}
# What each canonical variable must read back as: (discipline, category, number,
# typeOfFirstFixedSurface, typeOfLevel, shortName, paramId, ecCodes name, cfgrib name).
EXPECTED = {
    "2m_temperature": (0, 0, 0, 103, "heightAboveGround", "2t", 167, "2 metre temperature", "t2m"),
    "10m_u_component_of_wind": (
        0,
        2,
        2,
        103,
        "heightAboveGround",
        "10u",
        165,
        "10 metre U wind component",
        "u10",
    ),
    "10m_v_component_of_wind": (
        0,
        2,
        3,
        103,
        "heightAboveGround",
        "10v",
        166,
        "10 metre V wind component",
        "v10",
    ),
    "mean_sea_level_pressure": (
        0,
        3,
        0,
        101,
        "meanSea",
        "msl",
        151,
        "Mean sea level pressure",
        "msl",
    ),
    "geopotential": (0, 3, 4, 100, "isobaricInhPa", "z", 129, "Geopotential", "z"),
    "temperature": (0, 0, 0, 100, "isobaricInhPa", "t", 130, "Temperature", "t"),
    "u_component_of_wind": (0, 2, 2, 100, "isobaricInhPa", "u", 131, "U component of wind", "u"),
    "v_component_of_wind": (0, 2, 3, 100, "isobaricInhPa", "v", 132, "V component of wind", "v"),
    "specific_humidity": (0, 1, 0, 100, "isobaricInhPa", "q", 133, "Specific humidity", "q"),
}
HEIGHTS = {"2m_temperature": 2, "10m_u_component_of_wind": 10, "10m_v_component_of_wind": 10}


def test_every_canonical_variable_has_a_grib2_encoding():
    assert set(PARAMETERS) == set(VARIABLES) == set(EXPECTED)
    for name, info in VARIABLES.items():
        assert (PARAMETERS[name].type_of_level == "isobaricInhPa") == info.has_levels


def forecast(
    members: int = 0,
    lat: np.ndarray | None = None,
    lon: np.ndarray | None = None,
    seed: int = 0,
) -> xr.Dataset:
    """A canonical forecast of every canonical variable, values spread over their range."""
    lat = np.arange(-10.0, 10.1, 5.0) if lat is None else lat
    lon = np.arange(0.0, 20.0, 5.0) if lon is None else lon
    rng = np.random.default_rng(seed)
    data = {}
    for name, info in VARIABLES.items():
        dims = ["time", "lead_time"] + (["member"] if members else [])
        dims += (["level"] if info.has_levels else []) + ["latitude", "longitude"]
        shape = [1, LEADS.size] + ([members] if members else [])
        shape += ([LEVELS.size] if info.has_levels else []) + [lat.size, lon.size]
        data[name] = xr.DataArray(
            rng.uniform(info.valid_min, info.valid_max, shape),
            dims=dims,
            attrs={"units": info.units},
        )
    coords = {"time": [T0], "lead_time": LEADS, "level": LEVELS, "latitude": lat, "longitude": lon}
    if members:
        coords["member"] = np.arange(members)
    ds = xr.Dataset(data, coords=coords)
    return ds.assign_coords(valid_time=(("time", "lead_time"), ds.time.values[:, None] + LEADS))


def tolerance(field: np.ndarray, bits: int = 16) -> float:
    """The packing's bound: one step of the scaled integers plus float32 reference rounding."""
    finite = field[np.isfinite(field)]
    span = float(finite.max() - finite.min())
    return span / (2**bits - 1) + 1e-6 * float(np.abs(finite).max()) + 1e-12


def messages(path) -> list[dict]:
    """Keys and values of every message, via ecCodes."""
    keys = (
        "discipline",
        "parameterCategory",
        "parameterNumber",
        "typeOfFirstFixedSurface",
        "typeOfLevel",
        "level",
        "shortName",
        "paramId",
        "name",
        "units",
        "edition",
        "productDefinitionTemplateNumber",
        "gridDefinitionTemplateNumber",
        "dataDate",
        "dataTime",
        "step",
        "stepUnits",
        "indicatorOfUnitOfTimeRange",
        "forecastTime",
        "validityDate",
        "validityTime",
        "typeOfProcessedData",
        "typeOfGeneratingProcess",
        "generatingProcessIdentifier",
        "jScansPositively",
        "iScansNegatively",
        "Ni",
        "Nj",
        "packingType",
        "bitsPerValue",
        "perturbationNumber",
        "numberOfForecastsInEnsemble",
        "typeOfEnsembleForecast",
        "centre",
        "bitmapPresent",
    )
    out = []
    with open(path, "rb") as f:
        while (h := eccodes.codes_grib_new_from_file(f)) is not None:
            try:
                msg = {k: eccodes.codes_get(h, k) for k in keys if eccodes.codes_is_defined(h, k)}
                for key in (  # code-table keys as numbers
                    "typeOfFirstFixedSurface",
                    "centre",
                    "typeOfProcessedData",
                    "typeOfGeneratingProcess",
                    "typeOfEnsembleForecast",
                ):
                    if not eccodes.codes_is_defined(h, key):
                        continue
                    msg[key] = eccodes.codes_get(h, key, int)
                msg["values"] = eccodes.codes_get_values(h).reshape(msg["Nj"], msg["Ni"])
                msg["lats"] = eccodes.codes_get_array(h, "distinctLatitudes")
                msg["lons"] = eccodes.codes_get_array(h, "distinctLongitudes")
                msg["missingValue"] = eccodes.codes_get(h, "missingValue")
                out.append(msg)
            finally:
                eccodes.codes_release(h)
    return out


def expected_fields(ds: xr.Dataset):
    """(variable, member, lead index, level, field) in the writer's message order."""
    members = list(ds["member"].values) if "member" in ds.dims else [None]
    for member in members:
        for li in range(ds.sizes["lead_time"]):
            for name, da in ds.data_vars.items():
                sel = {"time": 0, "lead_time": li} | ({} if member is None else {"member": member})
                cell = da.isel(sel)
                for level in cell["level"].values if "level" in cell.dims else [None]:
                    field = cell.sel(level=level) if level is not None else cell
                    yield str(name), member, li, level, field.values


@pytest.mark.parametrize("members", [0, 2], ids=["deterministic", "ensemble"])
def test_every_variable_reads_back_through_eccodes(tmp_path, members):
    ds = forecast(members)
    path = write_grib2(ds, tmp_path / "product.grib2", attrs=ATTRS)
    got = messages(path)
    want = list(expected_fields(ds))
    assert len(got) == len(want) == (members or 1) * 2 * (4 + 5 * 2)
    gpi = generating_process_identifier(ATTRS)
    for msg, (name, member, li, level, field) in zip(got, want, strict=True):
        d, c, n, surface, tol_name, short, pid, long_name, _ = EXPECTED[name]
        assert (msg["discipline"], msg["parameterCategory"], msg["parameterNumber"]) == (d, c, n)
        assert msg["typeOfFirstFixedSurface"] == surface
        assert (msg["typeOfLevel"], msg["shortName"], msg["paramId"]) == (tol_name, short, pid)
        assert msg["name"] == long_name
        if level is not None:
            assert msg["level"] == level
        elif name in HEIGHTS:
            assert msg["level"] == HEIGHTS[name]
        assert msg["edition"] == 2 and msg["gridDefinitionTemplateNumber"] == 0
        assert (msg["dataDate"], msg["dataTime"]) == (20260101, 600)
        hours = int(LEADS[li] / np.timedelta64(1, "h"))
        assert (msg["step"], msg["indicatorOfUnitOfTimeRange"], msg["forecastTime"]) == (
            hours,
            1,
            hours,
        )
        valid = T0 + LEADS[li]
        assert msg["validityDate"] == 20260101
        assert msg["validityTime"] == int(str(valid)[11:13]) * 100
        assert msg["generatingProcessIdentifier"] == gpi
        assert msg["centre"] == 255
        assert msg["jScansPositively"] == 1 and msg["iScansNegatively"] == 0
        assert msg["packingType"] == "grid_ccsds" and msg["bitsPerValue"] == 16
        np.testing.assert_allclose(msg["lats"], ds.latitude.values)
        np.testing.assert_allclose(msg["lons"], ds.longitude.values)
        if member is None:
            assert msg["productDefinitionTemplateNumber"] == 0
            assert msg["typeOfProcessedData"] == 1 and msg["typeOfGeneratingProcess"] == 2
        else:
            assert msg["productDefinitionTemplateNumber"] == 1
            assert msg["perturbationNumber"] == member
            assert msg["numberOfForecastsInEnsemble"] == members
            assert msg["typeOfEnsembleForecast"] == (0 if member == 0 else 3)
            assert msg["typeOfProcessedData"] == 5 and msg["typeOfGeneratingProcess"] == 4
        assert np.abs(msg["values"] - field).max() <= tolerance(field), (name, member, li, level)


def _cfgrib(path, **keys) -> xr.Dataset:
    return xr.open_dataset(
        path,
        engine="cfgrib",
        backend_kwargs={"filter_by_keys": keys, "indexpath": "", "read_keys": ["paramId"]},
    ).load()


@pytest.mark.parametrize("members", [0, 2], ids=["deterministic", "ensemble"])
def test_every_variable_reads_back_through_cfgrib(tmp_path, members):
    ds = forecast(members)
    path = write_grib2(ds, tmp_path / "product.grib2", attrs=ATTRS)
    opened = {
        "isobaricInhPa": _cfgrib(path, typeOfLevel="isobaricInhPa"),
        "meanSea": _cfgrib(path, typeOfLevel="meanSea"),
        2: _cfgrib(path, typeOfLevel="heightAboveGround", level=2),
        10: _cfgrib(path, typeOfLevel="heightAboveGround", level=10),
    }
    seen = set()
    for name, info in VARIABLES.items():
        *_, tol_name, short, pid, long_name, cf_name = EXPECTED[name]
        got = opened[HEIGHTS.get(name, tol_name)]
        da = got[cf_name]
        seen.add(cf_name)
        assert da.attrs["GRIB_shortName"] == short and da.attrs["GRIB_paramId"] == pid
        assert da.attrs["GRIB_name"] == long_name
        assert da.attrs["GRIB_units"].replace("**", "") == info.units  # m**2 s**-2 == m2 s-2
        assert da.attrs["GRIB_typeOfLevel"] == tol_name
        assert got["time"].values == T0
        np.testing.assert_array_equal(got["step"].values, LEADS)
        np.testing.assert_array_equal(got["valid_time"].values, T0 + LEADS)
        np.testing.assert_array_equal(got["latitude"].values, ds.latitude.values)  # south first
        np.testing.assert_array_equal(got["longitude"].values, ds.longitude.values)
        want = ds[name].isel(time=0).rename(lead_time="step")
        if members:
            np.testing.assert_array_equal(got["number"].values, np.arange(members))
            want = want.rename(member="number")
        else:
            assert "number" not in got.dims
        if info.has_levels:
            want = want.rename(level="isobaricInhPa")
            assert sorted(got["isobaricInhPa"].values) == sorted(LEVELS)
            da = da.sel(isobaricInhPa=LEVELS)  # cfgrib sorts pressure top-down
            want = want.assign_coords(isobaricInhPa=da["isobaricInhPa"].values)
        elif name in HEIGHTS:
            assert float(got["heightAboveGround"]) == HEIGHTS[name]
        a, b = xr.align(
            da.drop_vars([c for c in da.coords if c not in da.dims]),
            want.drop_vars([c for c in want.coords if c not in want.dims]),
            join="exact",
        )
        order = [d for d in b.dims]
        diff = np.abs(a.transpose(*order).values.astype(np.float64) - b.values)
        assert diff.max() <= tolerance(b.values), name
    assert seen == {p.cf_var_name for p in PARAMETERS.values()}


def test_descending_latitudes_and_signed_longitudes_keep_their_order(tmp_path):
    lat = np.arange(10.0, -10.1, -2.5)
    lon = np.arange(-10.0, 10.1, 2.5)
    ds = forecast(lat=lat, lon=lon)[["2m_temperature", "temperature"]]
    path = write_grib2(ds, tmp_path / "north_first.grib2", attrs=ATTRS)
    got = messages(path)
    assert {m["jScansPositively"] for m in got} == {0}
    np.testing.assert_allclose(got[0]["lats"], lat)
    np.testing.assert_allclose((got[0]["lons"] - lon) % 360, 0)
    np.testing.assert_allclose(got[0]["values"], ds["2m_temperature"].values[0, 0], atol=0.01)
    back = _cfgrib(path, typeOfLevel="heightAboveGround")
    np.testing.assert_array_equal(back.latitude.values, lat)  # north first, as written
    assert np.abs(back.t2m.values - ds["2m_temperature"].values[0]).max() < 0.01


def test_sidecar_holds_model_and_artifact_version(tmp_path):
    path = write_grib2(forecast(2), tmp_path / "p.grib2", attrs=ATTRS)
    meta = json.loads(sidecar_path(path).read_text())
    assert meta["attrs"] == ATTRS
    assert meta["generatingProcessIdentifier"] == generating_process_identifier(ATTRS)
    assert meta["messages"] == len(messages(path))
    assert meta["productDefinitionTemplateNumber"] == 1
    assert meta["numberOfForecastsInEnsemble"] == 2
    import hashlib

    assert meta["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert meta["parameters"]["mean_sea_level_pressure"]["shortName"] == "msl"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.grib2", "p.grib2.json"]


def test_generating_process_identifier_is_stable_and_overridable():
    a = generating_process_identifier({"model": "fno", "artifact_version": "1"})
    assert a == generating_process_identifier({"model": "fno", "artifact_version": "1"})
    assert 1 <= a <= 254
    assert generating_process_identifier({"generating_process_identifier": "42"}) == 42
    with pytest.raises(ValueError, match="0..254"):
        generating_process_identifier({"generating_process_identifier": "300"})


def test_simple_packing_and_more_bits_are_finer(tmp_path):
    ds = forecast()[["geopotential"]]
    path = write_grib2(ds, tmp_path / "z.grib2", attrs=ATTRS, packing="simple", bits_per_value=24)
    for msg, (*_, field) in zip(messages(path), expected_fields(ds), strict=True):
        assert msg["packingType"] == "grid_simple" and msg["bitsPerValue"] == 24
        assert np.abs(msg["values"] - field).max() <= tolerance(field, 24)


def test_missing_values_go_through_a_bitmap(tmp_path):
    ds = forecast()[["2m_temperature"]]
    ds["2m_temperature"][0, 0, 1, 2] = np.nan
    path = write_grib2(ds, tmp_path / "nan.grib2", attrs=ATTRS)
    first = messages(path)[0]
    assert first["bitmapPresent"] == 1
    assert first["values"][1, 2] == first["missingValue"]
    back = _cfgrib(path, typeOfLevel="heightAboveGround")
    assert np.isnan(back.t2m.values[0, 1, 2]) and np.isfinite(back.t2m.values).sum() == 2 * 20 - 1


def test_sub_hourly_lead_times_are_written_in_minutes(tmp_path):
    ds = forecast()[["2m_temperature"]]
    ds = ds.assign_coords(lead_time=np.array([30, 90], dtype="timedelta64[m]").astype("m8[ns]"))
    got = messages(write_grib2(ds, tmp_path / "m.grib2", attrs=ATTRS))
    assert [(m["indicatorOfUnitOfTimeRange"], m["forecastTime"]) for m in got] == [(0, 30), (0, 90)]
    assert [m["validityTime"] for m in got] == [630, 730]


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda ds: ds.rename(temperature="air_temp"), "no GRIB2 encoding"),
        (lambda ds: ds.assign(temperature=ds.temperature.assign_attrs(units="degC")), "canonical"),
        (lambda ds: ds.assign_coords(latitude=[-10, -5, 0, 5, 11.0]), "not regularly spaced"),
        (lambda ds: ds.assign_coords(level=[500.001, 850]), "whole number of Pa"),
        (lambda ds: ds.isel(time=0), "canonical forecast has"),
        (
            lambda ds: ds.assign_coords(lead_time=ds.lead_time.values + np.timedelta64(1, "s")),
            "whole number of minutes",
        ),
    ],
    ids=[
        "unknown-variable",
        "wrong-units",
        "irregular-grid",
        "fractional-level",
        "no-time",
        "seconds-lead",
    ],
)
def test_bad_forecasts_are_refused_and_leave_nothing(tmp_path, change, match):
    target = tmp_path / "bad.grib2"
    target.write_bytes(b"previous version")
    with pytest.raises(ValueError, match=match):
        write_grib2(change(forecast()), target, attrs=ATTRS)
    assert target.read_bytes() == b"previous version"
    assert [p.name for p in tmp_path.iterdir()] == ["bad.grib2"]


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    nlat=st.integers(2, 6),
    nlon=st.integers(2, 6),
    step=st.sampled_from([0.25, 0.5, 1.0, 2.5]),
    south_first=st.booleans(),
    packing=st.sampled_from(["ccsds", "simple"]),
    bits=st.sampled_from([8, 12, 16, 24]),
    scale=st.floats(1e-4, 1e5),
    offset=st.floats(-1e5, 1e5),
    seed=st.integers(0, 2**16),
)
def test_random_fields_round_trip_within_packing_precision(
    tmp_path, nlat, nlon, step, south_first, packing, bits, scale, offset, seed
):
    lat = np.arange(nlat) * step - 30.0
    lat = lat if south_first else lat[::-1]
    lon = np.arange(nlon) * step + 100.0
    values = offset + scale * np.random.default_rng(seed).standard_normal((1, 1, nlat, nlon))
    ds = xr.Dataset(
        {"2m_temperature": (("time", "lead_time", "latitude", "longitude"), values)},
        coords={"time": [T0], "lead_time": LEADS[:1], "latitude": lat, "longitude": lon},
    )
    path = write_grib2(
        ds, tmp_path / f"r{seed}.grib2", attrs=ATTRS, packing=packing, bits_per_value=bits
    )
    (msg,) = messages(path)
    np.testing.assert_allclose(msg["lats"], lat)
    np.testing.assert_allclose(msg["lons"], lon)
    assert np.abs(msg["values"] - values[0, 0]).max() <= tolerance(values, bits)


def test_ensemble_member_numbers_must_fit_grib(tmp_path):
    ds = forecast(2)
    with pytest.raises(ValueError, match="distinct and in 0..254"):
        write_grib2(ds.assign_coords(member=[0, 0]), tmp_path / "a.grib2", attrs=ATTRS)
    with pytest.raises(ValueError, match="numberOfForecastsInEnsemble"):
        attrs = ATTRS | {"number_of_forecasts_in_ensemble": "1"}
        write_grib2(ds, tmp_path / "b.grib2", attrs=attrs)
    assert list(tmp_path.iterdir()) == []
    path = write_grib2(
        ds.assign_coords(member=[0, 7]),
        tmp_path / "c.grib2",
        attrs=ATTRS | {"number_of_forecasts_in_ensemble": "51"},
    )
    got = {(m["perturbationNumber"], m["numberOfForecastsInEnsemble"]) for m in messages(path)}
    assert got == {(0, 51), (7, 51)}
