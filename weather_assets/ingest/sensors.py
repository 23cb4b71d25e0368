"""The upstream sensor: notices complete new cycles and requests their ``raw_inputs``.

Each tick lists the source only after ``cursor.newest - lookback`` (a delimiter listing with
``StartAfter`` on S3), so its cost grows with new cycles and the look-back window, not with
the bucket's history. A cycle counts once it is complete: a zarr store whose consolidated
metadata exists, or a file whose size and mtime did not change between two ticks. The run
key is ``<source>:<cycle>:<version>``, so re-evaluating a tick, or a cycle that appears
twice, never launches twice, while a cycle republished with new content (new version) is
ingested again. Late cycles (older than the newest) are picked up within the look-back.
The cursor is JSON: ``{"newest": key, "seen": {key: version}, "sizes": {key: version}}``.
"""

import json
from datetime import UTC, datetime, timedelta

import dagster as dg

from resources.sources import ListedSource, Source
from resources.upstream import UpstreamSource
from weather_assets import paths
from weather_assets.beta import quiet_beta
from weather_assets.ingest.assets import UPSTREAM_VERSION
from weather_assets.lineage import recorded_version, upstream_arrival
from weather_assets.partitions import (
    after_last_partition,
    on_cadence,
    partition_key_to_time,
    time_to_partition_key,
)
from weather_assets.settings import PlatformSettings


def _valid_key(
    key: str, partitions_def: dg.TimeWindowPartitionsDefinition, now: datetime
) -> str | None:
    """Why a cycle name is not a partition of ours (None when it is one)."""
    try:
        t = paths.parse_analysis_time(key)
    except ValueError:
        return f"{key!r} is not an analysis time (YYYY-MM-DDThhmmZ)"
    if time_to_partition_key(t) != key:
        return f"{key!r} is not in the canonical form {time_to_partition_key(t)!r}"
    window = (
        partitions_def.time_window_for_partition_key(key)
        if _on_cadence(key, partitions_def)
        else None
    )
    if window is None:
        return f"{key!r} is not on the partition cadence ({partitions_def.cron_schedule})"
    if t > now:
        return f"{key!r} lies in the future"
    if after_last_partition(partitions_def, t):
        return f"{key!r} is after the last partition (WXPLAT_PARTITIONS_END)"
    return None


def _on_cadence(key: str, partitions_def: dg.TimeWindowPartitionsDefinition) -> bool:
    try:
        t = partition_key_to_time(key)
    except ValueError:
        return False
    return (
        time_to_partition_key(t) == key  # the canonical spelling only
        and on_cadence(partitions_def, t)
        and t >= partitions_def.start.astimezone(UTC)
    )


def evaluate_upstream(
    source: Source | UpstreamSource,
    partitions_def: dg.TimeWindowPartitionsDefinition,
    cursor: dict,
    now: datetime,
    lookback: timedelta,
) -> tuple[list[tuple[str, str]], dict, list[str]]:
    """One tick: (new complete cycles as (key, version), new cursor, problems to report).

    A listed source is listed after the look-back; any other is probed partition by partition.
    """
    if isinstance(source, UpstreamSource):
        source = source.source()
    newest = cursor.get("newest")
    seen: dict[str, str] = dict(cursor.get("seen", {}))
    sizes: dict[str, str] = dict(cursor.get("sizes", {}))
    start_after = None
    if newest:
        start_after = time_to_partition_key(partition_key_to_time(newest) - lookback)
    if isinstance(source, ListedSource):
        candidates = source.list_cycle_keys(start_after)
    else:
        first = partition_key_to_time(start_after) if start_after else partitions_def.start
        candidates = [
            k
            for k in partitions_def.get_partition_keys(current_time=now)
            if partition_key_to_time(k) > first or start_after is None
        ][-500:]
    problems, found = [], []
    for key in candidates:
        reason = _valid_key(key, partitions_def, now)
        if reason:
            if key not in seen:
                problems.append(f"skipped upstream entry {reason}")
                seen[key] = "invalid"
            continue
        version = source.cycle_version(key)
        if version is None or seen.get(key) == version:
            continue
        if not source.marks_complete and sizes.get(key) != version:
            sizes[key] = version  # a file still growing: wait for it to settle
            continue
        found.append((key, version))
        seen[key] = version
        sizes.pop(key, None)
    valid = [k for k, v in seen.items() if v != "invalid"]
    if valid:
        newest = max([newest, *valid] if newest else valid)
    if newest:
        horizon = time_to_partition_key(partition_key_to_time(newest) - 2 * lookback)
        seen = {k: v for k, v in seen.items() if k >= horizon}
        sizes = {k: v for k, v in sizes.items() if k >= horizon}
    return found, {"newest": newest, "seen": seen, "sizes": sizes}, problems


def ingested_versions(
    instance: dg.DagsterInstance, raw_inputs_key: dg.AssetKey, partitions: list[str]
) -> dict[str, str]:
    """The upstream version each partition's latest raw_inputs materialization was read from."""
    versions = {}
    for key in partitions:
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=raw_inputs_key, asset_partitions=[key]), limit=1
        ).records
        materialization = records[0].asset_materialization if records else None
        value = materialization.metadata.get(UPSTREAM_VERSION) if materialization else None
        if value is not None:
            versions[key] = str(value.value)
    return versions


def build_upstream_sensor(
    *,
    settings: PlatformSettings,
    partitions_def: dg.TimeWindowPartitionsDefinition,
    raw_inputs_key: dg.AssetKey,
    upstream_key: dg.AssetKey,
    lookback: timedelta = timedelta(days=2),
    interval_seconds: int = 30,
) -> dg.SensorDefinition:
    """A sensor for the configured source: observe upstream, request raw_inputs partitions."""

    with quiet_beta():  # sensor owners are a Dagster beta

        @dg.sensor(
            name=f"upstream_{settings.upstream_name}_sensor",
            target=dg.AssetSelection.assets(raw_inputs_key),
            minimum_interval_seconds=interval_seconds,
            default_status=dg.DefaultSensorStatus.RUNNING,
            description=f"Lists {settings.upstream_url} for complete new cycles: reports each as "
            f"arrived on {upstream_key.to_user_string()} (with its version) and requests its "
            f"{raw_inputs_key.to_user_string()} partition unless that version is already ingested.",
            owners=settings.owners(),
        )
        def upstream_sensor(context: dg.SensorEvaluationContext, upstream: UpstreamSource):
            cursor = json.loads(context.cursor) if context.cursor else {}
            now = datetime.now(UTC)
            try:
                found, new_cursor, problems = evaluate_upstream(
                    upstream, partitions_def, cursor, now, lookback
                )
            except (OSError, ValueError) as exc:
                # Unreachable bucket, DNS, permissions: report, keep the cursor, retry next tick.
                context.log.error(f"listing {upstream.url} failed, will retry: {exc}")
                return dg.SkipReason(f"upstream {upstream.url} unreachable: {exc}")
            except Exception as exc:  # botocore's errors are not OSErrors
                if type(exc).__module__.startswith(("botocore", "aiobotocore", "urllib3")):
                    context.log.error(f"listing {upstream.url} failed, will retry: {exc}")
                    return dg.SkipReason(f"upstream {upstream.url} unreachable: {exc}")
                raise
            for problem in problems:
                context.log.warning(problem)
            # A cycle already ingested from this very version (by the demo, a backfill or an
            # earlier deployment of this sensor) is observed but not requested again.
            done = ingested_versions(context.instance, raw_inputs_key, [k for k, _ in found])
            runs = [
                dg.RunRequest(
                    run_key=f"{settings.upstream_name}:{key}:{version}",
                    partition_key=key,
                    tags={"wxplat/upstream_version": version},
                )
                for key, version in found
                if done.get(key) != version
            ]
            arrivals = [
                upstream_arrival(
                    upstream_key, key, version, upstream.cycle_url(partition_key_to_time(key))
                )
                for key, version in found
                if recorded_version(context.instance, upstream_key, key) != version
            ]
            return dg.SensorResult(
                run_requests=runs, asset_events=arrivals, cursor=json.dumps(new_cursor)
            )

    return upstream_sensor
