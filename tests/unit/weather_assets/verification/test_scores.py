"""Scoring one forecast against the truth, the scores schema, and aggregation over cycles."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pytest
import scores as scores_pkg
import xarray as xr
from typer.testing import CliRunner

from weather_assets.cli import app
from weather_assets.simulator import Grid, simulate_state
from weather_assets.verification import metrics as m
from weather_assets.verification.climatology import compute_climatology
from weather_assets.verification.schemas import aggregate_schema, validate_scores
from weather_assets.verification.scores import (
    SURFACE_LEVEL,
    aggregate_scores,
    verify_forecast,
)

GRID = Grid(step=10.0)
T0 = pd.Timestamp("2026-01-01T00:00")
LEADS = pd.to_timedelta([6, 12, 18, 24], unit="h")


def analyses(times, grid: Grid = GRID) -> xr.Dataset:
    """Simulated analyses at ``times`` (dim time)."""
    return xr.concat([simulate_state(t, grid=grid) for t in times], dim="time")


def as_forecast(states: xr.Dataset, t0: pd.Timestamp, leads: pd.TimedeltaIndex) -> xr.Dataset:
    """Forecast layout (time=1, lead_time, ...) from one state per lead (dim time)."""
    fc = states.rename(time="lead_time").assign_coords(lead_time=leads.values)
    fc = fc.expand_dims(time=[np.datetime64(t0, "ns")]).transpose("time", "lead_time", ...)
    valid = (t0 + leads).values.astype("datetime64[ns]")[None, :]
    return fc.assign_coords(valid_time=(("time", "lead_time"), valid))


def persistence_forecast(analysis: xr.Dataset, leads: pd.TimedeltaIndex = LEADS) -> xr.Dataset:
    """The analysis (time=1, optional member) held at every lead time."""
    t0 = pd.Timestamp(analysis["time"].values[0])
    state = analysis.isel(time=0, drop=True)
    stacked = xr.concat([state] * len(leads), dim="time")
    return as_forecast(stacked, t0, leads)


@pytest.fixture(scope="module")
def truth() -> xr.Dataset:
    return analyses(T0 + LEADS)


@pytest.fixture(scope="module")
def persistence() -> xr.Dataset:
    return persistence_forecast(simulate_state(T0, grid=GRID))


def _value(table: pd.DataFrame, metric: str, variable: str, level: int, lead_h: int) -> float:
    row = table[
        (table["metric"] == metric)
        & (table["variable"] == variable)
        & (table["level"] == level)
        & (table["lead_time"] == pd.Timedelta(hours=lead_h))
    ]
    assert len(row) == 1, (metric, variable, level, lead_h)
    return float(row["value"].iloc[0])


def test_perfect_forecast_scores_zero(truth):
    forecast = as_forecast(truth, T0, LEADS)
    clim = compute_climatology(analyses([T0 - pd.Timedelta(hours=6 * i) for i in range(8)]))
    result = verify_forecast(forecast, truth, model="perfect", climatology=clim)
    table = validate_scores(result.table)
    assert set(table["metric"]) == {"rmse", "bias", "mae", "acc"}
    assert result.missing_leads == [] and result.members == 1
    err = table[table["metric"].isin(["rmse", "bias", "mae"])]["value"]
    assert np.allclose(err, 0.0)
    assert np.allclose(table[table["metric"] == "acc"]["value"], 1.0)
    # 4 leads x (4 surface + 2 variables x 2 levels) x 4 metrics
    assert len(table) == 4 * 8 * 4
    assert (table["n"] == GRID.latitude.size * GRID.longitude.size).all()


def test_persistence_matches_independent_rmse_and_grows_with_lead(persistence, truth):
    table = verify_forecast(persistence, truth, model="persistence").table
    weights = np.cos(np.deg2rad(GRID.latitude))
    z_fc = persistence["geopotential"].sel(level=500).isel(time=0).values.astype(np.float64)
    z_tr = truth["geopotential"].sel(level=500).values.astype(np.float64)
    for i, lead in enumerate((6, 12, 18, 24)):
        err2 = (z_fc[i] - z_tr[i]) ** 2
        w = m.area_weights(truth["latitude"]).values  # exact cell areas, close to cos(lat)
        expected = np.sqrt((err2 * w[:, None]).sum() / (w.sum() * err2.shape[1]))
        assert _value(table, "rmse", "geopotential", 500, lead) == pytest.approx(expected, 1e-6)
        approx = np.sqrt((err2 * weights[:, None]).sum() / (weights.sum() * err2.shape[1]))
        assert expected == pytest.approx(approx, rel=0.05)
    z500 = [_value(table, "rmse", "geopotential", 500, h) for h in (6, 12, 18, 24)]
    assert all(a < b for a, b in zip(z500, z500[1:], strict=False))
    assert _value(table, "rmse", "2m_temperature", SURFACE_LEVEL, 24) > 0


def test_missing_leads_are_scored_without_and_flagged(persistence, truth):
    partial = truth.isel(time=[0, 2])  # +6h and +18h have analyses
    result = verify_forecast(persistence, partial, model="persistence")
    assert sorted(result.table["lead_time"].unique()) == [
        pd.Timedelta(hours=6),
        pd.Timedelta(hours=18),
    ]
    assert result.missing_leads == [pd.Timedelta(hours=12), pd.Timedelta(hours=24)]
    assert any("+12h, +24h" in note for note in result.notes)
    none = verify_forecast(persistence, truth.isel(time=[]), model="persistence")
    assert none.table.empty and len(none.missing_leads) == 4
    validate_scores(none.table)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.drop_vars("temperature"), "temperature are not in the truth"),
        (lambda t: t.isel(latitude=slice(1, None)), "different grids"),
        (lambda t: t.assign_coords(longitude=t["longitude"] + 1.0), "different grids"),
        (lambda t: t.sel(level=[850]), "level(s) [500]"),
        (
            lambda t: t.assign(
                mean_sea_level_pressure=(t["mean_sea_level_pressure"] / 100).assign_attrs(
                    units="hPa"
                )
            ),
            "units 'Pa' in the forecast but 'hPa'",
        ),
    ],
)
def test_bad_truth_fails_clearly(persistence, truth, change, message):
    with pytest.raises(ValueError, match=None) as err:
        verify_forecast(persistence, change(truth), model="persistence")
    assert message in str(err.value)


def test_inconsistent_valid_time_or_several_analysis_times_fail(persistence, truth):
    shifted = persistence.assign_coords(
        valid_time=persistence["valid_time"] + np.timedelta64(1, "h")
    )
    with pytest.raises(ValueError, match="valid_time"):
        verify_forecast(shifted, truth, model="persistence")
    two = xr.concat(
        [persistence, persistence.assign_coords(time=[np.datetime64("2026-01-02")])], "time"
    )
    with pytest.raises(ValueError, match="one analysis time"):
        verify_forecast(two, truth, model="persistence")


def test_nan_is_never_averaged_silently(persistence, truth):
    holed = truth.copy(deep=True)
    holed["2m_temperature"][1, 3, 4] = np.nan  # +12h, one grid point
    total = GRID.latitude.size * GRID.longitude.size
    result = verify_forecast(persistence, holed, model="persistence")
    table = validate_scores(result.table)
    t2m = table[
        (table["variable"] == "2m_temperature") & (table["lead_time"] == pd.Timedelta(hours=12))
    ]
    assert t2m["value"].isna().all() and (t2m["n"] == total - 1).all()
    assert len(result.nan_rows) == 3  # rmse, bias, mae
    assert any("NaN" in note for note in result.notes)
    others = table[~table.index.isin(t2m.index)]
    assert others["value"].notna().all() and (others["n"] == total).all()
    skipped = verify_forecast(persistence, holed, model="persistence", skipna=True).table
    t2m = skipped[
        (skipped["variable"] == "2m_temperature") & (skipped["lead_time"] == pd.Timedelta(hours=12))
    ]
    assert t2m["value"].notna().all() and (t2m["n"] == total - 1).all()


def test_truth_member_selection(persistence, truth):
    ensemble_truth = xr.concat([truth, truth + 1.0], dim=pd.Index([0, 1], name="member"))
    control = verify_forecast(persistence, ensemble_truth, model="persistence").table
    plain = verify_forecast(persistence, truth, model="persistence").table
    pd.testing.assert_frame_equal(control, plain)
    mean = verify_forecast(persistence, ensemble_truth, model="persistence", truth_member="mean")
    bias = _value(mean.table, "bias", "2m_temperature", SURFACE_LEVEL, 6)
    assert bias == pytest.approx(_value(plain, "bias", "2m_temperature", SURFACE_LEVEL, 6) - 0.5)
    with pytest.raises(ValueError, match="truth member 5"):
        verify_forecast(persistence, ensemble_truth, model="persistence", truth_member=5)


def _random_ensemble(rng, members: int, offset: float = 0.0):
    """Members and truth drawn from the same distribution per point: a reliable ensemble."""
    coords = {
        "time": [np.datetime64(T0, "ns")],
        "lead_time": LEADS.values,
        "latitude": GRID.latitude,
        "longitude": GRID.longitude,
    }
    shape = (1, len(LEADS), GRID.latitude.size, GRID.longitude.size)
    centre = rng.normal(280.0, 5.0, size=shape)
    fc = xr.DataArray(
        centre[None] + rng.normal(size=(members, *shape)),
        dims=("member", *coords),
        coords={"member": np.arange(members), **coords},
    )
    truth = xr.DataArray(
        centre[0] + offset + rng.normal(size=shape[1:]),
        dims=("time", "latitude", "longitude"),
        coords={
            "time": (T0 + LEADS).values,
            "latitude": GRID.latitude,
            "longitude": GRID.longitude,
        },
    )
    attrs = {"units": "K"}
    return (
        xr.Dataset({"2m_temperature": fc.assign_attrs(attrs)}),
        xr.Dataset({"2m_temperature": truth.assign_attrs(attrs)}),
    )


def test_ensemble_scores_crps_spread_and_reliability():
    rng = np.random.default_rng(3)
    forecast, truth = _random_ensemble(rng, members=8)
    result = verify_forecast(forecast, truth, model="ens")
    table = validate_scores(result.table)
    assert result.members == 8
    assert set(table["metric"]) == {"rmse", "bias", "mae", "crps_fair", "spread", "spread_skill"}
    # A reliable ensemble: spread/skill close to 1 at every lead.
    ratio = table[table["metric"] == "spread_skill"]["value"]
    assert np.allclose(ratio, 1.0, atol=0.1)
    # CRPS against the independent `scores` package (fair estimator, same weights).
    fc = forecast["2m_temperature"].isel(time=0, drop=True)
    tr = truth["2m_temperature"].rename(time="lead_time").assign_coords(lead_time=LEADS.values)
    weights = m.area_weights(tr["latitude"])
    expected = scores_pkg.probability.crps_for_ensemble(
        fc,
        tr,
        ensemble_member_dim="member",
        method="fair",
        reduce_dims=["latitude", "longitude"],
        weights=weights,
    )
    got = table[table["metric"] == "crps_fair"].set_index("lead_time")["value"]
    np.testing.assert_allclose(got.to_numpy(), expected.values, rtol=1e-6)
    # Ensemble-mean RMSE under "rmse"
    em = m.ensemble_mean_rmse(fc, tr, weights)
    np.testing.assert_allclose(
        table[table["metric"] == "rmse"]["value"].to_numpy(), em.values, rtol=1e-10
    )


def test_single_member_is_scored_as_deterministic(persistence, truth):
    one = persistence.expand_dims(member=[0]).transpose("time", "lead_time", "member", ...)
    table = verify_forecast(one, truth, model="one").table
    assert set(table["metric"]) == {"rmse", "bias", "mae"}


def test_schema_rejects_bad_tables(persistence, truth):
    table = verify_forecast(persistence, truth, model="persistence").table
    validate_scores(table)
    bad = [
        table.assign(value=np.where(table["metric"] == "rmse", -1.0, table["value"])),
        table.assign(metric="skill"),
        table.assign(value=np.inf),
        table.assign(variable="2t"),
        pd.concat([table, table.iloc[:1]]),
        table.assign(n=0),
        table.assign(extra=1),
    ]
    for frame in bad:
        with pytest.raises(pa.errors.SchemaErrors):
            validate_scores(frame)


def _cycles(n: int = 3) -> tuple[pd.DataFrame, list[xr.Dataset], list[xr.Dataset]]:
    tables, forecasts, truths = [], [], []
    for i in range(n):
        t0 = T0 + pd.Timedelta(hours=6 * i)
        fc = persistence_forecast(simulate_state(t0, grid=GRID))
        tr = analyses(t0 + LEADS)
        tables.append(verify_forecast(fc, tr, model="persistence").table)
        forecasts.append(fc)
        truths.append(tr)
    return pd.concat(tables, ignore_index=True), forecasts, truths


def test_aggregate_rmse_is_root_of_mean_mse_and_means_for_the_rest():
    table, forecasts, truths = _cycles(3)
    agg = aggregate_schema().validate(aggregate_scores(table))
    assert (agg["cycles"] == 3).all()
    # Against metrics.rmse with time_dims over the three cycles, computed from the data.
    fc = xr.concat([f.isel(time=0, drop=True).drop_vars("valid_time") for f in forecasts], "cycle")
    tr = xr.concat(
        [t.rename(time="lead_time").assign_coords(lead_time=LEADS.values) for t in truths], "cycle"
    )
    weights = m.area_weights(tr["latitude"])
    expected = m.rmse(fc, tr, weights, time_dims=("cycle",))["geopotential"].sel(level=500)
    got = agg[
        (agg["metric"] == "rmse") & (agg["variable"] == "geopotential") & (agg["level"] == 500)
    ]
    np.testing.assert_allclose(got.sort_values("lead_time")["value"], expected.values, rtol=1e-10)
    per_cycle = table[
        (table["metric"] == "rmse")
        & (table["variable"] == "geopotential")
        & (table["level"] == 500)
        & (table["lead_time"] == pd.Timedelta(hours=24))
    ]["value"]
    assert (
        float(got[got["lead_time"] == pd.Timedelta(hours=24)]["value"].iloc[0]) > per_cycle.mean()
    )
    bias = agg[
        (agg["metric"] == "bias") & (agg["variable"] == "temperature") & (agg["level"] == 850)
    ]
    expected_bias = m.bias(fc, tr, weights, time_dims=("cycle",))["temperature"].sel(level=850)
    np.testing.assert_allclose(
        bias.sort_values("lead_time")["value"], expected_bias.values, rtol=1e-6
    )


def test_aggregate_period_bounds_and_nan_propagation():
    table, _, _ = _cycles(3)
    first_two = aggregate_scores(table, "2026-01-01T0000Z", "2026-01-01T0600Z")
    assert (first_two["cycles"] == 2).all()
    last = aggregate_scores(table, start=pd.Timestamp("2026-01-01T12:00", tz="UTC"))
    assert (last["cycles"] == 1).all()
    assert aggregate_scores(table, "2027-01-01T0000Z").empty
    holed = table.copy()
    holed.loc[holed.index[0], "value"] = np.nan
    agg = aggregate_scores(holed)
    key = holed.iloc[0]
    row = agg[
        (agg["metric"] == key["metric"])
        & (agg["variable"] == key["variable"])
        & (agg["level"] == key["level"])
        & (agg["lead_time"] == key["lead_time"])
    ]
    assert row["value"].isna().all()
    assert agg["value"].isna().sum() == 1


def test_aggregate_spread_skill_matches_metrics_over_cycles():
    rng = np.random.default_rng(5)
    tables, fcs, trs = [], [], []
    for i in range(3):
        fc, tr = _random_ensemble(rng, members=5, offset=0.5 * i)
        t0 = T0 + pd.Timedelta(hours=6 * i)
        fc = fc.assign_coords(time=[np.datetime64(t0, "ns")])
        tr = tr.assign_coords(time=(t0 + LEADS).values)
        tables.append(verify_forecast(fc, tr, model="ens").table)
        fcs.append(fc.isel(time=0, drop=True))
        trs.append(tr.rename(time="lead_time").assign_coords(lead_time=LEADS.values))
    agg = aggregate_scores(pd.concat(tables, ignore_index=True))
    fc, tr = xr.concat(fcs, "cycle"), xr.concat(trs, "cycle")
    weights = m.area_weights(tr["latitude"])
    expected = m.spread_skill_ratio(fc, tr, weights, time_dims=("cycle",))["2m_temperature"]
    got = agg[agg["metric"] == "spread_skill"].sort_values("lead_time")["value"]
    np.testing.assert_allclose(got.to_numpy(), expected.values, rtol=1e-10)
    crps = m.crps_fair(fc, tr, weights, time_dims=("cycle",))["2m_temperature"]
    got = agg[agg["metric"] == "crps_fair"].sort_values("lead_time")["value"]
    np.testing.assert_allclose(got.to_numpy(), crps.values, rtol=1e-10)


def test_wxplat_scores_aggregates_parquet_tables(tmp_path):
    table, _, _ = _cycles(3)
    folder = tmp_path / "scores" / "a"
    folder.mkdir(parents=True)
    table.iloc[: len(table) // 2].to_parquet(folder / "one.parquet")
    table.iloc[len(table) // 2 :].to_parquet(tmp_path / "two.parquet")
    out = tmp_path / "agg.parquet"
    runner = CliRunner()
    args = [str(tmp_path / "scores"), str(tmp_path / "two.parquet")]
    period = ["--start", "2026-01-01T0000Z", "--end", "2026-01-01T0600Z"]
    result = runner.invoke(app, ["scores", *args, *period, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "geopotential" in result.stdout and "+24h" in result.stdout
    agg = pd.read_parquet(out)
    assert (agg["cycles"] == 2).all()  # the third cycle (12Z) is outside the period
    expected = aggregate_scores(table, "2026-01-01T0000Z", "2026-01-01T0600Z")
    pd.testing.assert_frame_equal(agg, expected, check_dtype=False)
    # ISO times work too; without bounds every cycle counts.
    iso = runner.invoke(app, ["scores", *args, "--end", "2026-01-01T06:00:00+00:00"])
    assert iso.exit_code == 0 and iso.stdout == result.stdout
    assert runner.invoke(app, ["scores", *args, "--out", str(out)]).exit_code == 0
    assert (pd.read_parquet(out)["cycles"] == 3).all()


def test_wxplat_scores_names_what_is_wrong(tmp_path):
    runner = CliRunner()
    missing = runner.invoke(app, ["scores", str(tmp_path / "nothing-here")])
    assert missing.exit_code == 1
    assert "no scores tables at" in missing.stderr and "nothing-here" in missing.stderr
    (tmp_path / "empty").mkdir()
    empty = runner.invoke(app, ["scores", str(tmp_path / "empty")])
    assert empty.exit_code == 1 and "no scores tables (*.parquet)" in empty.stderr
    bad = runner.invoke(app, ["scores", str(tmp_path), "--start", "yesterday"])
    assert bad.exit_code == 2 and "'yesterday' is not a time" in bad.output


def test_wxplat_scores_reads_tables_on_s3(s3_bucket, wx_env, monkeypatch):
    import fsspec

    from resources.storage import s3_options

    bucket, endpoint = s3_bucket
    monkeypatch.setenv("WXPLAT_STORAGE_ENDPOINT_URL", endpoint)
    table, _, _ = _cycles(2)
    fs = fsspec.filesystem("s3", **s3_options(endpoint))
    with fs.open(f"{bucket}/root/a/member0/scores.parquet", "wb") as fh:
        table.to_parquet(fh)
    result = CliRunner().invoke(app, ["scores", f"s3://{bucket}/root"])
    assert result.exit_code == 0, result.output
    assert "geopotential" in result.stdout and "+24h" in result.stdout


def test_undefined_scores_are_nan_and_named_not_infinite():
    rng = np.random.default_rng(9)
    forecast, truth = _random_ensemble(rng, members=4)
    # Members symmetric around the truth: the ensemble mean is exact, RMSE 0.
    t = truth["2m_temperature"].rename(time="lead_time").assign_coords(lead_time=LEADS.values)
    offsets = xr.DataArray([-2.0, -1.0, 1.0, 2.0], dims="member", coords={"member": range(4)})
    forecast["2m_temperature"] = (
        (t + offsets)
        .expand_dims(time=forecast["time"].values)
        .transpose(*forecast["2m_temperature"].dims)
    )
    result = verify_forecast(forecast, truth, model="ens")
    table = validate_scores(result.table)
    ratio = table[table["metric"] == "spread_skill"]["value"]
    assert ratio.isna().all()
    assert any(
        "undefined on complete data" in n and "spread_skill 2m_temperature" in n
        for n in result.notes
    )
