"""The artifact sensor: records each model artifact's sha256 as its data version.

An observation with a new data version on ``model_artifact/<model>`` marks the model's
forecasts stale in the UI (and, with eager automation, re-runs the latest cycle). A sensor
rather than a scheduled observation job: Dagster 1.13 builds no step for observable source
assets in an asset job, and a sensor reports only actual changes.
"""

import json
from collections.abc import Sequence

import dagster as dg

from model_registry.artifact import fetch_artifact
from model_registry.resolve import artifact_cache_dir
from model_registry.spec import ModelSpec
from weather_assets.keys import artifact_key
from weather_assets.settings import PlatformSettings

DATA_VERSION_TAG = "dagster/data_version"


def build_artifact_sensor(
    specs: Sequence[ModelSpec], *, settings: PlatformSettings, interval_seconds: int = 60
) -> dg.SensorDefinition:
    """A sensor observing every registry artifact (sha256 = data version)."""
    with_artifacts = [s for s in specs if s.artifact is not None]

    @dg.sensor(
        name="model_artifacts_sensor",
        minimum_interval_seconds=interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Hashes every model artifact; a new sha256 marks its forecasts stale.",
    )
    def model_artifacts_sensor(context: dg.SensorEvaluationContext):
        known: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
        events = []
        for spec in with_artifacts:
            try:
                path, digest = fetch_artifact(
                    spec.artifact_location, spec.artifact.sha256, artifact_cache_dir(settings)
                )
            except (OSError, ValueError) as exc:  # missing, unreachable or tampered
                context.log.warning(f"artifact of {spec.name} not observed: {exc}")
                continue
            if known.get(spec.name) == digest:
                continue
            known[spec.name] = digest
            events.append(
                dg.AssetObservation(
                    asset_key=artifact_key(spec.name),
                    metadata={"sha256": digest, "path": dg.MetadataValue.path(str(path))},
                    tags={DATA_VERSION_TAG: digest},
                )
            )
        return dg.SensorResult(asset_events=events, cursor=json.dumps(known, sort_keys=True))

    return model_artifacts_sensor
