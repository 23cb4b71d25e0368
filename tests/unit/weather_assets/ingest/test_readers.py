"""Upstream sources to the canonical dataset: real ERA5 GRIB, NetCDF, zarr (local and S3)."""

import shutil
from datetime import UTC, datetime

import numpy as np
import pytest
import xarray as xr

from resources.sources import SOURCES
from resources.storage import Storage
from resources.upstream import UpstreamSource
from weather_assets.ingest.convert import subset_domain, to_canonical
from weather_assets.simulator import simulate_state

T_ERA5 = datetime(2017, 1, 1, 12, tzinfo=UTC)
T0 = datetime(2026, 1, 1, 6, tzinfo=UTC)


def test_era5_grib_members_levels_units(era5_grib):
    ds = UpstreamSource(kind="grib", url=str(era5_grib), ensemble=True).read_cycle(T_ERA5)
    assert set(ds.data_vars) == {"geopotential", "temperature"}
    assert ds["geopotential"].dims == ("member", "time", "level", "latitude", "longitude")
    assert list(ds["member"].values) == list(range(10))
    assert list(ds["level"].values) == [500, 850]
    assert ds["time"].values[0] == np.datetime64("2017-01-01T12:00", "ns")
    assert np.all(np.diff(ds["latitude"].values) > 0)  # GRIB is north to south; we are not
    assert ds["geopotential"].attrs["units"] == "m2 s-2"
    z500 = float(ds["geopotential"].sel(level=500).mean()) / 9.80665
    assert 5000 < z500 < 6000
    t850 = float(ds["temperature"].sel(level=850).mean())
    assert 250 < t850 < 290


def test_era5_missing_time_is_named(era5_grib):
    with pytest.raises(
        ValueError, match="no analysis for 2017-01-01T06:00.*holds: 2017-01-01T00:00"
    ):
        UpstreamSource(kind="grib", url=str(era5_grib)).read_cycle(
            datetime(2017, 1, 1, 6, tzinfo=UTC)
        )


def test_truncated_grib_is_refused(era5_grib, tmp_path):
    bad = tmp_path / "truncated.grib"
    bad.write_bytes(era5_grib.read_bytes()[: 100_000 + 123])
    with pytest.raises(ValueError, match=f"GRIB file {bad} is corrupt or truncated"):
        UpstreamSource(kind="grib", url=str(bad)).read_cycle(T_ERA5)
    garbage = tmp_path / "garbage.grib"
    garbage.write_bytes(b"this is not grib" * 100)
    with pytest.raises(ValueError, match=f"GRIB file {garbage} is corrupt or truncated"):
        UpstreamSource(kind="grib", url=str(garbage)).read_cycle(T_ERA5)


def test_missing_file_is_named(tmp_path):
    src = UpstreamSource(kind="grib", url=str(tmp_path / "era5_{analysis_time:%Y%m%d%H}.grib"))
    with pytest.raises(FileNotFoundError, match="era5_2017010112.grib does not exist"):
        src.read_cycle(T_ERA5)


def test_netcdf_template_source(tmp_path):
    ds = simulate_state(T0)
    # A provider's NetCDF: short names, latitude north to south, spelled-out units.
    raw = ds.rename({"geopotential": "z", "2m_temperature": "t2m", "level": "isobaricInhPa"})
    raw = raw.isel(latitude=slice(None, None, -1))
    raw["z"].attrs["units"] = "m**2 s**-2"
    raw.to_netcdf(tmp_path / "an_2026010106.nc", engine="h5netcdf")
    src = UpstreamSource(kind="netcdf", url=str(tmp_path / "an_{analysis_time:%Y%m%d%H}.nc"))
    out = src.read_cycle(T0)
    xr.testing.assert_allclose(out["geopotential"], ds["geopotential"])
    assert out["geopotential"].attrs["units"] == "m2 s-2"


@pytest.mark.parametrize(
    ("var", "units", "message"),
    [
        ("geopotential", "gpm", "geopotential height"),
        ("geopotential", "m", "geopotential height"),
        ("mean_sea_level_pressure", "hPa", "hPa, not Pa"),
    ],
)
def test_wrong_units_are_refused(var, units, message):
    ds = simulate_state(T0)
    ds[var].attrs["units"] = units
    with pytest.raises(
        ValueError, match=f"file x.nc: variable '{var}' has units '{units}'.*{message}"
    ):
        to_canonical(ds, source="file x.nc")


def test_required_variable_missing(tmp_path):
    store = Storage(str(tmp_path / "up"))
    store.write_zarr(
        simulate_state(T0).drop_vars("2m_temperature"), "2026-01-01T0600Z/member0/analysis.zarr"
    )
    src = UpstreamSource(
        kind="zarr", url=str(tmp_path / "up"), variables=["2m_temperature", "geopotential"]
    )
    with pytest.raises(KeyError, match="lacks required variable.*2m_temperature"):
        src.read_cycle(T0)


def test_zarr_source_on_s3(s3_bucket):
    bucket, endpoint = s3_bucket
    prefix = f"s3://{bucket}/nwp/sim/analysis/w0_s-90_e358_n90/dx2deg_dy2deg"
    src = UpstreamSource(kind="zarr", url=prefix, endpoint_url=endpoint)
    with pytest.raises(FileNotFoundError, match="has not arrived"):
        src.read_cycle(T0)
    from resources.storage import s3_options

    Storage(prefix, s3_options(endpoint)).write_zarr(
        simulate_state(T0), "2026-01-01T0600Z/member0/analysis.zarr"
    )
    ds = src.read_cycle(T0)
    xr.testing.assert_allclose(
        ds,
        simulate_state(T0)[list(ds.data_vars)],
    )
    assert src.source().cycle_members(T0) == [0]


def test_subset_domain_and_resolution():
    ds = simulate_state(T0)
    out = subset_domain(
        ds,
        {"lon_min": -20, "lat_min": 30, "lon_max": 40, "lat_max": 70},
        {"dx": 2, "dy": 2, "units": "deg"},
        source="sim",
    )
    assert out["longitude"].values[0] == -20 and out["longitude"].values[-1] == 40
    assert out.sizes["latitude"] == 21
    with pytest.raises(ValueError, match="grid spacing dx=2.0 deg differs .* dx=1 deg"):
        subset_domain(
            ds,
            {"lon_min": 0, "lat_min": 30, "lon_max": 40, "lat_max": 70},
            {"dx": 1, "dy": 2, "units": "deg"},
            source="sim",
        )
    with pytest.raises(ValueError, match="does not cover the domain"):
        subset_domain(
            ds,
            {"lon_min": 0, "lat_min": 31, "lon_max": 40, "lat_max": 70},
            {"dx": 2, "dy": 2, "units": "deg"},
            source="sim",
        )


def test_cycle_copied_in_whole_only_counts_when_complete(tmp_path):
    store = Storage(str(tmp_path / "up"))
    rel = "2026-01-01T0600Z/member0/analysis.zarr"
    store.write_zarr(simulate_state(T0), rel)
    (tmp_path / "up" / rel / ".zmetadata").unlink()  # a half-uploaded store has no marker yet
    src = UpstreamSource(kind="zarr", url=str(tmp_path / "up"))
    assert src.source().cycle_members(T0) == []
    shutil.rmtree(tmp_path / "up")


def test_unknown_kind_names_the_valid_ones():
    with pytest.raises(ValueError, match="unknown upstream source kind 'hdf4'.*grib, netcdf, zarr"):
        UpstreamSource(kind="hdf4", url="/data/x.hdf")
    assert set(SOURCES) == {"zarr", "grib", "netcdf"}


def test_file_sources_are_not_listed(tmp_path):
    src = UpstreamSource(name="era5", kind="netcdf", url=str(tmp_path / "an.nc"))
    with pytest.raises(ValueError, match="'era5' is netcdf: its cycles cannot be listed"):
        src.list_cycle_keys()
