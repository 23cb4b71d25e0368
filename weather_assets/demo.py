"""The demo on the embedded default: simulated upstream, then the asset graph through Dagster."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import dagster as dg

from weather_assets.ingest.simulate import write_simulated_cycles
from weather_assets.partitions import time_to_partition_key
from weather_assets.settings import load_settings


def _materialized(instance: dg.DagsterInstance, key: dg.AssetKey) -> set[str]:
    return set(instance.get_materialized_partitions(key))


def run_demo(
    *,
    instance: dg.DagsterInstance,
    start: datetime,
    cycles: int,
    echo: Callable[[str], None] = print,
) -> dict[str, list[str]]:
    """Simulate ``cycles`` cycles and materialize what is missing; idempotent.

    Returns, per asset, the partitions materialized by this call.
    """
    import definitions

    settings = load_settings()
    end = start + timedelta(hours=6 * (cycles - 1))
    echo(f"upstream area: {settings.upstream_url}")
    for t, url, written in write_simulated_cycles(settings.upstream_url, start, end):
        echo(f"  {'simulated' if written else 'present  '} {time_to_partition_key(t)} {url}")
    defs = definitions.build_definitions(settings)
    graph = defs.resolve_asset_graph()
    raw_key = dg.AssetKey(["raw_inputs", settings.upstream_name])
    keys = [time_to_partition_key(start + timedelta(hours=6 * i)) for i in range(cycles)]
    done: dict[str, list[str]] = {}
    todo = sorted(set(keys) - _materialized(instance, raw_key))
    selection = dg.AssetSelection.assets(raw_key)
    job = defs.resolve_implicit_global_asset_job_def()
    for key in todo:
        result = job.execute_in_process(
            instance=instance,
            partition_key=key,
            asset_selection=list(selection.resolve(graph)),
        )
        if not result.success:
            raise RuntimeError(f"materializing {raw_key.to_user_string()} for {key} failed")
    done[raw_key.to_user_string()] = todo
    echo(
        f"{raw_key.to_user_string()}: {len(todo)} partition(s) materialized, "
        f"{len(keys) - len(todo)} already up to date"
    )
    echo(f"raw inputs are under {settings.storage_root}/raw_inputs/{settings.upstream_name}/")
    return done
