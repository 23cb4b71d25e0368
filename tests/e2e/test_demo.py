"""The README's main command on the embedded default, with a persistence-only registry
(the FNO's training is covered in test_training.py; `make demo` trains it when absent)."""

from datetime import UTC, datetime

import dagster as dg
from typer.testing import CliRunner


def test_demo_runs_the_whole_cycle_and_is_idempotent(wx_env, persistence_registry):
    from weather_assets.cli import app

    runner = CliRunner()
    first = runner.invoke(app, ["demo", "--cycles", "14", "--start", "2026-03-01T0000Z"])
    assert first.exit_code == 0, first.output
    assert "raw_inputs/simulator: 14 partition(s) materialized" in first.output
    assert "forecast/persistence: 14 partition(s) materialized" in first.output
    assert "scorecard picture:" in first.output and "scorecard table:" in first.output
    png = first.output.split("scorecard picture:")[1].split()[0]
    assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
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
    second = runner.invoke(app, ["demo", "--cycles", "14", "--start", "2026-03-01T0000Z"])
    assert second.exit_code == 0, second.output
    assert "0 partition(s) materialized, 14 already up to date" in second.output
    assert "forecast/persistence: 0 partition(s) materialized" in second.output


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
