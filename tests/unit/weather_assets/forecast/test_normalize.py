"""Stacking canonical datasets into features, mllam statistics and standardization."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from weather_assets.canonical import feature_name, features_of
from weather_assets.forecast.normalize import (
    FEATURE_DIM,
    FORCING_NAMES,
    STAT_NAMES,
    check_forcings,
    compute_stats,
    destandardize,
    forcing_array,
    forcing_fields,
    identity_stats,
    parse_feature,
    stack_features,
    standardize,
    stats_for,
    unstack_features,
)
from weather_assets.simulator import Grid, simulate_state

GRID = Grid(-90.0, 90.0, 0.0, 340.0, 20.0)


@pytest.fixture(scope="module")
def history() -> xr.Dataset:
    return xr.concat([simulate_state(f"2026-01-01T{h:02d}", GRID) for h in (0, 6, 12, 18)], "time")


def test_stack_follows_requested_order(history):
    features = ["temperature_850hPa", "2m_temperature", "geopotential_500hPa"]
    da = stack_features(history, features)
    assert da.dims == ("time", FEATURE_DIM, "latitude", "longitude")
    assert list(da[FEATURE_DIM].values) == features
    assert da.dtype == np.float32
    np.testing.assert_array_equal(
        da.sel({FEATURE_DIM: "temperature_850hPa"}).values,
        history["temperature"].sel(level=850).values,
    )


def test_missing_feature_names_it_and_lists_available(history):
    with pytest.raises(KeyError) as err:
        stack_features(history, ["2m_temperature", "temperature_300hPa", "rain"])
    message = str(err.value)
    assert "temperature_300hPa, rain" in message
    assert "geopotential_500hPa" in message and "2m_temperature" in message


def test_wrong_or_missing_units(history):
    bad = history.copy()
    bad["2m_temperature"] = bad["2m_temperature"].assign_attrs(units="degC")
    with pytest.raises(ValueError, match="'2m_temperature' has units 'degC'; expected 'K'"):
        stack_features(bad, ["2m_temperature"])
    bad["2m_temperature"].attrs.pop("units")
    with pytest.raises(ValueError, match="no 'units' attribute"):
        stack_features(bad, ["2m_temperature"])


def test_stats_match_numpy(history):
    da = stack_features(history, features_of(history))
    stats = compute_stats(da)
    assert set(stats.data_vars) == set(STAT_NAMES)
    assert all(stats[n].dims == (FEATURE_DIM,) for n in STAT_NAMES)
    values = da.values.astype(np.float64)
    np.testing.assert_allclose(stats["state__train__mean"], values.mean((0, 2, 3)), rtol=1e-6)
    np.testing.assert_allclose(stats["state__train__std"], values.std((0, 2, 3)), rtol=1e-5)
    diff = np.diff(values, axis=0)
    np.testing.assert_allclose(stats["state__train__diff_std"], diff.std((0, 2, 3)), rtol=1e-5)
    with pytest.raises(ValueError, match="two time steps"):
        compute_stats(da.isel(time=[0]))


def test_standardized_training_data_is_unit_scaled(history):
    da = stack_features(history, features_of(history))
    z = standardize(da, compute_stats(da))
    np.testing.assert_allclose(z.mean(("time", "latitude", "longitude")), 0, atol=1e-4)
    np.testing.assert_allclose(z.std(("time", "latitude", "longitude")), 1, atol=1e-4)


@settings(max_examples=25, deadline=None)
@given(
    arrays(np.float32, (2, 3, 4, 5), elements=st.floats(-1e4, 1e4, width=32)),
    arrays(np.float32, 3, elements=st.floats(-1e3, 1e3, width=32)),
    arrays(np.float32, 3, elements=st.floats(0.125, 1e3, width=32)),
)
def test_standardize_round_trip(values, mean, std):
    features = ["a", "b", "c"]
    da = xr.DataArray(
        values, dims=("time", FEATURE_DIM, "latitude", "longitude"), coords={FEATURE_DIM: features}
    )
    stats = identity_stats(features)
    stats["state__train__mean"].values[:] = mean
    stats["state__train__std"].values[:] = std
    back = destandardize(standardize(da, stats), stats)
    np.testing.assert_allclose(back.values, values, rtol=1e-5, atol=1e-3 * (1 + np.abs(mean).max()))


def test_stats_reordered_and_missing(history):
    stats = compute_stats(stack_features(history, features_of(history)))
    sub = stats_for(stats, ["temperature_500hPa", "2m_temperature"])
    assert list(sub[FEATURE_DIM].values) == ["temperature_500hPa", "2m_temperature"]
    with pytest.raises(KeyError, match="no statistics for feature"):
        stats_for(stats, ["rain"])


def test_unstack_inverts_stack(history):
    features = features_of(history)
    back = unstack_features(stack_features(history, features))
    for var in history.data_vars:
        xr.testing.assert_equal(
            back[var].reset_coords(drop=True),
            history[var].transpose(*back[var].dims).reset_coords(drop=True),
        )
        assert back[var].attrs["units"] == history[var].attrs["units"]
    assert back["geopotential"].dims == ("time", "level", "latitude", "longitude")


@pytest.mark.parametrize("level", [None, 500, 850, 50, 1000])
def test_parse_feature_inverts_feature_name(level):
    var = "2m_temperature" if level is None else "temperature"
    assert parse_feature(feature_name(var, level)) == (var, level)


def test_forcings_are_bounded_deterministic_float32():
    lat, lon = GRID.latitude, GRID.longitude
    fields = forcing_fields(FORCING_NAMES, "2026-06-21T12:00", lat, lon)
    assert fields.shape == (len(FORCING_NAMES), lat.size, lon.size) and fields.dtype == np.float32
    assert np.all(np.abs(fields) <= 1.0)
    again = forcing_fields(FORCING_NAMES, np.datetime64("2026-06-21T12:00"), lat, lon)
    assert fields.tobytes() == again.tobytes()
    # tz-aware times are the same instant in UTC
    import pandas as pd

    aware = forcing_fields(FORCING_NAMES, pd.Timestamp("2026-06-21T14:00+02:00"), lat, lon)
    np.testing.assert_array_equal(aware, fields)


def test_local_hour_follows_the_sun():
    lat, lon = np.array([-30.0, 0.0, 45.0]), np.array([0.0, 90.0, 180.0, 270.0])
    names = ["cos_local_hour", "sin_local_hour", "cos_day_of_year", "toa_insolation"]
    noon_greenwich = forcing_fields(names, "2026-01-10T12:00", lat, lon)
    # Local noon at 0E (cos 1), 18 local at 90E, midnight at 180E, 06 local at 270E.
    np.testing.assert_allclose(noon_greenwich[0, 0], [1, 0, -1, 0], atol=1e-6)
    np.testing.assert_allclose(noon_greenwich[1, 0], [0, 1, 0, -1], atol=1e-6)
    assert np.ptp(noon_greenwich[0], axis=0).max() < 1e-6  # the same at every latitude
    assert np.ptp(noon_greenwich[2]) == 0  # day of year: constant in space
    # Insolation: sunlit around 0E, zero on the night side, highest in the summer hemisphere.
    toa = noon_greenwich[3]
    assert toa[:, 2].max() == 0 and toa[0, 0] > toa[2, 0] > 0
    # Six hours later the pattern has moved 90 degrees west.
    later = forcing_fields(names, "2026-01-10T18:00", lat, lon)
    np.testing.assert_allclose(later[0], np.roll(noon_greenwich[0], -1, axis=1), atol=1e-6)


def test_forcing_array_stacks_times():
    times = np.array(["2026-01-01T00", "2026-01-01T06"], dtype="datetime64[ns]")
    arr = forcing_array(["sin_day_of_year"], times, GRID.latitude, GRID.longitude)
    assert arr.shape == (2, 1, GRID.latitude.size, GRID.longitude.size)
    assert forcing_array(["sin_day_of_year"], [], GRID.latitude, GRID.longitude).shape[0] == 0


def test_unknown_or_repeated_forcing_names():
    with pytest.raises(ValueError, match="unknown forcing 'sun'; valid forcings are: cos_local"):
        check_forcings(["sun"])
    with pytest.raises(ValueError, match="'cos_local_hour' listed more than once"):
        check_forcings(["cos_local_hour", "cos_local_hour"])
    assert check_forcings(()) == []
