"""One data-quality implementation (weather_assets.quality) and the checks built on it.

The summary table of an analysis and of a forecast, the pandera schemas of missing values
and physical ranges, and every raw-inputs and forecast check failing on a small synthetic
dataset (the same checks also fail through the assets: tests/test_raw_inputs.py,
tests/test_forecast_assets.py).
"""

from datetime import UTC, datetime

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from dask.callbacks import Callback

from model_registry.registry import DEFAULT_REGISTRY_DIR, load_spec
from weather_assets.audit import blocking_failures
from weather_assets.forecast.checks import forecast_check_results
from weather_assets.ingest.checks import raw_inputs_check_results
from weather_assets.quality import (
    assess,
    failing_rows,
    label,
    missing_schema,
    range_schema,
    summary_markdown,
    summary_table,
)
from weather_assets.simulator import Grid, simulate_state

GRID = Grid(-90.0, 90.0, 0.0, 340.0, 20.0)  # 10 x 18
T0 = datetime(2026, 1, 1, 6, tzinfo=UTC)
T0_NS = np.datetime64("2026-01-01T06:00", "ns")
SURFACE = ["2m_temperature", "10m_u_component_of_wind", "10m_v_component_of_wind"]


def analysis(members: int = 0) -> xr.Dataset:
    """A cycle's canonical analysis: (time, [level], lat, lon), or (member, time, ...)."""
    if not members:
        return simulate_state(T0, GRID)
    states = [simulate_state(T0, GRID, seed=m) for m in range(members)]
    return xr.concat(states, dim=xr.DataArray(list(range(members)), dims="member", name="member"))


def persistence_spec():
    return load_spec(DEFAULT_REGISTRY_DIR / "persistence.yaml")  # 6h steps to 72h, 2 levels


def forecast(members: int = 0, steps: int | None = None) -> xr.Dataset:
    """The forecast layout (time, lead_time, [member], [level], lat, lon), values drifting
    with lead time so that min and max come from different lead times."""
    steps = steps or persistence_spec().steps
    leads = np.array([np.timedelta64(6 * (k + 1), "h") for k in range(steps)], "timedelta64[ns]")
    state = analysis(members)
    out = {}
    for name, da in state.data_vars.items():
        drift = xr.DataArray(np.linspace(0.0, 1e-3, steps), dims="lead_time") * abs(da.mean())
        da = (da + drift).astype(np.float32)
        lead = ["time", "lead_time", *(["member"] if members else [])]
        out[name] = da.transpose(*lead, ...).assign_attrs(state[name].attrs)
    ds = xr.Dataset(out).assign_coords(lead_time=leads)
    return ds.assign_coords(valid_time=(("time", "lead_time"), ds["time"].values[:, None] + leads))


def expected_rows(ds: xr.Dataset) -> pd.DataFrame:
    """The summary computed the plain way: numpy over a flattened copy of each level."""
    rows = []
    for name, da in ds.data_vars.items():
        for level in da["level"].values if "level" in da.dims else [None]:
            values = (da.sel(level=level) if level is not None else da).values.ravel()
            rows.append(
                {
                    "variable": name,
                    "level": -1 if level is None else int(level),
                    "min": np.nanmin(values),
                    "max": np.nanmax(values),
                    "nan_count": int(np.isnan(values).sum()),
                }
            )
    return pd.DataFrame(rows)


def check_summary(table: pd.DataFrame, ds: xr.Dataset) -> None:
    expected = expected_rows(ds)
    assert list(table["variable"]) == list(expected["variable"])
    assert list(table["level"]) == list(expected["level"])
    np.testing.assert_allclose(table["min"], expected["min"], rtol=1e-6)
    np.testing.assert_allclose(table["max"], expected["max"], rtol=1e-6)
    assert list(table["nan_count"]) == list(expected["nan_count"])


# --- the summary table -------------------------------------------------------------------


def test_summary_of_an_analysis_one_row_per_variable_and_level():
    ds = analysis()
    table = summary_table(ds)
    assert list(table.columns) == [
        "variable",
        "level",
        "min",
        "max",
        "mean",
        "nan_count",
        "nan_fraction",
    ]
    assert len(table) == 4 + 2 * 2  # four surface fields, geopotential and temperature at 2
    check_summary(table, ds)
    assert table.dtypes["level"] == np.int64 and table.dtypes["nan_count"] == np.int64
    assert (table["nan_fraction"] == 0.0).all()


def test_summary_reduces_over_members_and_time():
    ds = analysis(members=3)
    ds["temperature"][2, 0, 1, 4, 4] = np.nan  # member 2 only, at 850 hPa
    table = summary_table(ds)
    assert len(table) == 8  # still one row per variable and level, not per member
    check_summary(table, ds)
    row = table[(table.variable == "temperature") & (table.level == 850)].iloc[0]
    assert row.nan_count == 1 and row.nan_fraction == pytest.approx(1 / (3 * 10 * 18))


def test_summary_of_a_forecast_over_lead_times_and_members():
    ds = forecast(members=2, steps=4)
    assert ds["temperature"].dims == (
        "time",
        "lead_time",
        "member",
        "level",
        "latitude",
        "longitude",
    )
    ds["geopotential"][0, 3, 1, 0, 2, 2] = np.nan  # last lead time, member 1, 500 hPa
    table = summary_table(ds)
    assert len(table) == 8
    check_summary(table, ds)
    labels = [label(r.variable, r.level) for r in table.itertuples() if r.nan_count]
    assert labels == ["geopotential@500"]


class _Computes(Callback):
    def __init__(self):
        super().__init__()
        self.count = 0

    def _start(self, dsk):
        self.count += 1


def test_summary_of_a_lazy_forecast_is_one_pass():
    """A lazily opened forecast: one dask computation for every statistic of every variable,
    the same numbers as in memory."""
    ds = forecast(members=2, steps=4)
    lazy = ds.chunk({"lead_time": 1, "member": 1})
    with _Computes() as computes:
        table = summary_table(lazy)
    assert computes.count == 1
    assert lazy["temperature"].chunks is not None  # nothing was loaded into the dataset
    pd.testing.assert_frame_equal(table, summary_table(ds), rtol=1e-6)


def test_summary_markdown_lists_every_row():
    text = summary_markdown(summary_table(analysis()))
    lines = text.splitlines()
    assert lines[0].startswith("| variable | level | min | max")
    assert len(lines) == 2 + 8 and "| temperature | 850 |" in text


# --- the schemas: missing values and physical ranges --------------------------------------


def test_clean_dataset_passes_both_schemas():
    quality = assess(analysis(members=2))
    assert quality.missing.empty and quality.out_of_range.empty
    assert quality.missing_description is None and quality.range_description is None
    assert quality.nan_counts == {} and quality.ranges == {}


def test_missing_values_name_variable_and_level():
    ds = analysis()
    ds["temperature"][0, 1, 5, 5] = np.nan
    ds["2m_temperature"][0, 3, 3] = np.nan
    ds["2m_temperature"][0, 4, 4] = np.nan
    quality = assess(ds)
    assert quality.missing_description == "NaNs in: 2m_temperature, temperature@850"
    assert quality.nan_counts == {"2m_temperature": 2, "temperature@850": 1}
    assert quality.out_of_range.empty  # a NaN is a missing value, not a range problem


@pytest.mark.parametrize("bound", ["min", "max"])
def test_out_of_range_names_variable_level_and_values(bound):
    ds = analysis()
    value = 150.0 if bound == "min" else 400.0  # temperature's range is [160, 340] K
    ds["temperature"][0, 0, 2, 2] = value
    quality = assess(ds)
    assert list(quality.ranges) == ["temperature@500"]
    assert quality.ranges["temperature@500"][0 if bound == "min" else 1] == value
    assert quality.range_description.startswith("out of range: temperature@500 [")
    assert f"{value:.6g}" in quality.range_description
    assert quality.missing.empty


def test_infinity_is_out_of_range_not_missing():
    ds = analysis()
    ds["mean_sea_level_pressure"][0, 1, 1] = np.inf
    quality = assess(ds)
    assert quality.missing.empty
    assert quality.ranges == {
        "mean_sea_level_pressure": [pytest.approx(ds.mean_sea_level_pressure.min()), np.inf]
    }


def test_all_nan_row_is_missing_only_and_unknown_variables_have_no_range():
    ds = analysis()
    ds["geopotential"][:, 0] = np.nan  # every value at 500 hPa
    ds["my_index"] = ds["2m_temperature"] * 1e6  # not canonical: the layout check's business
    quality = assess(ds)
    assert list(quality.nan_counts) == ["geopotential@500"]
    assert quality.out_of_range.empty


def test_a_variable_without_values_is_all_missing():
    ds = analysis().isel(latitude=slice(0, 0))
    quality = assess(ds)
    assert len(quality.table) == 8 and (quality.table["nan_fraction"] == 1.0).all()
    assert len(quality.missing) == 8 and quality.out_of_range.empty


def test_failing_rows_is_empty_or_the_offending_rows():
    table = summary_table(analysis())
    assert failing_rows(missing_schema(), table).empty
    assert failing_rows(range_schema(), table).empty
    table.loc[2, "max"] = 1e3  # 10 m wind of 1 km/s
    table.loc[5, "nan_fraction"] = 0.5
    assert list(failing_rows(range_schema(), table).index) == [2]
    assert list(failing_rows(missing_schema(), table).index) == [5]


# --- the raw_inputs checks, each made to fail ---------------------------------------------


def raw_results(ds):
    return {r.check_name: r for r in raw_inputs_check_results(ds, T0_NS, "test://cycle")}


def test_raw_inputs_checks_pass_on_a_clean_cycle():
    for ds in (analysis(), analysis(members=3)):
        results = raw_results(ds)
        assert set(results) == {"schema", "no_missing_values", "physical_ranges"}
        assert all(r.passed for r in results.values()), results


def test_raw_inputs_schema_fails():
    ds = analysis(members=2)
    ds["mean_sea_level_pressure"] = ds["mean_sea_level_pressure"] / 100
    ds["mean_sea_level_pressure"].attrs["units"] = "hPa"
    ds["temperature"] = ds["temperature"].transpose("member", "time", "latitude", "level", ...)
    results = raw_results(ds.isel(latitude=slice(None, None, -1)))
    schema = results["schema"]
    assert not schema.passed and schema.severity == dg.AssetCheckSeverity.ERROR
    assert "mean_sea_level_pressure has units 'hPa', expected 'Pa'" in schema.description
    assert "temperature has dims" in schema.description
    assert "coordinate latitude is not strictly ascending" in schema.description
    # hPa is out of the Pa range too: the facts are checked independently.
    assert not results["physical_ranges"].passed and results["no_missing_values"].passed


def test_raw_inputs_no_missing_values_fails():
    ds = analysis(members=2)
    ds["temperature"][1, 0, 1, 5, 5] = np.nan
    ds["2m_temperature"][0, 0, 3, 3] = np.nan
    results = raw_results(ds)
    missing = results["no_missing_values"]
    assert not missing.passed and missing.severity == dg.AssetCheckSeverity.ERROR
    assert missing.description == "NaNs in: 2m_temperature, temperature@850"
    assert missing.metadata["failing_rows"].value == 2
    assert results["schema"].passed and results["physical_ranges"].passed


def test_raw_inputs_physical_ranges_fails():
    ds = analysis()
    ds["2m_temperature"][0, 5, 5] = 400.0
    results = raw_results(ds)
    ranges = results["physical_ranges"]
    assert not ranges.passed and ranges.severity == dg.AssetCheckSeverity.ERROR
    assert ranges.description.startswith("out of range: 2m_temperature [") and "400]" in (
        ranges.description
    )
    assert ranges.metadata["failing_rows"].value == 1
    assert results["schema"].passed and results["no_missing_values"].passed


# --- the forecast checks, each made to fail -----------------------------------------------


def forecast_results(ds):
    results = forecast_check_results(ds, persistence_spec(), T0)
    return {r.check_name: r for r in results}, blocking_failures(results)


@pytest.mark.parametrize("members", [0, 2])
def test_forecast_checks_pass_on_a_clean_forecast(members):
    results, blocking = forecast_results(forecast(members))
    assert set(results) == {"schema", "no_nans", "physical_ranges"}
    assert all(r.passed for r in results.values()), results
    assert blocking == []


def test_forecast_schema_fails():
    ds = forecast().drop_vars("10m_v_component_of_wind")
    ds["2m_temperature"].attrs["units"] = "degC"
    results, blocking = forecast_results(ds)
    schema = results["schema"]
    assert not schema.passed and schema.severity == dg.AssetCheckSeverity.ERROR
    assert "missing variables ['10m_v_component_of_wind']" in schema.description
    assert "2m_temperature has units 'degC', expected 'K'" in schema.description
    assert blocking == [schema]


def test_forecast_no_nans_fails_naming_levels():
    ds = forecast(members=2)
    ds["geopotential"][0, -1, 1, 1, 3, 3] = np.nan
    ds["10m_u_component_of_wind"][0, 0, 0, 0, 0] = np.nan
    results, blocking = forecast_results(ds)
    nans = results["no_nans"]
    assert not nans.passed and nans.severity == dg.AssetCheckSeverity.ERROR
    assert nans.description == "NaNs in: 10m_u_component_of_wind, geopotential@850"
    assert nans.metadata["nan_counts"].value == {
        "10m_u_component_of_wind": 1,
        "geopotential@850": 1,
    }
    assert blocking == [nans]
    assert results["schema"].passed and results["physical_ranges"].passed


def test_forecast_physical_ranges_fails_as_a_warning():
    ds = forecast()
    ds["temperature"][0, 5, 0, 2, 2] = 400.0
    results, blocking = forecast_results(ds)
    ranges = results["physical_ranges"]
    assert not ranges.passed and ranges.severity == dg.AssetCheckSeverity.WARN
    assert ranges.description.startswith("out of range: temperature@500 [")
    assert list(ranges.metadata["out_of_range"].value) == ["temperature@500"]
    assert blocking == []  # a warning never stops the commit
    assert results["no_nans"].passed
