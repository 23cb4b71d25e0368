"""Climatology from analysis history: seasonal (day of year x hour) and the short-history fallback."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from weather_assets.simulator import Grid, simulate_state
from weather_assets.verification.climatology import (
    METHOD_HOURLY,
    METHOD_SEASONAL,
    climatology_at,
    compute_climatology,
)

LAT = np.array([-30.0, 0.0, 30.0])
LON = np.array([0.0, 90.0, 180.0, 270.0])


def _history(times: pd.DatetimeIndex, noise: float = 0.0, seed: int = 0) -> xr.Dataset:
    """t2m = 280 + 10 sin(season) + 3 [hour == 12] (+ noise), on a 3 x 4 grid."""
    rng = np.random.default_rng(seed)
    doy = times.dayofyear.to_numpy()
    signal = 280.0 + 10.0 * np.sin(2 * np.pi * (doy - 1) / 366) + 3.0 * (times.hour == 12)
    values = signal[:, None, None] + noise * rng.standard_normal((len(times), LAT.size, LON.size))
    values = values + np.zeros((1, LAT.size, LON.size))
    da = xr.DataArray(
        values.astype(np.float32),
        dims=("time", "latitude", "longitude"),
        coords={"time": times.values, "latitude": LAT, "longitude": LON},
        attrs={"units": "K"},
    )
    return xr.Dataset({"2m_temperature": da})


def test_short_history_falls_back_to_hourly_mean():
    times = pd.date_range("2026-01-01", periods=20, freq="6h")
    history = _history(times, noise=1.0)
    clim = compute_climatology(history)
    assert clim.attrs["method"] == METHOD_HOURLY
    assert clim.attrs["history_times"] == 20
    assert list(clim["hour"].values) == [0, 6, 12, 18]
    expected = history.groupby("time.hour").mean()["2m_temperature"]
    np.testing.assert_allclose(clim["2m_temperature"].values, expected.values, rtol=1e-6)
    assert clim["2m_temperature"].attrs["units"] == "K"
    assert clim["2m_temperature"].dtype == np.float32


def test_seasonal_climatology_tracks_day_of_year_and_hour():
    times = pd.date_range("2024-01-01", "2025-12-31T12:00", freq="12h")  # two years, 00/12 UTC
    history = _history(times, noise=0.5)
    clim = compute_climatology(history, window_days=15)
    assert clim.attrs["method"] == METHOD_SEASONAL
    assert dict(clim.sizes) == {"dayofyear": 366, "hour": 2, "latitude": 3, "longitude": 4}
    t2m = clim["2m_temperature"]
    assert not t2m.isnull().any()
    # The 12 UTC climatology is 3 K warmer; the seasonal cycle survives the 15-day smoothing.
    diff = (t2m.sel(hour=12) - t2m.sel(hour=0)).mean(["latitude", "longitude"]).values
    assert np.allclose(diff, 3.0, atol=0.3)
    at = climatology_at(clim, pd.DatetimeIndex(["2026-04-01T12:00", "2026-10-01T00:00"]))
    doy = np.array([91, 274])
    expected = 280 + 10 * np.sin(2 * np.pi * (doy - 1) / 366) + np.array([3.0, 0.0])
    np.testing.assert_allclose(
        at["2m_temperature"].mean(["latitude", "longitude"]), expected, atol=0.5
    )
    assert list(at["time"].values) == list(
        pd.DatetimeIndex(["2026-04-01T12:00", "2026-10-01T00:00"]).values
    )


def test_one_day_window_is_the_exact_mean_over_years():
    times = pd.date_range("2023-01-01", "2024-12-31", freq="D")
    history = _history(times, noise=1.0, seed=1)
    clim = compute_climatology(history, window_days=1)
    day = 45
    chosen = history.sel(time=history["time"].dt.dayofyear == day)
    np.testing.assert_allclose(
        clim["2m_temperature"].sel(dayofyear=day, hour=0).values,
        chosen["2m_temperature"].mean("time").values,
        rtol=1e-6,
    )


def test_gaps_in_the_year_take_the_hourly_mean():
    # A full year span, but only January and December: the summer has no data in the window.
    times = pd.date_range("2025-01-01", "2025-01-31", freq="D").append(
        pd.date_range("2025-12-01", "2026-01-02", freq="D")
    )
    history = _history(times)
    clim = compute_climatology(history, window_days=31)
    assert clim.attrs["method"] == METHOD_SEASONAL
    july = clim["2m_temperature"].sel(dayofyear=190, hour=0)
    np.testing.assert_allclose(
        july.values, history["2m_temperature"].mean("time").values, rtol=1e-6
    )


def test_missing_hour_uses_the_mean_over_hours():
    times = pd.date_range("2026-01-01", periods=8, freq="12h")
    clim = compute_climatology(_history(times))
    at = climatology_at(clim, pd.DatetimeIndex(["2026-01-05T06:00"]))
    np.testing.assert_allclose(
        at["2m_temperature"].isel(time=0).values,
        clim["2m_temperature"].mean("hour").values,
        rtol=1e-6,
    )


def test_levels_and_simulator_states_round_trip():
    grid = Grid(step=20.0)
    history = xr.concat(
        [simulate_state(t, grid=grid) for t in pd.date_range("2026-01-01", periods=4, freq="6h")],
        dim="time",
    )
    clim = compute_climatology(history)
    assert clim["geopotential"].dims == ("hour", "level", "latitude", "longitude")
    single = compute_climatology(history.isel(time=[0]))
    at = climatology_at(single, pd.DatetimeIndex(["2026-01-01T00:00"]))
    xr.testing.assert_allclose(
        at["geopotential"].isel(time=0, drop=True), history["geopotential"].isel(time=0, drop=True)
    )


@pytest.mark.parametrize(
    ("history", "message"),
    [
        (_history(pd.DatetimeIndex([])), "at least one analysis"),
        (
            xr.concat([_history(pd.date_range("2026-01-01", periods=2))] * 2, dim="member"),
            "select one member",
        ),
    ],
)
def test_bad_history_fails_clearly(history, message):
    with pytest.raises(ValueError, match=message):
        compute_climatology(history)
