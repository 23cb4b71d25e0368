"""The synthetic atmosphere: realistic, deterministic, one continuous trajectory."""

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
import xarray as xr

from weather_assets.canonical import VARIABLES
from weather_assets.ingest.simulate import check_cycle_range, write_simulated_cycles
from weather_assets.partitions import analysis_time_partitions
from weather_assets.simulator import DEFAULT_GRID, Grid, simulate_state

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_canonical_layout_and_ranges():
    ds = simulate_state(T0)
    assert set(ds.data_vars) >= {
        "2m_temperature",
        "10m_u_component_of_wind",
        "10m_v_component_of_wind",
        "mean_sea_level_pressure",
        "geopotential",
        "temperature",
    }
    assert ds["geopotential"].dims == ("time", "level", "latitude", "longitude")
    assert list(ds["level"].values) == [500, 850]
    assert ds.sizes["latitude"] == DEFAULT_GRID.latitude.size == 91
    assert np.all(np.diff(ds["latitude"].values) > 0)
    for name, da in ds.data_vars.items():
        info = VARIABLES[name]
        assert da.attrs["units"] == info.units
        assert info.valid_min <= float(da.min()) and float(da.max()) <= info.valid_max, name
    z = ds["geopotential"] / 9.80665
    assert 4800 < float(z.sel(level=500).mean()) < 6000  # 500 hPa height in metres
    assert 1000 < float(z.sel(level=850).mean()) < 1700
    assert float(ds["10m_u_component_of_wind"].std()) > 1.0


def test_deterministic_and_continuous():
    a, b = simulate_state(T0), simulate_state(T0)
    xr.testing.assert_identical(a, b)
    # A small step changes the state a little; a day changes it a lot (moving weather).
    small = simulate_state(T0 + timedelta(minutes=10))
    day = simulate_state(T0 + timedelta(hours=24))
    diff_small = float(np.abs(small["geopotential"].values - a["geopotential"].values).mean())
    diff_day = float(np.abs(day["geopotential"].values - a["geopotential"].values).mean())
    assert diff_small < diff_day / 20
    assert diff_day > 100  # m2 s-2: persistence is a poor 24 h forecast


def test_spatially_coherent():
    ds = simulate_state(T0)
    z = ds["geopotential"].sel(level=500).values[0]
    # Neighbouring points differ far less than the field varies.
    assert np.abs(np.diff(z, axis=1)).mean() < 0.1 * z.std()


def test_any_grid_and_levels():
    g = Grid(lat_min=30, lat_max=70, lon_min=-20, lon_max=40, step=0.5)
    ds = simulate_state(T0, grid=g, levels=(1000, 850, 500, 250))
    assert ds.sizes == {"time": 1, "latitude": 81, "longitude": 121, "level": 4}
    z = ds["geopotential"].mean(("time", "latitude", "longitude")).values
    assert np.all(np.diff(z) < 0)  # higher pressure, lower height


H = timedelta(hours=1)


@pytest.mark.parametrize(
    ("start", "end", "every", "message"),
    [
        (T0 + 6 * H, T0, 6 * H, "end 2026-01-01T0000Z is before start 2026-01-01T0600Z"),
        (T0, T0, 0 * H, "the step between cycles must be positive, not 0 h"),
        (
            T0 + 3 * H,
            T0 + 9 * H,
            6 * H,
            "start 2026-01-01T0300Z is off the partitions' cadence (0 */6 * * *): "
            "the nearest cycles are 2026-01-01T0000Z and 2026-01-01T0600Z",
        ),
        (
            T0,
            T0 + 12 * H,
            4 * H,
            "cycle 2026-01-01T0400Z, in steps of 4 h from 2026-01-01T0000Z, is off the "
            "partitions' cadence (0 */6 * * *)",
        ),
        (
            T0,
            T0 + 18 * H,
            12 * H,
            "end 2026-01-01T1800Z is not a whole number of 12 h steps after start "
            "2026-01-01T0000Z: the last cycle would be 2026-01-01T1200Z",
        ),
    ],
    ids=["end-before-start", "zero-step", "off-cadence", "step-off-cadence", "end-not-on-step"],
)
def test_bad_cycle_range_writes_nothing(tmp_path, start, end, every, message):
    parts = analysis_time_partitions("2026-01-01T0000Z", "0 */6 * * *")
    with pytest.raises(ValueError) as info:
        check_cycle_range(start, end, every, parts)
    assert message in str(info.value)
    with pytest.raises(ValueError):
        write_simulated_cycles(str(tmp_path), start, end, every, partitions_def=parts)
    assert list(tmp_path.iterdir()) == []


def test_cycle_range_on_cadence():
    parts = analysis_time_partitions("2026-01-01T0000Z", "0 0,12 * * *")
    check_cycle_range(T0, T0 + 36 * H, 12 * H, parts)
    # Before the first partition is still on the cadence (the partitions may start later).
    check_cycle_range(T0 - 24 * H, T0, 24 * H, parts)
    with pytest.raises(ValueError, match="2026-01-01T0600Z is off the partitions' cadence"):
        check_cycle_range(T0 + 6 * H, T0 + 6 * H, 12 * H, parts)
    # Without partitions, only the range itself is checked.
    check_cycle_range(T0 + 3 * H, T0 + 9 * H, 6 * H)
