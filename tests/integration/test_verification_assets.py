"""Verification, climatology and scorecard assets through Dagster, on simulated data in storage.

Forecasts are persistence (and a better "blend") written into storage by the test at the
path the verification assets read, so these tests do not depend on the forecast assets.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg
import pandas as pd
import pytest
import xarray as xr

from model_registry.registry import load_registry
from resources.layout import forecast_relpath, raw_inputs_relpath, scores_relpath
from resources.storage import Storage, StorageResource
from tests.unit.weather_assets.verification.test_scores import persistence_forecast
from weather_assets.keys import SCORECARD_KEY, climatology_key, forecast_key, verification_key
from weather_assets.partitions import analysis_time_partitions, time_to_partition_key
from weather_assets.settings import load_settings
from weather_assets.simulator import simulate_state
from weather_assets.verification.factory import build_verification_assets
from weather_assets.verification.regions import DEFAULT_REGIONS
from weather_assets.verification.scores import verify_forecast

T0 = datetime(2026, 1, 1, 0, tzinfo=UTC)
KEY = "2026-01-01T0000Z"
LEADS = pd.to_timedelta([6, 12, 18, 24], unit="h")
RAW = dg.AssetKey(["raw_inputs", "simulator"])


def _specs(*names: str, max_lead: timedelta = timedelta(hours=24)) -> list:
    base = {s.name: s for s in load_registry()}["persistence"]
    return [base.model_copy(update={"name": n, "max_lead_time": max_lead}) for n in names]


def _defs(settings, specs, **kwargs) -> dg.Definitions:
    pdef = analysis_time_partitions(settings.partitions_start, settings.partitions_cron)
    externals = [dg.AssetSpec(RAW, partitions_def=pdef)] + [
        dg.AssetSpec(forecast_key(s.name), partitions_def=pdef) for s in specs
    ]
    assets = build_verification_assets(
        specs, settings=settings, partitions_def=pdef, raw_inputs_key=RAW, **kwargs
    )
    return dg.Definitions(
        assets=[*externals, *assets],
        resources={"storage": StorageResource(root=settings.storage_root)},
    )


def _run(defs, key: dg.AssetKey, partition: str | None = None, run_config=None, ok=True):
    job = defs.resolve_implicit_global_asset_job_def()
    return job.execute_in_process(
        partition_key=partition,
        instance=dg.DagsterInstance.ephemeral(),
        asset_selection=[key],
        run_config=run_config or {},
        raise_on_error=ok,
    )


def _write_analyses(settings, times) -> None:
    store = Storage(settings.storage_root)
    for t in times:
        store.write_zarr(simulate_state(t), raw_inputs_relpath(settings, t))


def _write_forecast(settings, spec, t0: datetime, blend: float = 0.0) -> xr.Dataset:
    """Persistence from the analysis at t0, nudged towards the truth by ``blend``."""
    fc = persistence_forecast(simulate_state(t0), LEADS)
    if blend:
        truth = xr.concat([simulate_state(t0 + lead) for lead in LEADS], dim="time")
        truth = truth.rename(time="lead_time").assign_coords(lead_time=LEADS.values)
        fc = (1 - blend) * fc + blend * truth.expand_dims(time=fc["time"].values)
        fc = fc.transpose("time", "lead_time", ...)
        for name in fc.data_vars:
            fc[name].attrs = simulate_state(t0)[name].attrs
    path = forecast_relpath(spec, settings, t0)
    Storage(settings.storage_root).write_zarr(fc, path)
    return fc


def _scores_path(settings, spec, t0) -> str:
    return scores_relpath(spec, settings, t0)


def _materialization(result, key: dg.AssetKey):
    mats = [
        e.event_specific_data.materialization
        for e in result.all_events
        if e.event_type_value == "ASSET_MATERIALIZATION"
        and e.event_specific_data.materialization.asset_key == key
    ]
    assert len(mats) == 1
    return mats[0]


def test_asset_graph(settings):
    specs = _specs("persistence", "blend")
    graph = _defs(settings, specs).resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {
        "verification/persistence",
        "verification/blend",
        "climatology/simulator",
        "scorecard",
    } <= keys
    node = graph.get(verification_key("blend"))
    assert node.partitions_def is not None
    assert set(node.parent_keys) == {
        forecast_key("blend"),
        RAW,
        climatology_key(settings.upstream_name),
    }
    mapping = node.partition_mappings[RAW]
    assert isinstance(mapping, dg.TimeWindowPartitionMapping)
    assert (mapping.start_offset, mapping.end_offset) == (0, 4)  # 24 h / 6 h
    assert "eager_with_lookback" in node.automation_condition.get_label()
    assert graph.get(climatology_key(settings.upstream_name)).partitions_def is None
    card = graph.get(SCORECARD_KEY)
    assert card.partitions_def is None
    assert set(card.parent_keys) == {verification_key("persistence"), verification_key("blend")}
    # The registry's 72 h models on 6-hourly partitions look 12 partitions ahead.
    registry = [s for s in load_registry() if s.name == "persistence"]
    graph = _defs(settings, registry).resolve_asset_graph()
    assert graph.get(verification_key("persistence")).partition_mappings[RAW].end_offset == 12


def test_factory_arguments(settings):
    with pytest.raises(ValueError, match="baseline 'persistence' is not a registered model"):
        _defs(settings, _specs("blend"))
    # A lead between analyses: the window ends at the last analysis before it (t + 6 h).
    graph = _defs(
        settings, _specs("persistence", max_lead=timedelta(hours=9))
    ).resolve_asset_graph()
    assert graph.get(verification_key("persistence")).partition_mappings[RAW].end_offset == 1
    assert (
        SCORECARD_KEY
        not in _defs(settings, _specs("blend"), baseline=None)
        .resolve_asset_graph()
        .get_all_asset_keys()
    )


def test_verification_by_hand_writes_scores_and_headlines(settings):
    (spec,) = _specs("persistence")
    _write_analyses(settings, [T0, *(T0 + lead for lead in LEADS)])
    forecast = _write_forecast(settings, spec, T0)
    result = _run(_defs(settings, [spec]), verification_key("persistence"), KEY)
    assert result.success
    meta = _materialization(result, verification_key("persistence")).metadata
    assert meta["complete"].value is True
    assert meta["missing_leads"].value == "none"
    assert meta["scored_leads"].value == 4
    headline = meta["rmse geopotential_500hPa +24h [m2 s-2]"].value
    assert isinstance(headline, float) and headline > 0
    table = pd.read_parquet(Storage(settings.storage_root).url(_scores_path(settings, spec, T0)))
    assert meta["path"].value.endswith("/member0/scores.parquet")
    truth = xr.concat([simulate_state(T0 + lead) for lead in LEADS], dim="time")
    expected = verify_forecast(forecast, truth, model="persistence", regions=DEFAULT_REGIONS).table
    pd.testing.assert_frame_equal(table, expected)
    # Scored per region (global first), the table's size recorded.
    assert meta["regions"].value == ", ".join(DEFAULT_REGIONS)
    assert list(dict.fromkeys(table["region"])) == list(DEFAULT_REGIONS)
    assert meta["bytes"].value == Storage(settings.storage_root).nbytes(
        _scores_path(settings, spec, T0)
    )
    row = table[
        (table["region"] == "global")
        & (table["metric"] == "rmse")
        & (table["variable"] == "geopotential")
        & (table["level"] == 500)
        & (table["lead_time"] == pd.Timedelta(hours=24))
    ]
    # 4 significant digits in the metadata, full precision in the table
    assert float(row["value"].iloc[0]) == pytest.approx(headline, rel=5e-4)
    assert float(f"{headline:.4g}") == headline
    assert "| geopotential_500hPa |" in meta["rmse"].value


def test_missing_leads_and_nans_are_flagged(settings):
    (spec,) = _specs("persistence")
    _write_analyses(settings, [T0, T0 + timedelta(hours=6), T0 + timedelta(hours=12)])
    store = Storage(settings.storage_root)
    holed = simulate_state(T0 + timedelta(hours=12))
    holed["2m_temperature"][0, 10, 10] = float("nan")
    store.write_zarr(holed, raw_inputs_relpath(settings, T0 + timedelta(hours=12)))
    _write_forecast(settings, spec, T0)
    result = _run(_defs(settings, [spec]), verification_key("persistence"), KEY)
    meta = _materialization(result, verification_key("persistence")).metadata
    assert meta["missing_leads"].value == "+18h, +24h"
    assert meta["missing_lead_count"].value == 2
    # 3 global scores NaN, and the same 3 in the region holding the hole (70S).
    assert meta["nan_scores"].value == 6 and meta["complete"].value is False
    scored = pd.read_parquet(store.url(_scores_path(settings, spec, T0)))
    nan = scored[scored["value"].isna()]
    assert sorted(set(nan["region"])) == ["global", "southern_extratropics"]
    table = pd.read_parquet(store.url(_scores_path(settings, spec, T0)))
    assert sorted(table["lead_time"].unique()) == [pd.Timedelta(hours=6), pd.Timedelta(hours=12)]
    # By hand, scoring the valid points only:
    config = {"ops": {"verification__persistence": {"config": {"skipna": True}}}}
    result = _run(_defs(settings, [spec]), verification_key("persistence"), KEY, config)
    assert (
        _materialization(result, verification_key("persistence")).metadata["nan_scores"].value == 0
    )


def test_bad_forecast_fails_clearly_and_keeps_previous_scores(settings):
    (spec,) = _specs("persistence")
    defs = _defs(settings, [spec])
    missing = _run(defs, verification_key("persistence"), KEY, ok=False)
    assert not missing.success
    assert "no forecast in storage" in str(missing.all_events)
    _write_analyses(settings, [T0 + lead for lead in LEADS])
    _write_forecast(settings, spec, T0)
    assert _run(defs, verification_key("persistence"), KEY).success
    store = Storage(settings.storage_root)
    before = pd.read_parquet(store.url(_scores_path(settings, spec, T0)))
    coarse = persistence_forecast(simulate_state(T0).isel(latitude=slice(None, None, 2)), LEADS)
    store.write_zarr(coarse, forecast_relpath(spec, settings, T0))
    failed = _run(defs, verification_key("persistence"), KEY, ok=False)
    assert not failed.success
    assert "different grids" in str(failed.all_events)
    pd.testing.assert_frame_equal(
        pd.read_parquet(store.url(_scores_path(settings, spec, T0))), before
    )


def test_climatology_enables_acc(settings):
    (spec,) = _specs("persistence")
    times = [T0 + timedelta(hours=6 * i) for i in range(29)]  # a week of 6-hourly analyses
    _write_analyses(settings, times)
    defs = _defs(settings, [spec])
    result = _run(defs, climatology_key(settings.upstream_name), run_config={})
    meta = _materialization(result, climatology_key(settings.upstream_name)).metadata
    assert meta["method"].value == "hourly_mean" and meta["history_times"].value == 29
    assert meta["history_end"].value == "2026-01-08T0000Z"
    _write_forecast(settings, spec, T0)
    result = _run(defs, verification_key("persistence"), KEY)
    meta = _materialization(result, verification_key("persistence")).metadata
    assert meta["climatology_method"].value == "hourly_mean"
    assert meta["nan_scores"].value == 0
    table = pd.read_parquet(Storage(settings.storage_root).url(_scores_path(settings, spec, T0)))
    table = table[table["region"] == "global"]  # the headline numbers are global
    acc = table[(table["metric"] == "acc") & (table["variable"] == "geopotential")]
    acc = acc[acc["level"] == 500].sort_values("lead_time")["value"].to_numpy()
    assert meta["acc geopotential_500hPa +24h [1]"].value == pytest.approx(acc[-1], rel=5e-4)
    assert (acc > 0).all() and (acc <= 1).all() and acc[0] > acc[-1]


def test_scorecard_compares_models_with_png_and_table(settings):
    specs = _specs("persistence", "blend")
    cycles = [T0, T0 + timedelta(hours=6)]
    _write_analyses(settings, [cycles[0] + timedelta(hours=6 * i) for i in range(6)])
    defs = _defs(settings, specs)
    for t in cycles:
        _write_forecast(settings, specs[0], t)
        _write_forecast(settings, specs[1], t, blend=0.5)
        for spec in specs:
            assert _run(defs, verification_key(spec.name), time_to_partition_key(t)).success
    result = _run(defs, SCORECARD_KEY)
    meta = _materialization(result, SCORECARD_KEY).metadata
    assert meta["cycles"].value == 2 and meta["models"].value == "blend"
    assert "data:image/png;base64," in meta["scorecard"].value
    assert "| geopotential_500hPa | -50.0% |" in meta["table"].value
    png_path = meta["png_path"].value
    assert png_path.endswith(".png")
    with open(png_path, "rb") as fh:
        assert fh.read(4) == b"\x89PNG"
    card = pd.read_parquet(meta["path"].value)
    assert list(dict.fromkeys(card["region"])) == [
        "global",
        "tropics",
        "northern_extratropics",
        "southern_extratropics",
    ]
    glob = card[card["region"] == "global"]
    assert ((glob["pct_diff"] - -50.0).abs() < 1e-3).all()
    # Per region too; float32 rounding shows where an error is tiny (tropical T850: 0.01 K).
    assert ((card["pct_diff"] - -50.0).abs() < 1e-2).all()
    assert "| tropics | geopotential_500hPa | -50.0% |" in meta["regions"].value
    # Cost: each forecast was written outside Dagster here, so no cost is recorded.
    assert "skill per GPU-hour" in meta["skill_per_gpu_hour"].value


def test_old_cycle_is_verified_automatically_when_its_truth_arrives(settings):
    specs = _specs("persistence")
    defs = _defs(settings, specs)
    instance = dg.DagsterInstance.ephemeral()

    def materialized(key: dg.AssetKey, partition: str | None = None) -> None:
        instance.report_runless_asset_event(dg.AssetMaterialization(key, partition=partition))

    ver = verification_key("persistence")
    selection = dg.AssetSelection.assets(ver, SCORECARD_KEY)
    # It is 2026-01-02T07:00: the 00Z and 18Z forecasts of Jan 1 exist, analyses up to Jan 1 18Z.
    now = datetime(2026, 1, 2, 7, tzinfo=UTC)
    for key in ("2026-01-01T0000Z", "2026-01-01T1800Z"):
        materialized(forecast_key("persistence"), key)
    for hour in (0, 6, 12, 18):
        materialized(RAW, f"2026-01-01T{hour:02d}00Z")

    def tick(result, seconds: int):
        return dg.evaluate_automation_conditions(
            defs=defs,
            instance=instance,
            asset_selection=selection,
            evaluation_time=now + timedelta(seconds=seconds),
            cursor=result.cursor if result is not None else None,
        )

    result = tick(None, 0)  # the first evaluation only sets the cursor
    result = tick(result, 30)
    assert result.total_requested == 0  # the +24 h analysis of the 00Z cycle is missing
    materialized(RAW, "2026-01-02T0000Z")  # ... arrives, a day after its cycle
    result = tick(result, 60)
    assert result.get_requested_partitions(ver) == {"2026-01-01T0000Z"}
    result = tick(result, 90)
    assert result.total_requested == 0  # requested once; 18Z still waits for its truth
    materialized(ver, "2026-01-01T0000Z")  # the run finished: the scorecard follows
    result = tick(result, 120)
    assert result.get_num_requested(SCORECARD_KEY) == 1
    assert result.get_num_requested(ver) == 0
    # A re-ingested analysis (corrected upstream) re-verifies the cycles it is truth for.
    materialized(RAW, "2026-01-01T1200Z")
    result = tick(result, 150)
    assert result.get_requested_partitions(ver) == {"2026-01-01T0000Z"}


def test_with_the_real_forecast_assets(tmp_path):
    """forecast/<model> from the forecast factory (persistence, deterministic and a perturbed
    3-member ensemble), then verification and the scorecard, in one Dagster instance."""
    from weather_assets.forecast.assets import build_model_assets
    from weather_assets.simulator import Grid

    grid = Grid(-90.0, 90.0, 0.0, 340.0, 20.0)
    settings = load_settings(
        {
            "WXPLAT_HOME": str(tmp_path / "home"),
            "WXPLAT_DOMAIN": "w0_s-90_e340_n90",
            "WXPLAT_RESOLUTION": "dx20deg_dy20deg",
        }
    )
    store = Storage(settings.storage_root)
    for i in range(5):
        t = T0 + timedelta(hours=6 * i)
        store.write_zarr(simulate_state(t, grid), raw_inputs_relpath(settings, t))
    base = {s.name: s for s in load_registry()}["persistence"]
    specs = [
        base.model_copy(update={"max_lead_time": timedelta(hours=24)}),
        base.model_copy(
            update={"name": "persistence-ens", "max_lead_time": timedelta(hours=24), "members": 3}
        ),
    ]
    pdef = analysis_time_partitions(settings.partitions_start, settings.partitions_cron)
    model_assets = [
        a
        for spec in specs
        for a in build_model_assets(
            spec, partitions_def=pdef, raw_inputs_key=RAW, settings=settings
        )
    ]
    defs = dg.Definitions(
        assets=[
            dg.AssetSpec(RAW, partitions_def=pdef),
            *model_assets,
            *build_verification_assets(
                specs, settings=settings, partitions_def=pdef, raw_inputs_key=RAW
            ),
        ],
        resources={"storage": StorageResource(root=settings.storage_root)},
    )
    instance = dg.DagsterInstance.ephemeral()
    job = defs.resolve_implicit_global_asset_job_def()
    upstream = [dg.AssetKey(["normalized", s.name]) for s in specs] + [
        forecast_key(s.name) for s in specs
    ]
    assert job.execute_in_process(
        partition_key=KEY, instance=instance, asset_selection=upstream
    ).success
    selection = [verification_key(s.name) for s in specs]
    result = job.execute_in_process(partition_key=KEY, instance=instance, asset_selection=selection)
    assert result.success
    metas = {
        m.asset_key: m.metadata
        for m in (
            e.event_specific_data.materialization
            for e in result.all_events
            if e.event_type_value == "ASSET_MATERIALIZATION"
        )
    }
    det = metas[verification_key("persistence")]
    ens = metas[verification_key("persistence-ens")]
    assert det["members"].value == 1 and det["complete"].value is True
    assert ens["members"].value == 3 and ens["complete"].value is True
    assert "crps_fair geopotential_500hPa +24h [m2 s-2]" in ens
    assert "/persistence/default/" in det["path"].value
    # The ensemble is persistence plus small perturbations: nearly the same ensemble-mean RMSE.
    key = "rmse geopotential_500hPa +24h [m2 s-2]"
    assert ens[key].value == pytest.approx(det[key].value, rel=0.01)
    card = job.execute_in_process(instance=instance, asset_selection=[SCORECARD_KEY])
    assert card.success
    meta = _materialization(card, SCORECARD_KEY).metadata
    assert meta["models"].value == "persistence-ens" and meta["cycles"].value == 1


def test_scores_tables_round_trip_on_s3(s3_bucket):
    from resources.layout import read_table, write_table
    from resources.storage import s3_options
    from weather_assets.verification.scores import empty_table

    bucket, endpoint = s3_bucket
    store = Storage(f"s3://{bucket}/root", s3_options(endpoint))
    table = empty_table()
    relpath = (
        "persistence/default/w0_s-90_e358_n90/dx2deg_dy2deg/2026-01-01T0000Z/member0/scores.parquet"
    )
    assert read_table(store, relpath) is None
    url = write_table(store, table, relpath)
    assert url == f"s3://{bucket}/root/{relpath}"
    pd.testing.assert_frame_equal(read_table(store, relpath), table)
    assert not store.fs.exists(f"{bucket}/root/.staging") or not store.fs.ls(
        f"{bucket}/root/.staging"
    )


def test_no_truth_yet_materializes_nothing(settings):
    """A new cycle's verification waits for its first lead's analysis: no empty table, no
    materialization (so no scorecard rerun) until then."""
    (spec,) = _specs("persistence")
    _write_analyses(settings, [T0])  # the analysis the forecast starts from, no later one
    _write_forecast(settings, spec, T0)
    result = _run(_defs(settings, [spec]), verification_key("persistence"), KEY)
    assert result.success
    assert not [e for e in result.all_events if e.event_type_value == "ASSET_MATERIALIZATION"]
    assert not Storage(settings.storage_root).exists(_scores_path(settings, spec, T0))
    assert Storage(settings.storage_root).read_bytes(_scores_path(settings, spec, T0)) is None
    _write_analyses(settings, [T0 + LEADS[0]])  # the first lead's truth arrives
    again = _run(_defs(settings, [spec]), verification_key("persistence"), KEY)
    table = pd.read_parquet(Storage(settings.storage_root).url(_scores_path(settings, spec, T0)))
    assert set(table["lead_time"]) == {LEADS[0]}
    assert _materialization(again, verification_key("persistence"))
