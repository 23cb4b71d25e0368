"""The artifact sensor: records each model artifact's sha256 as its data version.

An observation with a new data version on ``model_artifact/<model>`` marks the model's
forecasts stale in the UI (and, with eager automation, re-runs the latest cycle). A sensor
rather than a scheduled observation job: a sensor reports only actual changes. What was
already recorded in the instance (by the demo, or an earlier deployment) is not reported
again, so a first start never makes anything look changed.
"""

import json
from collections.abc import Sequence

import dagster as dg

from model_registry.spec import ModelSpec
from weather_assets.beta import quiet_beta
from weather_assets.keys import artifact_key, forecast_key
from weather_assets.lineage import DATA_VERSION_TAG, artifact_observation, recorded_version
from weather_assets.settings import PlatformSettings


def build_artifact_sensor(
    specs: Sequence[ModelSpec], *, settings: PlatformSettings, interval_seconds: int = 60
) -> dg.SensorDefinition:
    """A sensor observing every registry artifact (sha256 = data version)."""
    with_artifacts = [s for s in specs if s.artifact is not None]
    watched = ", ".join(artifact_key(s.name).to_user_string() for s in with_artifacts) or "none"

    with quiet_beta():  # sensor owners are a Dagster beta

        @dg.sensor(
            name="model_artifacts_sensor",
            minimum_interval_seconds=interval_seconds,
            default_status=dg.DefaultSensorStatus.RUNNING,
            description=f"Hashes every model artifact ({watched}) and records a new sha256, with "
            "the artifact's version and training provenance, as an observation: the forecasts "
            "made with the previous artifact then show as stale (list them: wxplat stale).",
            # Observes these assets (and, through staleness, drives their forecasts); it launches
            # no runs of its own, so this target is what the UI shows, not a job.
            target=dg.AssetSelection.assets(*[forecast_key(s.name) for s in with_artifacts]),
            owners=settings.owners(),
        )
        def model_artifacts_sensor(context: dg.SensorEvaluationContext):
            known: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
            events = []
            for spec in with_artifacts:
                if spec.name not in known:  # first tick: what the instance already has counts
                    recorded = recorded_version(context.instance, artifact_key(spec.name))
                    if recorded:
                        known[spec.name] = recorded
                try:
                    observation = artifact_observation(spec, settings)
                except (OSError, ValueError) as exc:  # missing, unreachable or tampered
                    context.log.warning(f"artifact of {spec.name} not observed: {exc}")
                    continue
                digest = observation.tags[DATA_VERSION_TAG]
                if known.get(spec.name) == digest:
                    continue
                known[spec.name] = digest
                events.append(observation)
            return dg.SensorResult(asset_events=events, cursor=json.dumps(known, sort_keys=True))

    return model_artifacts_sensor
