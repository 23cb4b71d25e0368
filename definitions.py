"""The platform's one Dagster code location: assembles assets, checks, sensors and resources.

Everything environment-specific comes from :func:`weather_assets.settings.load_settings`;
cross-cutting policy (automation, sensors, executor) is applied here, once.
"""

import logging
import warnings
from datetime import timedelta

import dagster as dg

from model_registry.products import load_products_report, products_dir
from model_registry.registry import load_registry_report
from resources.dask import DaskResource
from resources.execution import executor_for, pipes_client_for, skip_final_collection
from resources.storage import StorageResource
from resources.upstream import UpstreamSource
from weather_assets.alerts import build_failure_sensor
from weather_assets.forecast.assets import build_registry_assets
from weather_assets.forecast.sensors import build_artifact_sensor
from weather_assets.ingest.assets import build_ingest_assets
from weather_assets.ingest.freshness import build_freshness
from weather_assets.ingest.sensors import build_upstream_sensor
from weather_assets.keys import raw_inputs_key, upstream_key
from weather_assets.maintenance import build_staging_cleanup_sensor
from weather_assets.partitions import settings_partitions
from weather_assets.products.assets import build_product_assets
from weather_assets.registry_health import build_registry_health
from weather_assets.settings import PlatformSettings, load_settings
from weather_assets.verification.factory import build_verification_assets

logger = logging.getLogger(__name__)


def recent_cycles_eager(settings: PlatformSettings) -> dg.AutomationCondition:
    """Eager automation for cycles up to ``automation_lookback_hours`` old.

    Plain ``eager()`` only acts on the latest time window, so a cycle that arrives late (or
    a late re-ingest) would never reach the models; older history is for backfills.
    """
    lookback = timedelta(hours=settings.automation_lookback_hours)
    return (
        dg.AutomationCondition.eager()
        .replace("in_latest_time_window", dg.AutomationCondition.in_latest_time_window(lookback))
        .with_label(f"eager_recent({lookback})")
    )


def build_definitions(settings: PlatformSettings) -> dg.Definitions:
    """All definitions of the code location for one deployment's settings."""
    partitions_def = settings_partitions(settings)
    upstream_spec, raw_inputs = build_ingest_assets(
        settings=settings, partitions_def=partitions_def
    )
    freshness_checks, freshness_sensor = build_freshness(settings=settings, raw_inputs=raw_inputs)
    # One set of assets per enabled registry entry: the registry is data, code reads it. A bad
    # entry is skipped and reported (log, UI), so one typo cannot take down the location.
    report = load_registry_report(settings.registry_dir)
    for problem in report.problems:
        logger.warning("model registry entry skipped: %s", problem)
    registry_spec, registry_check = build_registry_health(
        report, settings.registry_dir, owners=settings.owners()
    )
    assets: list = [upstream_spec, raw_inputs, registry_spec]
    specs = [spec for spec in report.specs if spec.enabled]
    assets += build_registry_assets(
        specs,
        partitions_def=partitions_def,
        raw_inputs_key=raw_inputs_key(settings.upstream_name),
        settings=settings,
        # A new cycle's raw inputs flow on to every model without anyone pressing a button.
        automation_condition=recent_cycles_eager(settings),
    )
    baseline: str | None = settings.scorecard_baseline
    if baseline not in {spec.name for spec in specs}:
        # A registry without the baseline model still loads; it just has no scorecard.
        warnings.warn(
            f"scorecard baseline {baseline!r} is not an enabled registry model: no scorecard",
            stacklevel=1,
        )
        baseline = None
    assets += build_verification_assets(
        specs,
        settings=settings,
        partitions_def=partitions_def,
        raw_inputs_key=raw_inputs_key(settings.upstream_name),
        baseline=baseline,
    )
    # Products (model_registry/products/ beside the models): promotion decisions and the
    # champion's forecast published per cycle. A product naming an unknown model is skipped.
    products = load_products_report(products_dir(settings.registry_dir), [s.name for s in specs])
    for problem in products.problems:
        logger.warning("product skipped: %s", problem)
    assets += build_product_assets(
        products.products, specs, settings=settings, partitions_def=partitions_def
    )
    sensors = [
        build_upstream_sensor(
            settings=settings,
            partitions_def=partitions_def,
            raw_inputs_key=raw_inputs_key(settings.upstream_name),
            upstream_key=upstream_key(settings.upstream_name),
        ),
        build_failure_sensor(settings.alert_webhook_url),
        build_staging_cleanup_sensor(),
        freshness_sensor,
        # Everything downstream of raw_inputs follows declaratively (AutomationCondition).
        dg.AutomationConditionSensorDefinition(
            "automation",
            description="Evaluates every asset's automation condition: a new cycle's raw "
            "inputs run each model's normalized input and forecast (cycles up to "
            f"{settings.automation_lookback_hours} h old; older ones are for backfills), "
            "verification once the first lead's analysis exists, and the scorecard after "
            "new scores.",
            target=dg.AssetSelection.all(),
            default_status=dg.DefaultSensorStatus.RUNNING,
            minimum_interval_seconds=30,
        ),
    ]
    # A replaced artifact (new sha256) turns its model's forecasts stale within a tick.
    sensors.append(build_artifact_sensor(specs, settings=settings))
    resources = {
        "storage": StorageResource(
            root=settings.storage_root,
            endpoint_url=settings.storage_endpoint_url,
            timeout_seconds=settings.storage_timeout_seconds,
        ),
        "upstream": UpstreamSource(
            name=settings.upstream_name,
            kind=settings.upstream_kind,
            url=settings.upstream_url,
            endpoint_url=settings.upstream_endpoint_url,
            variables=list(settings.upstream_variables) if settings.upstream_variables else None,
            ensemble=settings.upstream_ensemble,
        ),
        "dask": DaskResource(scheduler_address=settings.dask_scheduler_address),
        # Models that bring their own container: a subprocess locally, a pod on Kubernetes.
        "pipes_client": pipes_client_for(settings),
    }
    return dg.Definitions(
        assets=assets,
        asset_checks=[*freshness_checks, registry_check],
        sensors=sensors,
        resources=resources,
        executor=executor_for(settings),
    )


# Every process that loads the location (CLI, run and step workers, code server) exits
# without Python's final collections over what it imported.
skip_final_collection()
defs = build_definitions(load_settings())
