"""The version story the UI tells, from upstream cycle and artifact to scorecard.

Data versions enter the graph at two roots, both recorded by sensors (and by the demo, with
the same functions, so a demo run and a later ``dagster dev`` agree):

- ``upstream/<source>`` partitions: the upstream cycle's version (its content tag), reported
  as a runless materialization of the external asset, so the UI shows which cycles exist;
- ``model_artifact/<model>``: the artifact's sha256, reported as an observation with the
  artifact's name, version and training provenance.

Everything below derives its version from its inputs (Dagster's own data-version lineage),
so a forecast is stale exactly when its inputs or its artifact changed:
:func:`stale_partitions` asks Dagster's stale-status resolver, the one the UI uses.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import dagster as dg

from model_registry.artifact import fetch_artifact, read_manifest
from model_registry.resolve import artifact_cache_dir
from model_registry.spec import ModelSpec
from weather_assets.keys import artifact_key
from weather_assets.settings import PlatformSettings

DATA_VERSION_TAG = "dagster/data_version"  # the tag Dagster reads a reported data version from
# Sensors that record the graph's root versions (plus ``upstream_<source>_sensor``).
ROOT_SENSORS = ("model_artifacts_sensor",)


def artifact_observation(spec: ModelSpec, settings: PlatformSettings) -> dg.AssetObservation:
    """An observation of ``model_artifact/<model>``: sha256 as data version, plus provenance.

    Raises the artifact's error (OSError / ValueError) when it is missing or tampered.
    """
    path, digest = fetch_artifact(
        spec.artifact_location, spec.artifact.sha256, artifact_cache_dir(settings), settings
    )
    manifest = read_manifest(path)
    provenance = manifest.provenance
    metadata: dict = {
        "sha256": digest,
        "pinned_in_registry": spec.artifact.sha256 is not None,
        "artifact_name": manifest.name,
        "artifact_version": manifest.version,
        "architecture": manifest.architecture.name,
        "path": dg.MetadataValue.path(str(path)),
        "bytes": path.stat().st_size,
        "created_utc": str(provenance.get("created_utc", "unknown")),
        "created_by": str(provenance.get("command", "unknown")),
        "host": str(provenance.get("host", "unknown")),
    }
    if provenance.get("training_data"):
        metadata["training_data"] = dg.MetadataValue.json(provenance["training_data"])
    if provenance.get("packages"):
        metadata["packages"] = dg.MetadataValue.json(provenance["packages"])
    return dg.AssetObservation(
        asset_key=artifact_key(spec.name), metadata=metadata, tags={DATA_VERSION_TAG: digest}
    )


def upstream_arrival(
    upstream_key: dg.AssetKey, partition: str, version: str, url: str
) -> dg.AssetMaterialization:
    """An upstream cycle that exists at the provider, as a materialization of the external asset.

    Reported, not computed: Dagster shows the partition as present (not Missing) and carries
    ``version`` as its data version into ``raw_inputs``.
    """
    return dg.AssetMaterialization(
        asset_key=upstream_key,
        partition=partition,
        metadata={"url": url, "version": version},
        tags={DATA_VERSION_TAG: version},
    )


def recorded_version(
    instance: dg.DagsterInstance, key: dg.AssetKey, partition: str | None = None
) -> str | None:
    """The data version last recorded for an asset (partition), observed or materialized."""
    record = instance.get_latest_data_version_record(key, partition_key=partition)
    if record is None:
        return None
    version = record.asset_event.tags.get(DATA_VERSION_TAG) if record.asset_event else None
    return version


def made_with_version(
    instance: dg.DagsterInstance, key: dg.AssetKey, partition: str | None
) -> str | None:
    """The artifact version recorded on a partition's latest materialization (None: none)."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(
            asset_key=key, asset_partitions=[partition] if partition is not None else None
        ),
        limit=1,
    ).records
    materialization = records[0].asset_materialization if records else None
    if materialization is None or "artifact_version" not in materialization.metadata:
        return None
    return str(materialization.metadata["artifact_version"].value)


def report(instance: dg.DagsterInstance, events: Iterable) -> int:
    """Record sensor-style asset events in the instance (what the daemon does with them)."""
    n = 0
    for event in events:
        instance.report_runless_asset_event(event)
        n += 1
    return n


def record_sensor_events(instance: dg.DagsterInstance, defs: dg.Definitions) -> int:
    """Evaluate the upstream and artifact sensors once and record the asset events they report.

    Their run requests are ignored (the caller materializes what it needs); the daemon's
    sensors then find these events already recorded and report nothing new. Returns how
    many events were recorded.
    """
    n = 0
    for sensor in defs.sensors or []:
        if sensor.name not in ROOT_SENSORS and not sensor.name.startswith("upstream_"):
            continue
        context = dg.build_sensor_context(instance=instance, resources=defs.resources)
        result = sensor(context)
        if isinstance(result, dg.SensorResult):
            n += report(instance, result.asset_events or [])
    return n


@dataclass(frozen=True)
class StalePartition:
    """A materialized partition whose inputs or code changed since it was made."""

    asset: dg.AssetKey
    partition: str | None
    causes: tuple[str, ...]
    made_with: str  # the artifact version/sha256 recorded on the materialization, if any

    def as_dict(self) -> dict:
        return {
            "asset": self.asset.to_user_string(),
            "partition": self.partition,
            "causes": list(self.causes),
            "made_with": self.made_with,
        }


def stale_partitions(
    instance: dg.DagsterInstance, asset_graph, keys: Sequence[dg.AssetKey]
) -> list[StalePartition]:
    """Every materialized partition of ``keys`` that Dagster counts as stale, with its causes.

    Uses Dagster's stale-status resolver, the same the UI's "Unsynced" marker comes from.
    """
    # Not exported by Dagster; built as its webserver and its own test utilities build it.
    from dagster._core.asset_graph_view.asset_graph_view import AssetGraphView, TemporalContext
    from dagster._core.definitions.data_version import (
        CachingStaleStatusResolver,
        StaleStatus,
    )
    from dagster._time import get_current_datetime

    view = AssetGraphView(
        temporal_context=TemporalContext(effective_dt=get_current_datetime(), last_event_id=None),
        instance=instance,
        asset_graph=asset_graph,
    )
    resolver = CachingStaleStatusResolver(instance, asset_graph, loading_context=view)
    out: list[StalePartition] = []
    for key in keys:
        node = asset_graph.get(key)
        partitions = (
            sorted(instance.get_materialized_partitions(key))
            if node.partitions_def is not None
            else [None]
        )
        for partition in partitions:
            if resolver.get_status(key, partition) != StaleStatus.STALE:
                continue
            # Root causes: where the change entered, e.g. "model_artifact/x has a new data
            # version" for a retrained artifact.
            causes = tuple(
                _describe(c.key)
                + f" {c.reason}"
                + (f" {_describe(c.dependency)}" if c.dependency is not None else "")
                for c in resolver.get_stale_root_causes(key, partition)
            )
            out.append(StalePartition(key, partition, causes, _made_with(instance, key, partition)))
    return out


def _describe(key) -> str:
    partition = f"[{key.partition_key}]" if key.partition_key else ""
    return key.asset_key.to_user_string() + partition


def _made_with(instance: dg.DagsterInstance, key: dg.AssetKey, partition: str | None) -> str:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(
            asset_key=key, asset_partitions=[partition] if partition is not None else None
        ),
        limit=1,
    ).records
    if not records or records[0].asset_materialization is None:
        return "unknown"
    meta = records[0].asset_materialization.metadata
    version = meta["artifact_version"].value if "artifact_version" in meta else "unknown"
    sha = meta["artifact_sha256"].value if "artifact_sha256" in meta else None
    return f"artifact {version}" + (f" (sha256 {str(sha)[:12]})" if sha and sha != "none" else "")
