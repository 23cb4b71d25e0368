"""The demo on the embedded default: simulated upstream, then the whole asset graph.

Steps, each idempotent (what is already materialized is not redone):
1. simulate the upstream cycles (the provider's bucket, here a local folder);
2. train the demo FNO on earlier simulator history if its artifact is absent;
3. ingest every cycle (``raw_inputs`` + blocking checks);
4. climatology from the ingested history;
5. per cycle: every model's normalized input and forecast (+ checks) and verification;
6. the scorecard; print where its picture and table are;
7. per product (``model_registry/products/``): its cycles published (in each cycle's run), the
   promotion decision with the table that justified it, and where the GRIB2 product is.

What runs again is decided from the instance's records (storage ids of materializations):
the climatology and the scorecard when one of their inputs was materialized after them (or
their code version changed), a cycle's verification with its forecast or when an analysis at
one of its valid times was materialized after it. A verification still waiting for analyses
past the last ingested cycle is not re-run until one arrives; run again with everything up
to date, the demo materializes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg

from weather_assets.ingest.simulate import write_simulated_cycles
from weather_assets.keys import (
    SCORECARD_KEY,
    climatology_key,
    forecast_key,
    model_keys,
    product_key,
    promotion_key,
    raw_inputs_key,
    verification_key,
)
from weather_assets.lineage import record_sensor_events
from weather_assets.partitions import (
    partition_cadence,
    partition_key_to_time,
    partition_offset,
    settings_partitions,
    time_to_partition_key,
)
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

    for spec in specs:
        if not get_architecture(spec.architecture).trainable or spec.artifact is None:
            continue
        if spec.artifact.is_remote or Path(spec.artifact_location).exists():
            continue
        echo(
            f"training {spec.name} on simulator history {TRAIN_START}..{TRAIN_END} "
            f"(its artifact {spec.artifact_location} is absent)"
        )
        from model_registry.training import train_registered  # torch: only when training

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


def _latest_ids(instance: dg.DagsterInstance, key: dg.AssetKey) -> dict[str, int]:
    """Storage id of each partition's latest materialization."""
    return dict(
        instance.get_latest_storage_id_by_partition(key, dg.DagsterEventType.ASSET_MATERIALIZATION)
    )


def up_to_date(instance: dg.DagsterInstance, graph, key: dg.AssetKey) -> bool:
    """Whether an unpartitioned asset was materialized, with its current code version, after
    the latest materialization of every asset it depends on (any partition)."""
    records = instance.fetch_materializations(key, limit=1).records
    if not records or records[0].asset_materialization is None:
        return False
    latest = records[0]
    tags = latest.asset_materialization.tags or {}
    if tags.get("dagster/code_version") != graph.get(key).code_version:
        return False
    for parent in graph.get(key).parent_keys:
        newest = instance.fetch_materializations(parent, limit=1).records
        if newest and newest[0].storage_id > latest.storage_id:
            return False
    return True


def verifications_due(
    instance: dg.DagsterInstance,
    spec,
    *,
    raw_key: dg.AssetKey,
    keys: list[str],
    cadence: timedelta,
    forecasts: set[str],
) -> list[str]:
    """The cycles of ``keys`` whose verification has something new to score.

    A cycle's verification runs with its forecast (``forecasts``: the cycles whose forecast
    runs now), and when an analysis at one of its valid times (t + cadence .. t + max lead)
    was materialized after its latest materialization, or at all if it has none. Cycles whose
    missing analyses lie past the last ingested cycle wait, however often the demo runs.
    """
    verified = _latest_ids(instance, verification_key(spec.name))
    analyses = _latest_ids(instance, raw_key)
    leads = range(1, partition_offset(spec.max_lead_time, cadence) + 1)
    due = []
    for key in keys:
        t = partition_key_to_time(key)
        truth = (analyses.get(time_to_partition_key(t + j * cadence), -1) for j in leads)
        if key in forecasts or max(truth, default=-1) > verified.get(key, -1):
            due.append(key)
    return due


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
        return sorted(set(keys) - set(instance.get_materialized_partitions(key)))

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
        if up_to_date(instance, graph, clim_key):
            echo(f"{clim_key.to_user_string()}: up to date (no new raw inputs since)")
        else:
            run([clim_key], None)
    per_cycle = [k for spec in specs for k in model_keys(spec.name) if graph.has(k)]
    # A product's cycle is published in the run of its forecasts (after them: its deps).
    products = _products(settings, specs, graph)
    per_cycle += [product_key(p.name) for p in products]
    # The cycles each asset needs, from the instance's records (queried once).
    needed = {k: set(missing(k)) for k in per_cycle if k.path[0] != "verification"}
    cadence = partition_cadence(settings_partitions(settings))
    for spec in specs:
        if graph.has(verification_key(spec.name)):
            needed[verification_key(spec.name)] = set(
                verifications_due(
                    instance,
                    spec,
                    raw_key=raw_key,
                    keys=keys,
                    cadence=cadence,
                    forecasts=needed.get(forecast_key(spec.name), set()),
                )
            )
    for asset_key in per_cycle:
        done[asset_key.to_user_string()] = []
    for key in keys:
        selection = [k for k in per_cycle if key in needed[k]]
        if selection:
            run(selection, key)
            for k in selection:
                done[k.to_user_string()].append(key)
    for spec in specs:
        n = len(done.get(f"forecast/{spec.name}", []))
        echo(f"forecast/{spec.name}: {n} partition(s) materialized, {cycles - n} up to date")
    scorecard = SCORECARD_KEY
    if graph.has(scorecard):
        if up_to_date(instance, graph, scorecard):
            echo(f"{scorecard.to_user_string()}: up to date (no new scores since)")
        else:
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
    for product in products:
        _promotion(instance, graph, product.name, run, echo)
        _published(instance, product.name, done, echo)
    return done


def _products(settings: PlatformSettings, specs, graph) -> list:
    """The declared products whose assets are in the graph (all their models enabled)."""
    from model_registry.products import load_products_report, products_dir

    report = load_products_report(products_dir(settings.registry_dir), [s.name for s in specs])
    return [p for p in report.products if graph.has(product_key(p.name))]


def _promotion(instance: dg.DagsterInstance, graph, product: str, run, echo) -> None:
    """Decide (unless up to date) and print the decision with the table that justified it."""
    key = promotion_key(product)
    if up_to_date(instance, graph, key):
        echo(f"\n{key.to_user_string()}: up to date (no new scores since)")
    else:
        run([key], None)
    latest = _latest_metadata(instance, key)
    if latest is None:
        return
    meta = latest[1]
    echo(
        f"\npromotion/{product} as of {meta.get('as_of')}: champion {meta.get('champion')} "
        f"(decision {meta.get('decision')} at cycle {meta.get('decision_cycle', 'none')}: "
        f"{meta.get('reason')})"
    )
    if "table" in meta:
        echo(str(meta["table"]))
    if "history" in meta:
        echo(f"changes so far:\n{meta['history']}")
    echo(f"decisions: {meta.get('decisions_path')}")


def _latest_metadata(
    instance: dg.DagsterInstance, key: dg.AssetKey
) -> tuple[str | None, dict] | None:
    """(partition, metadata values) of the asset's latest materialization, or None."""
    event = instance.get_latest_materialization_event(key)
    if event is None or event.asset_materialization is None:
        return None
    materialization = event.asset_materialization
    return materialization.partition, {k: v.value for k, v in materialization.metadata.items()}


def _published(instance: dg.DagsterInstance, product: str, done, echo) -> None:
    """Where the latest published cycle of a product is, and which model made it."""
    key = product_key(product)
    n = len(done.get(key.to_user_string(), []))
    echo(f"{key.to_user_string()}: {n} partition(s) published")
    latest = _latest_metadata(instance, key)
    if latest is None:
        return
    partition, meta = latest
    echo(
        f"  latest {partition}: {meta.get('model')} @ "
        f"{meta.get('artifact_version')} ({meta.get('published_as')})\n"
        f"  GRIB2: {meta.get('grib2_path')}\n  zarr:  {meta.get('zarr_path')}"
    )
