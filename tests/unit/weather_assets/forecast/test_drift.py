"""Input drift of a cycle's standardized inputs against the artifact's training statistics."""

# No `from __future__ import annotations`: Dagster inspects annotations at runtime.

from datetime import UTC, datetime, timedelta
from functools import cache

import dagster as dg
import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

from model_registry.registry import DEFAULT_REGISTRY_DIR, load_spec
from weather_assets.forecast.checks import (
    DRIFT_CHECK,
    drift_check_result,
    drift_check_specs,
    forecast_check_specs,
)
from weather_assets.forecast.drift import (
    DEFAULT_THRESHOLDS,
    DriftThresholds,
    assess_drift,
    drift_table,
    likely_cause,
)
from weather_assets.forecast.normalize import compute_stats, stack_features, standardize
from weather_assets.simulator import Grid, simulate_state

GRID = Grid(-90.0, 90.0, 0.0, 340.0, 20.0)  # 10 x 18, as the integration tests
T0 = datetime(2026, 1, 1, 6, tzinfo=UTC)
CYCLE = T0 + timedelta(days=10)  # not among the training cycles


@cache
def features() -> list[str]:
    return list(load_spec(DEFAULT_REGISTRY_DIR / "persistence.yaml").input_features)


@cache
def train_stats() -> xr.Dataset:
    """Statistics of a few simulated cycles, as an artifact's (make_artifact's) are."""
    hist = xr.concat([simulate_state(T0 + timedelta(hours=6 * k), GRID) for k in range(3)], "time")
    return compute_stats(stack_features(hist, features()))


def standardized(ds: xr.Dataset) -> xr.DataArray:
    return standardize(stack_features(ds, features()), train_stats())


def cycle() -> xr.Dataset:
    return simulate_state(CYCLE, GRID)


def test_a_normal_cycle_passes():
    drift = assess_drift(standardized(cycle()), train_stats())
    assert drift.passed, drift.description
    assert drift.failing == []
    assert list(drift.table["feature"]) == features()
    assert drift.description.startswith(f"All {len(features())} features within")
    assert drift.max_abs_mean_z < 1.0


def test_a_normal_cycle_months_later_passes():
    drift = assess_drift(
        standardized(simulate_state(T0 + timedelta(days=180), GRID)), train_stats()
    )
    assert drift.passed, drift.description


def test_pressure_in_hpa_instead_of_pa_fails_naming_it():
    ds = cycle()
    ds["mean_sea_level_pressure"] = ds["mean_sea_level_pressure"] / 100.0  # units attr still Pa
    drift = assess_drift(standardized(ds), train_stats())
    assert not drift.passed
    assert drift.failing == ["mean_sea_level_pressure"]
    row = drift.table.set_index("feature").loc["mean_sea_level_pressure"]
    assert row["mean_z"] < -DEFAULT_THRESHOLDS.max_abs_mean_z
    assert row["std_z"] < DEFAULT_THRESHOLDS.min_std_z
    assert row["frac_beyond_k"] == 1.0
    assert "Pa vs hPa" in row["likely_cause"]
    assert "mean_sea_level_pressure" in drift.description
    assert "Pa vs hPa" in drift.description
    assert "2m_temperature" not in drift.description


def test_pressure_in_pa_where_hpa_was_trained_is_recognized_too():
    ds = cycle()
    ds["mean_sea_level_pressure"] = ds["mean_sea_level_pressure"] * 100.0
    drift = assess_drift(standardized(ds), train_stats())
    assert drift.failing == ["mean_sea_level_pressure"]
    assert "Pa vs hPa" in drift.description and "100x too large" in drift.description


def test_temperature_in_degc_instead_of_k_fails_naming_it():
    ds = cycle()
    ds["temperature"] = ds["temperature"] - 273.15  # units attr still K
    drift = assess_drift(standardized(ds), train_stats())
    assert drift.failing == ["temperature_500hPa", "temperature_850hPa"]
    for feature in drift.failing:
        assert feature in drift.description
        row = drift.table.set_index("feature").loc[feature]
        assert "K vs degC" in row["likely_cause"]
        assert 0.5 < row["std_z"] < 2.0  # an offset keeps the spread: the mean catches it
    assert "K vs degC" in drift.description


def test_2m_temperature_in_degc_fails_naming_it():
    ds = cycle()
    ds["2m_temperature"] = ds["2m_temperature"] - 273.15
    drift = assess_drift(standardized(ds), train_stats())
    assert drift.failing == ["2m_temperature"]
    assert "2m_temperature" in drift.description and "K vs degC" in drift.description


def test_geopotential_height_instead_of_geopotential_is_recognized():
    ds = cycle()
    ds["geopotential"] = ds["geopotential"] / 9.80665
    drift = assess_drift(standardized(ds), train_stats())
    assert drift.failing == ["geopotential_500hPa", "geopotential_850hPa"]
    assert "geopotential height (m)" in drift.description


def test_a_tile_in_wrong_units_fails_on_the_fraction_beyond_k():
    z = standardized(cycle()).copy()
    i = features().index("10m_u_component_of_wind")
    z[:, i, :2, :] = 40.0  # a fifth of the domain far out, the rest normal
    table = drift_table(z, train_stats()).set_index("feature")
    row = table.loc["10m_u_component_of_wind"]
    assert not row["passed"]
    assert row["frac_beyond_k"] == pytest.approx(0.2)
    assert "sigma" in row["reason"]


def test_a_feature_without_finite_values_fails():
    z = standardized(cycle()).copy()
    z[:, 0] = np.nan
    drift = assess_drift(z, train_stats())
    assert drift.failing == [features()[0]]
    assert "no finite values" in drift.description


def test_thresholds_are_parameters():
    z = standardized(cycle()) + 0.5
    assert assess_drift(z, train_stats()).passed
    strict = DriftThresholds(max_abs_mean_z=0.25)
    drift = assess_drift(z, train_stats(), strict)
    assert set(drift.failing) == set(features())
    assert "0.25" in drift.check_fields()["metadata"]["thresholds"]


@pytest.mark.parametrize(
    ("train_mean", "train_std", "mean_z", "std_z", "expected"),
    [
        (101325.0, 1500.0, (1013.25 - 101325.0) / 1500.0, 0.01, "Pa vs hPa"),
        (1013.25, 15.0, (101325.0 - 1013.25) / 15.0, 100.0, "Pa vs hPa"),
        (285.0, 20.0, -273.15 / 20.0, 1.0, "K vs degC"),
        (12.0, 20.0, 273.15 / 20.0, 1.0, "K given for degC"),
        (5.0, 8.0, 0.1, 3.6, ""),  # km/h for m/s: not a recognized mistake
        (101325.0, 1500.0, 4.5, 1.0, ""),  # far out, but no known units mistake
    ],
)
def test_likely_cause(train_mean, train_std, mean_z, std_z, expected):
    cause = likely_cause(train_mean, train_std, mean_z, std_z)
    assert (expected in cause) if expected else cause == ""


@settings(max_examples=40, deadline=None)
@given(
    feature=st.sampled_from(features()),
    shift=st.floats(-1.5, 1.5),
    scale=st.floats(0.8, 1.25),
)
def test_a_small_shift_well_within_the_thresholds_passes(feature, shift, scale):
    """A feature's input off by up to 1.5 training spreads and 25 % in spread still passes."""
    ds = cycle()
    stats = train_stats()
    i = features().index(feature)
    sigma = float(stats["state__train__std"].values[i])
    mu = float(stats["state__train__mean"].values[i])
    stacked = stack_features(ds, features())
    x = stacked.isel(state_feature=i)
    stacked[:, i] = mu + (x - mu) * scale + shift * sigma
    drift = assess_drift(standardize(stacked, stats), stats)
    assert drift.passed, drift.description
    row = drift.table.set_index("feature").loc[feature]
    assert row["mean_z"] == pytest.approx(shift, abs=0.5)


def test_check_fields_are_asset_check_result_ready():
    ds = cycle()
    ds["mean_sea_level_pressure"] = ds["mean_sea_level_pressure"] / 100.0
    fields = assess_drift(standardized(ds), train_stats()).check_fields()
    assert fields["passed"] is False
    assert fields["severity"] == "ERROR"
    md = fields["metadata"]
    assert md["failing_features"] == "mean_sea_level_pressure"
    assert md["max_abs_mean_z"] > 50
    assert md["table"].startswith("| feature |")
    assert "mean_sea_level_pressure" in md["table"]


def test_drift_check_result_refuses_a_units_mistake_as_an_error():
    ds = cycle()
    ds["mean_sea_level_pressure"] = ds["mean_sea_level_pressure"] / 100.0
    result = drift_check_result(standardized(ds), train_stats())
    assert isinstance(result, dg.AssetCheckResult)
    assert result.check_name == DRIFT_CHECK
    assert result.passed is False
    assert result.severity == dg.AssetCheckSeverity.ERROR
    assert "Pa vs hPa" in result.description
    assert result.metadata["max_abs_mean_z"].value > 50
    assert "mean_sea_level_pressure" in result.metadata["table"].value


def test_drift_check_result_passes_a_normal_cycle_and_skips_without_stats():
    ok = drift_check_result(standardized(cycle()), train_stats())
    assert ok.passed is True and ok.metadata["assessed"].value is True
    skipped = drift_check_result(stack_features(cycle(), features()), None)
    assert skipped.passed is True and skipped.metadata["assessed"].value is False


def test_drift_check_spec_is_blocking_and_leaves_the_forecast_checks_alone():
    key = dg.AssetKey(["normalized", "m"])
    (spec,) = drift_check_specs(key)
    assert spec.name == DRIFT_CHECK and spec.blocking and spec.asset_key == key
    names = [s.name for s in forecast_check_specs(dg.AssetKey(["forecast", "m"]))]
    assert names == ["schema", "no_nans", "physical_ranges"]
