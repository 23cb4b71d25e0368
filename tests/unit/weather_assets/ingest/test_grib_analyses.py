"""Only analyses reach raw_inputs: forecasts, stray members and misplaced levels are refused.

Test GRIB files are copies of the shared ERA5 sample edited with ecCodes (tests/grib_factory);
the cycle is 2017-01-01T12 (the factory's default).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import eccodes
import numpy as np
import pytest
import xarray as xr

from resources.upstream import UpstreamSource
from tests import grib_factory as gf
from weather_assets.ingest.convert import to_canonical
from weather_assets.ingest.readers import read_grib, read_netcdf
from weather_assets.settings import load_settings
from weather_assets.simulator import simulate_state

T = np.datetime64("2017-01-01T12:00", "ns")
AT = "not an analysis valid at 2017-01-01T12:00"


@pytest.fixture(scope="session")
def gribs(tmp_path_factory) -> dict[str, Path]:
    """Every test GRIB, written once per session."""
    d = tmp_path_factory.mktemp("gribs")

    def level_is(h: int, name: str, level: int) -> bool:
        return eccodes.codes_get(h, "shortName") == name and eccodes.codes_get(h, "level") == level

    with gf.era5_messages() as handles:  # t at 500 hPa twice: in hPa, then in Pa (+5 K)
        twice = [eccodes.codes_clone(h) for h in handles]
        for h in handles:
            if level_is(h, "t", 500):
                pa = gf.edited(h, typeOfLevel="isobaricInPa", level=50000)
                eccodes.codes_set_values(pa, eccodes.codes_get_values(pa) + 5.0)
                twice.append(pa)
        gf.write_messages(d / "hpa_and_pa.grib", twice)
    return {
        "fc72": gf.forecast_copy(d / "fc72.grib"),
        "fc72_member5": gf.forecast_copy(d / "fc72_member5.grib", number=5),
        "member5": gf.member_copy(d / "member5.grib"),
        "pa_grib2": gf.pa_levels_copy(d / "pa_grib2.grib", pa_levels=(850,), edition=2),
        "pa_grib1": gf.pa_levels_copy(d / "pa_grib1.grib", pa_levels=(500,), edition=1),
        "pa_sub_hpa": gf.copy_era5(
            d / "pa_sub_hpa.grib",
            lambda h: (
                {"edition": 2, "typeOfLevel": "isobaricInPa", "level": 50}
                if level_is(h, "t", 850)
                else {"edition": 2}
            ),
        ),
        "hpa_and_pa": d / "hpa_and_pa.grib",
        "mixed_fc_first": gf.mixed_analysis_forecast_copy(d / "mixed_fc_first.grib"),
        "mixed_an_first": gf.mixed_analysis_forecast_copy(
            d / "mixed_an_first.grib", forecasts_first=False
        ),
        "mixed_single": gf.mixed_analysis_forecast_copy(
            d / "mixed_single.grib", short_names=("t",), levels=(850,)
        ),
        "t_forecast_only": gf.copy_era5(  # z analyses, but t only as 12 h forecasts
            d / "t_forecast_only.grib",
            lambda h: (
                {"dataType": "fc", "stepRange": "12"}
                if eccodes.codes_get(h, "shortName") == "t"
                else {}
            ),
        ),
        "single": gf.single_level_copy(d / "single.grib"),
        "missing": gf.grib_with_missing_values(d / "missing.grib", points=slice(100, 110)),
        "hole": gf.copy_era5(  # all members, but member 3 lacks t at 850 hPa
            d / "hole.grib",
            lambda h: None if level_is(h, "t", 850) and eccodes.codes_get(h, "number") == 3 else {},
            numbers=None,
        ),
    }


@pytest.fixture(scope="session")
def era5(era5_grib) -> xr.Dataset:
    """Reference: the cycle's ten ERA5 members as cfgrib reads the (homogeneous) sample."""
    raw = xr.open_dataset(era5_grib, engine="cfgrib", backend_kwargs={"indexpath": ""})
    raw = raw.sel(time=[T]).drop_vars(["step", "valid_time"])
    return to_canonical(raw, source="reference").load()


def _one_sentence(message: str) -> None:
    assert "\n" not in message and ". " not in message.rstrip(".")


# 1. Forecasts and stray members used as the cycle's analysis.


@pytest.mark.parametrize("ensemble", [False, True])
def test_a_72_h_forecast_is_refused(gribs, ensemble):
    path = gribs["fc72"]
    with pytest.raises(ValueError) as err:
        read_grib(str(path), T, ensemble=ensemble)
    msg = str(err.value)
    assert msg == (
        f"GRIB file {path}: message 1 (z at 500 hPa, member 0) is a forecast: dataType 'fc', "
        f"step 72 h, valid 2017-01-04T12:00, {AT}"
    )
    _one_sentence(msg)


def test_a_forecast_of_member_5_names_step_type_and_member(gribs):
    with pytest.raises(ValueError, match=r"message 1 \(z at 500 hPa, member 5\) is a forecast: "):
        read_grib(str(gribs["fc72_member5"]), T, ensemble=True)


def test_member_5_alone_is_refused_unless_the_source_is_an_ensemble(gribs, era5):
    path = gribs["member5"]
    with pytest.raises(ValueError) as err:
        read_grib(str(path), T)
    msg = str(err.value)
    assert msg.startswith(f"GRIB file {path}: message 1 (z at 500 hPa, member 5) is ensemble ")
    assert "member 5" in msg and "not an ensemble" in msg
    _one_sentence(msg)
    ds = read_grib(str(path), T, ensemble=True)
    assert list(ds["member"].values) == [5]  # member 5 stays member 5, not member 0
    xr.testing.assert_equal(ds, era5.sel(member=[5]))


def test_ensemble_file_needs_the_ensemble_setting(era5_grib, era5):
    with pytest.raises(ValueError, match=r"member 1\) is ensemble member 1 .*members 0\.\.9"):
        read_grib(str(era5_grib), T)
    assert list(era5["member"].values) == list(range(10))
    assert era5["geopotential"].dims == ("member", "time", "level", "latitude", "longitude")


def test_forecast_upstream_through_dagster_commits_nothing(wx_env, gribs, monkeypatch):
    import definitions

    path = gribs["fc72"]
    for var, value in {
        "WXPLAT_UPSTREAM_KIND": "grib",
        "WXPLAT_UPSTREAM_URL": str(path),
        "WXPLAT_UPSTREAM_NAME": "era5",
        "WXPLAT_PARTITIONS_START": "2017-01-01T0000Z",
        "WXPLAT_PARTITIONS_CRON": "0 */12 * * *",
        "WXPLAT_DOMAIN": "w-30_s30_e60_n72",
        "WXPLAT_RESOLUTION": "dx3deg_dy3deg",
    }.items():
        monkeypatch.setenv(var, value)
    settings = load_settings()
    result = (
        definitions.build_definitions(settings)
        .resolve_implicit_global_asset_job_def()
        .execute_in_process(
            partition_key="2017-01-01T1200Z",
            instance=dg.DagsterInstance.ephemeral(),
            asset_selection=[dg.AssetKey(["raw_inputs", "era5"])],
            raise_on_error=False,
        )
    )
    assert not result.success
    text = str(result.failure_data_for_node("raw_inputs__era5").error)
    assert f"GRIB file {path}: message 1 (z at 500 hPa, member 0) is a forecast" in text
    assert "step 72 h" in text and AT in text
    root = Path(settings.storage_root)
    assert not list(root.rglob("*.zarr")) and not list(root.rglob(".zmetadata"))


# 2. Pressure levels coded in Pa.


@pytest.mark.parametrize("name", ["pa_grib2", "pa_grib1"])
def test_pa_levels_are_converted_to_hpa(gribs, era5, name):
    ds = read_grib(str(gribs[name]), T)
    assert list(ds["level"].values) == [500, 850]
    assert set(ds.data_vars) == {"geopotential", "temperature"}
    assert ds["temperature"].dims == ("time", "level", "latitude", "longitude")
    xr.testing.assert_equal(ds, era5.sel(member=0, drop=True))


def test_a_level_finer_than_hpa_is_refused_by_name(gribs):
    path = gribs["pa_sub_hpa"]
    with pytest.raises(ValueError) as err:
        read_grib(str(path), T)
    assert str(err.value) == (
        f"GRIB file {path}: message 4 (t at 50 Pa, member 0) cannot be placed in the canonical "
        "dataset: 0.5 hPa is not a positive whole number of hPa"
    )


def test_the_same_field_in_hpa_and_pa_is_refused_not_dropped(gribs):
    path = gribs["hpa_and_pa"]
    with pytest.raises(ValueError) as err:
        read_grib(str(path), T)
    assert str(err.value) == (
        f"GRIB file {path}: message 5 (t at 50000 Pa, member 0) is a second analysis of the "
        "field of message 2 (t at 500 hPa, member 0); the file must hold each field once"
    )


def test_a_missing_message_is_refused_not_filled(gribs):
    with pytest.raises(ValueError, match="holds no temperature at 850 hPa for member 3"):
        read_grib(str(gribs["hole"]), T, ensemble=True)


# 3. Analyses beside forecasts; single-level files.


@pytest.mark.parametrize("name", ["mixed_fc_first", "mixed_an_first"])
def test_only_the_analysis_is_taken_beside_forecasts(gribs, era5, name):
    ds = read_grib(str(gribs[name]), T)
    assert dict(ds.sizes) == {"time": 1, "level": 2, "latitude": 61, "longitude": 120}
    assert ds["time"].values[0] == T
    xr.testing.assert_equal(ds, era5.sel(member=0, drop=True))


def test_a_forecast_without_its_analysis_is_refused(gribs):
    path = gribs["t_forecast_only"]
    with pytest.raises(ValueError) as err:
        read_grib(str(path), T)
    assert str(err.value) == (
        f"GRIB file {path}: message 2 (t at 500 hPa, member 0) is a forecast: dataType 'fc', "
        f"step 12 h, valid 2017-01-02T00:00, {AT}"
    )


@pytest.mark.parametrize("name", ["single", "mixed_single"])
def test_a_single_level_file_keeps_its_level(gribs, era5, name):
    ds = read_grib(str(gribs[name]), T)
    assert list(ds.data_vars) == ["temperature"]
    assert ds["temperature"].dims == ("time", "level", "latitude", "longitude")
    assert list(ds["level"].values) == [850]
    expected = era5["temperature"].sel(member=0, level=[850], drop=True)
    np.testing.assert_array_equal(ds["temperature"].values, expected.values)


# Missing values (bitmap) come out as NaN, for the checks to see.


def test_bitmap_missing_values_are_nan(gribs, era5):
    ds = read_grib(str(gribs["missing"]), T)
    t850 = ds["temperature"].sel(level=850)
    assert int(t850.isnull().sum()) == 10 and int(ds["geopotential"].isnull().sum()) == 0
    # GRIB points run north to south; the canonical latitude runs south to north.
    flat = t850.isel(time=0, latitude=slice(None, None, -1)).values.ravel()
    assert np.isnan(flat[100:110]).all() and not np.isnan(flat[:100]).any()


# 4. The setting reaches the reader through the resource.


def test_upstream_source_passes_the_ensemble_setting(gribs):
    src = UpstreamSource(kind="grib", url=str(gribs["member5"]))
    with pytest.raises(ValueError, match="is ensemble member 5"):
        src.read_cycle(datetime(2017, 1, 1, 12, tzinfo=UTC))
    ens = UpstreamSource(kind="grib", url=str(gribs["member5"]), ensemble=True)
    assert list(ens.read_cycle(datetime(2017, 1, 1, 12, tzinfo=UTC))["member"].values) == [5]


# 5. NetCDF: the same rule where the file says what it holds.

T0 = np.datetime64("2026-01-01T06:00", "ns")


def _netcdf(tmp_path: Path, ds: xr.Dataset) -> str:
    path = tmp_path / "up.nc"
    ds.to_netcdf(path, engine="h5netcdf")
    return str(path)


def test_netcdf_forecast_step_is_refused(tmp_path):
    ds = simulate_state(T0).assign_coords(step=np.timedelta64(72, "h"))
    path = _netcdf(tmp_path, ds)
    with pytest.raises(ValueError) as err:
        read_netcdf(path, T0)
    assert str(err.value) == (
        f"NetCDF file {path} is a forecast: its 'step' is 72 h, not 0 (an analysis)"
    )


def test_netcdf_step_dim_keeps_step_0(tmp_path):
    state = simulate_state(T0)
    steps = np.array([0, 6], dtype="timedelta64[h]").astype("timedelta64[ns]")
    ds = xr.concat([state, state + 1.0], dim="lead_time").assign_coords(lead_time=steps)
    out = read_netcdf(_netcdf(tmp_path, ds), T0)
    assert "lead_time" not in out.dims
    xr.testing.assert_allclose(out["temperature"], state["temperature"])


def test_netcdf_member_5_follows_the_ensemble_setting(tmp_path):
    path = _netcdf(tmp_path, simulate_state(T0).assign_coords(number=5))
    with pytest.raises(ValueError, match="coordinate 'number'.* is ensemble member 5 "):
        read_netcdf(path, T0)
    assert list(read_netcdf(path, T0, ensemble=True)["member"].values) == [5]


def test_netcdf_members_need_the_ensemble_setting(tmp_path):
    state = simulate_state(T0)
    ds = xr.concat([state] * 3, dim="realization").assign_coords(realization=[0, 1, 2])
    path = _netcdf(tmp_path, ds)
    with pytest.raises(ValueError, match="is ensemble member 1 .*members 0, 1, 2"):
        read_netcdf(path, T0)
    assert list(read_netcdf(path, T0, ensemble=True)["member"].values) == [0, 1, 2]


def test_netcdf_grib_data_type_is_checked(tmp_path):
    ds = simulate_state(T0)
    ds["temperature"].attrs["GRIB_dataType"] = "em"
    with pytest.raises(ValueError, match="'temperature' is not an analysis.*'em' .ensemble mean"):
        read_netcdf(_netcdf(tmp_path, ds), T0)


def test_netcdf_single_level_keeps_its_level(tmp_path):
    ds = simulate_state(T0)[["temperature"]].sel(level=850).rename(level="isobaricInhPa")
    out = read_netcdf(_netcdf(tmp_path, ds), T0)
    assert out["temperature"].dims == ("time", "level", "latitude", "longitude")
    assert list(out["level"].values) == [850]
