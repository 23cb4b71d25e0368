"""The README's main command on the embedded default, with a persistence-only registry
(the FNO's training is covered in test_training.py; `make demo` trains it when absent)."""

from datetime import UTC, datetime, timedelta

import dagster as dg
from typer.testing import CliRunner


def test_demo_runs_the_whole_cycle_and_is_idempotent(wx_env, persistence_registry):
    from weather_assets.cli import app

    # A product published by persistence (champion and baseline): a decision and GRIB2 files.
    products = persistence_registry.parent / "products"
    products.mkdir()
    (products / "e2e.yaml").write_text(
        "name: e2e\nchampion: persistence\nbaseline: persistence\nheadline_scores:\n"
        "  - {metric: rmse, variable: geopotential, level: 500, lead_time: 24h}\n"
    )
    runner = CliRunner()
    first = runner.invoke(app, ["demo", "--cycles", "14", "--start", "2026-03-01T0000Z"])
    assert first.exit_code == 0, first.output
    assert "raw_inputs/simulator: 14 partition(s) materialized" in first.output
    assert "forecast/persistence: 14 partition(s) materialized" in first.output
    assert "scorecard picture:" in first.output and "scorecard table:" in first.output
    png = first.output.split("scorecard picture:")[1].split()[0]
    assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert "promotion/e2e as of 2026-03-04T0600Z: champion persistence (decision keep" in (
        first.output
    )
    assert "product/e2e: 14 partition(s) published" in first.output
    grib = first.output.split("GRIB2:")[1].split()[0]
    assert grib.endswith("2026-03-04T0600Z/member0/forecast.grib2")
    assert open(grib, "rb").read(4) == b"GRIB"
    instance = dg.DagsterInstance.get()
    # The partitions start at the demo's first cycle (settings.env), not at the default start.
    from weather_assets.settings import load_settings

    assert load_settings().partitions_start == "2026-03-01T0000Z"
    # Upstream arrivals are recorded (no partition shows Missing), with the versions the
    # raw inputs were read from: nothing is stale after the demo.
    upstream = instance.get_materialized_partitions(dg.AssetKey(["upstream", "simulator"]))
    assert len(upstream) == 14
    stale = runner.invoke(app, ["stale"])
    assert stale.exit_code == 0, stale.output
    assert "nothing stale" in stale.output
    verified = instance.get_materialized_partitions(dg.AssetKey(["verification", "persistence"]))
    assert "2026-03-01T0000Z" in verified
    event = instance.get_latest_materialization_event(dg.AssetKey(["verification", "persistence"]))
    assert event is not None
    runs = len(instance.get_runs())
    second = runner.invoke(app, ["demo", "--cycles", "14", "--start", "2026-03-01T0000Z"])
    assert second.exit_code == 0, second.output
    assert "0 partition(s) materialized, 14 already up to date" in second.output
    assert "forecast/persistence: 0 partition(s) materialized" in second.output
    # Up to date, nothing runs: not the climatology (no new raw inputs), not the scorecard
    # (no new scores), not the verifications still waiting for analyses past the last cycle.
    assert "climatology/simulator: up to date" in second.output
    assert "scorecard: up to date" in second.output
    assert "promotion/e2e: up to date" in second.output
    assert "product/e2e: 0 partition(s) published" in second.output
    assert "scorecard picture:" in second.output
    assert len(instance.get_runs()) == runs


def test_simulate_command_writes_path_layout(wx_env):
    from weather_assets.cli import app
    from weather_assets.settings import load_settings

    out = CliRunner().invoke(
        app, ["simulate", "--start", "2026-01-01T0000Z", "--end", "2026-01-01T1200Z"]
    )
    assert out.exit_code == 0, out.output
    assert out.output.count("wrote ") == 3
    from resources.upstream import UpstreamSource

    up = UpstreamSource(url=load_settings().upstream_url)
    assert up.list_cycle_keys() == ["2026-01-01T0000Z", "2026-01-01T0600Z", "2026-01-01T1200Z"]
    ds = up.read_cycle(datetime(2026, 1, 1, 6, tzinfo=UTC))
    assert ds.sizes["latitude"] == 91


def test_demo_cycles_end_with_the_one_due_now():
    from weather_assets.demo import latest_cycles

    now = datetime(2026, 11, 26, 5, 38, tzinfo=UTC)
    first, last = latest_cycles(16, now)
    assert last == datetime(2026, 11, 26, 0, tzinfo=UTC)
    assert first == datetime(2026, 11, 22, 6, tzinfo=UTC)


def _report(instance: dg.DagsterInstance, key: dg.AssetKey, partition=None, **tags) -> None:
    instance.report_runless_asset_event(
        dg.AssetMaterialization(key, partition=partition, tags=tags or None)
    )


def test_verifications_wait_for_a_new_analysis_at_one_of_their_valid_times():
    from model_registry.registry import DEFAULT_REGISTRY_DIR, load_spec
    from weather_assets.demo import verifications_due

    spec = load_spec(DEFAULT_REGISTRY_DIR / "persistence.yaml")  # leads 6 h .. 72 h
    raw, scores = dg.AssetKey(["raw_inputs", "simulator"]), dg.AssetKey(["verification", spec.name])
    keys = ["2026-03-01T0000Z", "2026-03-01T0600Z", "2026-03-01T1200Z"]

    def due(forecasts=()):
        return verifications_due(
            instance,
            spec,
            raw_key=raw,
            keys=keys,
            cadence=timedelta(hours=6),
            forecasts=set(forecasts),
        )

    with dg.instance_for_test() as instance:
        for key in keys:
            _report(instance, raw, key)
        assert due() == keys[:2]  # the last cycle has no analysis after it yet
        for key in keys[:2]:
            _report(instance, scores, key)
        assert due() == []  # scored what exists: they wait, however often asked
        assert due(forecasts=[keys[2]]) == [keys[2]]  # runs with its cycle's forecast
        _report(instance, raw, "2026-03-01T1800Z")  # the next cycle's analysis arrives
        assert due() == keys
        for key in keys:
            _report(instance, scores, key)
        _report(instance, raw, "2026-03-04T0600Z")  # +72 h of 0600Z: beyond 0000Z's last lead
        assert due() == keys[1:]


def test_an_unpartitioned_asset_is_up_to_date_until_an_input_or_its_code_changes():
    from weather_assets.demo import up_to_date

    @dg.asset(partitions_def=dg.StaticPartitionsDefinition(["a", "b"]))
    def raw() -> None: ...

    @dg.asset(deps=[raw], code_version="2")
    def climatology() -> None: ...

    graph = dg.Definitions(assets=[raw, climatology]).resolve_asset_graph()
    with dg.instance_for_test() as instance:
        assert not up_to_date(instance, graph, climatology.key)  # never materialized
        _report(instance, raw.key, "a")
        _report(instance, climatology.key, **{"dagster/code_version": "2"})
        assert up_to_date(instance, graph, climatology.key)
        _report(instance, raw.key, "b")  # a new input
        assert not up_to_date(instance, graph, climatology.key)
        _report(instance, climatology.key, **{"dagster/code_version": "1"})  # older code
        assert not up_to_date(instance, graph, climatology.key)
        _report(instance, climatology.key, **{"dagster/code_version": "2"})
        assert up_to_date(instance, graph, climatology.key)
