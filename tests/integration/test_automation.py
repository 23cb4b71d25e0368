"""Declarative automation: a newly ingested recent cycle flows on to every model's forecast;
history beyond the look-back is left to backfills (verification has its own wider window,
tested in test_verification_assets.py)."""

from datetime import timedelta

import dagster as dg

from weather_assets.ingest.simulate import write_simulated_cycles
from weather_assets.partitions import (
    analysis_time_partitions,
    partition_key_to_time,
    time_to_partition_key,
)
from weather_assets.settings import load_settings

QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


def _requested(result, key: dg.AssetKey) -> set[str]:
    for res in result.results:
        if res.key == key:
            return set(res.true_subset.expensively_compute_partition_keys())
    return set()


def test_recent_cycle_flows_to_forecasts_old_one_does_not(wx_env, persistence_registry):
    import definitions

    settings = load_settings()
    latest = analysis_time_partitions().get_last_partition_key()
    old = "2026-01-01T0600Z"
    for key in (latest, old):
        t = partition_key_to_time(key)
        write_simulated_cycles(settings.upstream_url, t, t)
    defs = definitions.build_definitions(settings)
    instance = dg.DagsterInstance.ephemeral()
    first = dg.evaluate_automation_conditions(defs=defs, instance=instance)  # sets the cursor
    job = defs.resolve_implicit_global_asset_job_def()
    raw = dg.AssetKey(["raw_inputs", "simulator"])
    for key in (latest, old):
        assert job.execute_in_process(
            partition_key=key, instance=instance, asset_selection=[raw], run_config=QUIET
        ).success
    second = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)
    normalized = _requested(second, dg.AssetKey(["normalized", "persistence"]))
    assert latest in normalized
    assert old not in normalized  # beyond the 48 h look-back: a backfill's job
    assert (
        time_to_partition_key(partition_key_to_time(latest) - timedelta(days=3)) not in normalized
    )
