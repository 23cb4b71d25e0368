"""The demo on the embedded default: simulated upstream, then the whole asset graph.

Steps, each idempotent (what is already materialized is not redone):
1. simulate the upstream cycles (the provider's bucket, here a local folder);
2. train the demo FNO on earlier simulator history if its artifact is absent;
3. ingest every cycle (``raw_inputs`` + blocking checks);
4. climatology from the ingested history;
5. per cycle: every model's normalized input and forecast (+ checks) and verification;
6. the scorecard; print where its picture and table are.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg

from weather_assets.ingest.simulate import write_simulated_cycles
from weather_assets.keys import SCORECARD_KEY, climatology_key, model_keys, raw_inputs_key
from weather_assets.lineage import record_sensor_events
from weather_assets.partitions import time_to_partition_key
from weather_assets.settings import (
    PlatformSettings,
    load_settings,
    read_home_settings,
    write_home_settings,
)

TRAIN_START, TRAIN_END = "2025-09-01", "2025-12-01"  # held out: the demo's 2026 cycles
# Runs are recorded in the instance (see them with `make dev`); the terminal gets warnings only.
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def _ensure_demo_artifacts(specs, echo: Callable[[str], None]) -> None:
    """Train registry models whose local artifact is missing (the demo FNO)."""
    from model_registry.architectures import get_architecture
    from model_registry.training import train_registered

    for spec in specs:
        if not get_architecture(spec.architecture).trainable or spec.artifact is None:
            continue
        if spec.artifact.is_remote or Path(spec.artifact_location).exists():
            continue
        echo(
            f"training {spec.name} on simulator history {TRAIN_START}..{TRAIN_END} "
            f"(its artifact {spec.artifact_location} is absent)"
        )
        result = train_registered(spec, TRAIN_START, TRAIN_END, command="wxplat demo")
        echo(f"trained {spec.name} in {result.seconds:.1f} s (final loss {result.losses[-1]:.4g})")
        echo(f"{result.path}\nsha256 {result.sha256}")


def latest_cycles(cycles: int, now: datetime | None = None) -> tuple[datetime, datetime]:
    """First and last of the ``cycles`` six-hourly cycles that end with the one due now."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    last = now.replace(hour=now.hour - now.hour % 6, minute=0, second=0, microsecond=0)
    return last - timedelta(hours=6 * (cycles - 1)), last


def demo_window(settings: PlatformSettings, start: datetime) -> PlatformSettings:
    """Start the home's partitions (settings.env) at the demo's first cycle, or earlier.

    The partitions then run from the demo's cycles to the current one, not from the default
    start: the UI lists the cycles that exist, and a later `make dev` on the same home shows
    the same partitions.
    """
    first = time_to_partition_key(start)
    saved = read_home_settings(settings.home).get("WXPLAT_PARTITIONS_START")
    if saved is not None:
        first = min(first, saved)
    write_home_settings(settings.home, {"WXPLAT_PARTITIONS_START": first})
    return load_settings()


def _complete(instance: dg.DagsterInstance, key: dg.AssetKey, partition: str) -> bool:
    """Whether the latest verification of a cycle scored every lead time."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition]), limit=1
    ).records
    if not records:
        return False
    meta = records[0].asset_materialization.metadata
    return bool(meta["complete"].value) if "complete" in meta else True


def run_demo(
    *,
    instance: dg.DagsterInstance,
    start: datetime | None,
    cycles: int,
    echo: Callable[[str], None] = print,
    models: bool = True,
) -> dict[str, list[str]]:
    """Simulate ``cycles`` cycles and materialize what is missing; returns what was done.

    ``start`` None: the cycles end with the one due now (the partitions then reach the
    present, so new cycles run themselves as time goes on).
    """
    import definitions
    from model_registry.registry import load_registry

    if start is None:
        start, end = latest_cycles(cycles)
    else:
        end = start + timedelta(hours=6 * (cycles - 1))
    settings = demo_window(load_settings(), start)
    written = write_simulated_cycles(settings.upstream_url, start, end)
    echo(
        f"upstream area {settings.upstream_url}: {sum(w for _, _, w in written)} cycle(s) "
        f"simulated, {sum(not w for _, _, w in written)} already there "
        f"({time_to_partition_key(start)} .. {time_to_partition_key(end)})"
    )
    specs = [s for s in load_registry(settings.registry_dir) if s.enabled] if models else []
    _ensure_demo_artifacts(specs, echo)
    defs = definitions.build_definitions(settings)
    graph = defs.resolve_asset_graph()
    # What the sensors would report first (upstream arrivals with their versions, artifact
    # sha256s with their provenance), so the versions the runs record are the ones a later
    # `dagster dev` sees: nothing looks stale or missing that is not.
    recorded = record_sensor_events(instance, defs)
    echo(f"lineage: {recorded} upstream arrival(s) and artifact observation(s) recorded")
    job = defs.resolve_implicit_global_asset_job_def()
    keys = [time_to_partition_key(start + timedelta(hours=6 * i)) for i in range(cycles)]
    done: dict[str, list[str]] = {}

    def run(asset_keys: list[dg.AssetKey], partition: str | None) -> None:
        result = job.execute_in_process(
            instance=instance,
            partition_key=partition,
            asset_selection=asset_keys,
            raise_on_error=False,
            run_config=QUIET,
        )
        if not result.success:
            names = ", ".join(k.to_user_string() for k in asset_keys)
            raise RuntimeError(
                f"materializing {names} for {partition or 'all'} failed; "
                "see the run in the Dagster UI (make dev)"
            )

    def missing(key: dg.AssetKey) -> list[str]:
        todo = set(keys) - set(instance.get_materialized_partitions(key))
        if key.path[0] == "verification":
            # Scores made before all of a cycle's truth had arrived are redone (as the
            # automation would do when the later analyses land).
            todo |= {k for k in keys if k not in todo and not _complete(instance, key, k)}
        return sorted(todo)

    raw_key = raw_inputs_key(settings.upstream_name)
    todo = missing(raw_key)
    for key in todo:
        run([raw_key], key)
    done[raw_key.to_user_string()] = todo
    echo(
        f"{raw_key.to_user_string()}: {len(todo)} partition(s) materialized, "
        f"{len(keys) - len(todo)} already up to date"
    )
    echo(f"  raw inputs are under {settings.storage_root}/raw_inputs/{settings.upstream_name}/")
    if not specs:
        return done

    clim_key = climatology_key(settings.upstream_name)
    if graph.has(clim_key):
        run([clim_key], None)
    per_cycle = [k for spec in specs for k in model_keys(spec.name) if graph.has(k)]
    for asset_key in per_cycle:
        done[asset_key.to_user_string()] = []
    for key in keys:
        selection = [k for k in per_cycle if key in missing(k)]
        if selection:
            run(selection, key)
            for k in selection:
                done[k.to_user_string()].append(key)
    for spec in specs:
        n = len(done.get(f"forecast/{spec.name}", []))
        echo(f"forecast/{spec.name}: {n} partition(s) materialized, {cycles - n} up to date")
    scorecard = SCORECARD_KEY
    if graph.has(scorecard):
        run([scorecard], None)
        event = instance.get_latest_materialization_event(scorecard)
        meta = event.asset_materialization.metadata if event and event.asset_materialization else {}
        if "table" in meta:
            echo("\nscorecard (RMSE, % difference against the baseline; negative is better):")
            echo(str(meta["table"].value))
        if "png_path" in meta:
            echo(f"scorecard picture: {meta['png_path'].value}")
        if "path" in meta:
            echo(f"scorecard table:   {meta['path'].value}")
    return done
