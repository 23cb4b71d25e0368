"""The synthetic atmosphere: realistic, deterministic, one continuous trajectory."""

from datetime import UTC, datetime, timedelta

import numpy as np
import xarray as xr

from weather_assets.canonical import VARIABLES
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
