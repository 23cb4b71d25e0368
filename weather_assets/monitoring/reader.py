"""What the exporter watches, and reading it from the Dagster instance incrementally.

Every read is bounded: on its first refresh the reader takes only the newest ``window``
records of each asset key (and of each check's failures, and of failed runs); after that it
asks only for records after the newest storage id it has seen, at most ``page * max_pages``
per key and refresh (the rest follows on the next refresh). Nothing scans the event log.

From the records it keeps running totals (materializations, failures, bytes, forecast step
and device seconds, check failures, failed runs) and the newest of each asset: the newest
cycle's first materialization (cycle latency) and, for ``verification/<model>``, the headline
scores of the newest cycle verified at each lead, read from the scores table the
materialization points at (``path`` metadata; falling back to the headline numbers in the
metadata when the table cannot be read).

The newest upstream cycle comes from the source itself (listed after the newest ingested
cycle, or probed partition by partition for file templates), at most every
``upstream_seconds``: the sensor's own records would hide a sensor that stopped.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg
from dagster._core.event_api import RunStatusChangeRecordsFilter
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from model_registry.spec import ModelSpec
from resources.sources import ListedSource, Source
from weather_assets import paths
from weather_assets.partitions import partition_key_to_time, time_to_partition_key

logger = logging.getLogger("wxplat.monitoring")

# Kinds of asset watched, by the first part of their key (see weather_assets.keys).
STAGES = ("upstream", "raw_inputs", "normalized", "forecast", "verification")
MODEL_STAGES = ("normalized", "forecast", "verification")
WINDOW = 500  # records per key read on the first refresh
PAGE = 200  # records per query after that
MAX_PAGES = 10  # queries per key and refresh
KEEP_PARTITIONS = 64  # newest cycles remembered per asset (first materialization time)
MAX_TABLES = 24  # scores tables read per model and refresh
PROBES = 48  # version probes of an unlisted upstream source per look
MAX_FAILED_RUNS = 100  # failed runs whose failed steps are looked up per refresh


@dataclass(frozen=True)
class Watched:
    """One asset the exporter reads: its key, stage and model (empty for ingest)."""

    key: dg.AssetKey
    stage: str
    model: str = ""
    gpus: int = 0  # forecast: GPUs its step holds (registry ``runtime.gpu``)

    @property
    def asset(self) -> str:
        return self.key.to_user_string()

    @property
    def labels(self) -> tuple[str, str, str]:
        return (self.stage, self.asset, self.model)


@dataclass(frozen=True)
class Targets:
    """Everything the exporter watches in one deployment."""

    assets: tuple[Watched, ...]
    checks: tuple[dg.AssetCheckKey, ...] = ()
    source_name: str = ""
    source: Source | None = None  # the upstream source (None: no sensor-lag metrics)
    partitions_def: dg.TimeWindowPartitionsDefinition | None = None
    storage_options: dict[str, Any] = field(default_factory=dict)  # to read scores tables


def targets_from_definitions(defs: dg.Definitions, specs: Sequence[ModelSpec]) -> Targets:
    """The assets, checks and upstream source of a code location's definitions.

    ``specs``: the registry entries (their ``runtime.gpu`` gives the GPU-seconds of a step).
    """
    graph = defs.resolve_asset_graph()
    gpus = {spec.name: spec.runtime.gpu for spec in specs}
    watched = []
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        stage = key.path[0]
        if stage not in STAGES or len(key.path) != 2:
            continue
        model = key.path[1] if stage in MODEL_STAGES else ""
        watched.append(Watched(key, stage, model, gpus.get(model, 0) if stage == "forecast" else 0))
    upstream = defs.resources.get("upstream")
    storage = defs.resources.get("storage")
    partitions = next(
        (
            graph.get(w.key).partitions_def
            for w in watched
            if w.stage == "raw_inputs" and graph.get(w.key).partitions_def is not None
        ),
        None,
    )
    return Targets(
        assets=tuple(watched),
        checks=tuple(sorted(graph.asset_check_keys, key=lambda k: k.to_user_string())),
        source_name=getattr(upstream, "name", ""),
        source=upstream.source() if upstream is not None else None,
        partitions_def=partitions,
        storage_options=dict(storage.storage().storage_options or {}) if storage else {},
    )


# ---------------------------------------------------------------------------------------------
# what is kept per asset


@dataclass
class AssetState:
    """Totals and newest values of one watched asset."""

    watched: Watched
    cursor: int | None = None  # newest storage id of a materialization read
    first_seen: dict[str, float] = field(default_factory=dict)  # cycle -> first materialization
    last_timestamp: float | None = None
    materializations: int = 0
    failures: int = 0  # failed steps of failed runs
    bytes_written: float = 0.0
    step_count: int = 0
    step_sum: float = 0.0
    wall_count: int = 0
    wall_sum: float = 0.0
    last_step: tuple[int, float] | None = None  # (storage id, mean seconds per step)
    device_seconds: dict[str, float] = field(default_factory=lambda: {"gpu": 0.0, "cpu": 0.0})
    # (metric, variable, lead, units) -> (cycle, value): the newest cycle scored at that lead
    scores: dict[tuple[str, str, str, str], tuple[str, float]] = field(default_factory=dict)

    def newest_cycle(self) -> tuple[str, float] | None:
        """(cycle, seconds from its analysis time to its first materialization)."""
        if not self.first_seen:
            return None
        cycle = max(self.first_seen)  # keys sort in time order
        return cycle, self.first_seen[cycle] - analysis_timestamp(cycle)


@dataclass
class CheckState:
    """Failures of one asset check."""

    cursor: int | None = None  # newest failed execution id read
    failures: dict[str, int] = field(default_factory=dict)  # severity -> count
    failing: bool | None = None


@dataclass
class UpstreamState:
    """The last look at the upstream source."""

    newest: str | None = None
    up: bool | None = None
    looked_at: float | None = None


@dataclass
class Snapshot:
    """What one refresh found: everything the collector exposes."""

    assets: list[AssetState]
    checks: dict[dg.AssetCheckKey, CheckState]
    upstream: UpstreamState
    source_name: str
    runs_failed: int
    runs_in_progress: dict[str, int]
    errors: dict[str, int]
    refresh_seconds: float


def analysis_timestamp(cycle: str) -> float:
    """Unix seconds of a cycle's analysis time (its partition key)."""
    return partition_key_to_time(cycle).timestamp()


def _value(metadata: dict, *names: str) -> Any:
    for name in names:
        if name in metadata:
            return metadata[name].value
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


# ---------------------------------------------------------------------------------------------
# the reader


class PlatformReader:
    """Reads the instance incrementally into :class:`Snapshot`\\ s (thread-safe)."""

    def __init__(
        self,
        instance: dg.DagsterInstance,
        targets: Targets,
        *,
        window: int = WINDOW,
        upstream_seconds: float = 60.0,
        clock: Callable[[], float] | None = None,
    ):
        self.instance = instance
        self.targets = targets
        self.window = window
        self.upstream_seconds = upstream_seconds
        self.clock = clock or time.time
        self._lock = threading.Lock()
        self._assets = {w.key: AssetState(w) for w in targets.assets}
        self._checks = {k: CheckState() for k in targets.checks}
        self._upstream = UpstreamState()
        self._runs_cursor: int | None = None
        self._runs_failed = 0
        self._errors: dict[str, int] = {"upstream": 0, "scores": 0}

    def refresh(self) -> Snapshot:
        """Read what is new in the instance (and look at upstream when due)."""
        with self._lock:
            started = self.clock()
            for state in self._assets.values():
                self._read_materializations(state)
            self._read_checks()
            self._read_runs()
            in_progress = {
                status.value.lower(): self.instance.get_runs_count(dg.RunsFilter(statuses=[status]))
                for status in (dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.STARTED)
            }
            self._look_upstream(started)
            return Snapshot(
                assets=list(self._assets.values()),
                checks=dict(self._checks),
                upstream=self._upstream,
                source_name=self.targets.source_name,
                runs_failed=self._runs_failed,
                runs_in_progress=in_progress,
                errors=dict(self._errors),
                refresh_seconds=self.clock() - started,
            )

    # -- materializations ------------------------------------------------------------------

    def _records(self, fetch: Callable, key: dg.AssetKey, cursor: int | None):
        """New records of ``fetch`` for ``key`` in storage order, and the new cursor."""
        if cursor is None:  # first look: the newest `window` records only
            result = fetch(key, limit=self.window)
            records = list(reversed(result.records))
            return records, max((r.storage_id for r in records), default=0)
        records = []
        for _ in range(MAX_PAGES):
            result = fetch(
                dg.AssetRecordsFilter(asset_key=key, after_storage_id=cursor),
                limit=PAGE,
                ascending=True,
            )
            records += result.records
            if result.records:
                cursor = result.records[-1].storage_id
            if not result.has_more:
                break
        return records, cursor

    def _read_materializations(self, state: AssetState) -> None:
        records, state.cursor = self._records(
            self.instance.fetch_materializations, state.watched.key, state.cursor
        )
        for record in records:
            self._add_materialization(state, record)
        if state.watched.stage == "verification" and records:
            self._read_scores(state, records)
        if len(state.first_seen) > KEEP_PARTITIONS:
            for cycle in sorted(state.first_seen)[:-KEEP_PARTITIONS]:
                del state.first_seen[cycle]

    def _add_materialization(self, state: AssetState, record) -> None:
        metadata = record.asset_materialization.metadata
        state.materializations += 1
        state.last_timestamp = max(state.last_timestamp or 0.0, record.timestamp)
        cycle = record.partition_key
        if cycle and _is_cycle(cycle):
            state.first_seen[cycle] = min(state.first_seen.get(cycle, math.inf), record.timestamp)
        nbytes = _number(_value(metadata, "bytes_written", "bytes"))
        if nbytes is not None:
            state.bytes_written += nbytes
        if state.watched.stage != "forecast":
            return
        wall = _number(_value(metadata, "wall_seconds"))
        if wall is None:  # kept: the same inputs were already forecast, nothing ran
            return
        state.wall_count += 1
        state.wall_sum += wall
        steps = _value(metadata, "step_seconds")
        steps = [s for s in (_number(x) for x in steps or []) if s is not None]
        if steps:
            state.step_count += len(steps)
            state.step_sum += sum(steps)
            state.last_step = (record.storage_id, sum(steps) / len(steps))
        # Measured by the step (``resources.cost``) where it says so; else estimated.
        gpu_seconds = _number(_value(metadata, "gpu_seconds"))
        cpu_seconds = _number(_value(metadata, "cpu_seconds"))
        device = str(_value(metadata, "device") or "")
        gpus = state.watched.gpus
        on_gpu = device.startswith("cuda") or (not device and gpus > 0)
        if gpu_seconds is not None:
            state.device_seconds["gpu"] += gpu_seconds
        elif cpu_seconds is not None:
            state.device_seconds["cpu"] += cpu_seconds
        elif on_gpu:
            # In-process runs use one device; pods hold the GPUs of their registry entry.
            state.device_seconds["gpu"] += wall * (max(gpus, 1) if not device else 1)
        else:
            state.device_seconds["cpu"] += wall

    # -- verification scores ---------------------------------------------------------------

    def _read_scores(self, state: AssetState, records: Sequence) -> None:
        latest: dict[str, Any] = {}
        for record in records:  # storage order: the last of a cycle is its latest
            if record.partition_key and _is_cycle(record.partition_key):
                latest[record.partition_key] = record
        newest_first = sorted(latest, reverse=True)[:MAX_TABLES]
        for cycle in newest_first:
            metadata = latest[cycle].asset_materialization.metadata
            rows = self._score_rows(metadata, state.watched.model)
            for row_key, value in rows:
                known = state.scores.get(row_key)
                if known is None or cycle >= known[0]:
                    state.scores[row_key] = (cycle, value)
            if _value(metadata, "complete") is True:
                break  # every lead scored: older cycles only repeat these leads

    def _score_rows(self, metadata: dict, model: str) -> list[tuple[tuple, float]]:
        """Headline rows ((metric, variable, lead, units), value) of one verification."""
        from weather_assets.verification.scores import (
            HEADLINES,
            feature_label,
            format_lead,
            global_rows,
            score_units,
        )

        url = _value(metadata, "path")
        if url:
            try:
                table = _read_table(str(url), self.targets.storage_options)
            except (OSError, ValueError) as exc:
                self._errors["scores"] += 1
                logger.warning(f"scores table of {model} at {url} unreadable: {exc}")
            else:
                wanted = set(HEADLINES)
                out = []
                # The gauges are global scores (the table also holds each region's).
                for row in global_rows(table).itertuples(index=False):
                    value = _number(float(row.value))
                    if (row.metric, row.variable, int(row.level)) not in wanted or value is None:
                        continue
                    key = (
                        row.metric,
                        feature_label(row.variable, int(row.level)),
                        format_lead(row.lead_time),
                        score_units(row.metric, row.variable),
                    )
                    out.append((key, value))
                return out
        return [
            (key, float(metadata[label].value))
            for label, key in _headline_labels().items()
            if label in metadata and _number(metadata[label].value) is not None
        ]

    # -- checks, runs ----------------------------------------------------------------------

    def _read_checks(self) -> None:
        if not self._checks:
            return
        storage = self.instance.event_log_storage
        failed = {AssetCheckExecutionRecordStatus.FAILED}
        for key, state in self._checks.items():
            new = []
            before = None
            for _ in range(MAX_PAGES):
                limit = self.window if state.cursor is None else PAGE
                page = storage.get_asset_check_execution_history(
                    key, limit=limit, cursor=before, status=failed
                )
                fresh = [r for r in page if state.cursor is None or r.id > state.cursor]
                new += fresh
                if state.cursor is None or len(fresh) < len(page) or len(page) < limit:
                    break
                before = page[-1].id
            for record in new:
                severity = _severity(record)
                state.failures[severity] = state.failures.get(severity, 0) + 1
            state.cursor = max([state.cursor or 0, *(r.id for r in new)])
        latest = storage.get_latest_asset_check_execution_by_key(list(self._checks))
        for key, record in latest.items():
            if record.status == AssetCheckExecutionRecordStatus.FAILED:
                self._checks[key].failing = True
            elif record.status == AssetCheckExecutionRecordStatus.SUCCEEDED:
                self._checks[key].failing = False

    def _read_runs(self) -> None:
        """Failed runs, and which watched asset's step failed in each."""
        failure = dg.DagsterEventType.RUN_FAILURE
        if self._runs_cursor is None:  # first look: the newest `window` failures
            result = self.instance.fetch_run_status_changes(failure, limit=self.window)
            records = list(reversed(result.records))
            self._runs_cursor = max((r.storage_id for r in records), default=0)
        else:
            records = []
            for _ in range(MAX_PAGES):
                result = self.instance.fetch_run_status_changes(
                    RunStatusChangeRecordsFilter(
                        event_type=failure, after_storage_id=self._runs_cursor
                    ),
                    limit=PAGE,
                    ascending=True,
                )
                records += result.records
                if result.records:
                    self._runs_cursor = result.records[-1].storage_id
                if not result.has_more:
                    break
        self._runs_failed += len(records)
        by_step = {s.watched.key.to_python_identifier(): s for s in self._assets.values()}
        # One query per failed run (its STEP_FAILURE events), for the newest ones only.
        for record in records[-MAX_FAILED_RUNS:]:
            steps = self.instance.all_logs(
                record.event_log_entry.run_id, of_type=dg.DagsterEventType.STEP_FAILURE
            )
            for event in steps:
                state = by_step.get(event.step_key or "")
                if state is not None:
                    state.failures += 1

    # -- upstream --------------------------------------------------------------------------

    def _look_upstream(self, now: float) -> None:
        source = self.targets.source
        up = self._upstream
        if source is None or self.targets.partitions_def is None:
            return
        if up.looked_at is not None and now - up.looked_at < self.upstream_seconds:
            return
        up.looked_at = now
        ingested = self._newest(stage="raw_inputs")
        try:
            found = newest_upstream_cycle(
                source,
                self.targets.partitions_def,
                after=ingested,
                now=datetime.fromtimestamp(now, UTC),
            )
        except Exception as exc:
            # Unreachable bucket, DNS, permissions (botocore's errors are not OSErrors):
            # reported as wxplat_upstream_up 0 and an error; anything else is a bug.
            client_error = type(exc).__module__.startswith(("botocore", "aiobotocore", "urllib3"))
            if not isinstance(exc, OSError | ValueError) and not client_error:
                raise
            self._errors["upstream"] += 1
            up.up = False
            logger.warning(f"upstream {self.targets.source_name} could not be looked at: {exc}")
            return
        up.up = True
        recorded = self._newest(stage="upstream")
        up.newest = max([k for k in (found, ingested, recorded, up.newest) if k], default=None)

    def _newest(self, stage: str) -> str | None:
        cycles = [
            max(s.first_seen)
            for s in self._assets.values()
            if s.watched.stage == stage and s.first_seen
        ]
        return max(cycles, default=None)


def newest_upstream_cycle(
    source: Source,
    partitions_def: dg.TimeWindowPartitionsDefinition,
    *,
    after: str | None,
    now: datetime,
) -> str | None:
    """The newest complete cycle of ``source`` later than ``after`` (None: none is).

    A listed source is listed after ``after`` (or after two days ago when nothing is
    ingested yet); a file template is probed on the partitions' cadence. Cycles are tried
    newest first, so a complete one ends the look after one version probe.
    """
    start = after or time_to_partition_key(now - timedelta(days=2))
    if isinstance(source, ListedSource):
        candidates = [k for k in source.list_cycle_keys(start) if _is_cycle(k)]
    else:
        keys = partitions_def.get_partition_keys(current_time=now)
        candidates = [k for k in keys if k > start][-PROBES:]
    for key in sorted(candidates, reverse=True)[:PROBES]:
        if partition_key_to_time(key) > now:
            continue
        if source.cycle_version(key) is not None:
            return key
    return None


def _is_cycle(key: str) -> bool:
    try:
        paths.parse_analysis_time(key)
    except ValueError:
        return False
    return True


def _severity(record) -> str:
    event = record.event.dagster_event if record.event is not None else None
    evaluation = getattr(event, "event_specific_data", None)
    severity = getattr(evaluation, "severity", None)
    return str(getattr(severity, "value", severity or "ERROR"))


def _read_table(url: str, storage_options: dict[str, Any]):
    from weather_assets.verification.scores import read_tables

    return read_tables([url], storage_options if url.startswith("s3://") else None)


_HEADLINE_LABELS: dict[str, tuple[str, str, str, str]] = {}


def _headline_labels() -> dict[str, tuple[str, str, str, str]]:
    """Metadata label of each headline score -> (metric, variable, lead, units)."""
    if not _HEADLINE_LABELS:
        from weather_assets.verification.report import headline_label
        from weather_assets.verification.scores import (
            HEADLINE_LEADS,
            HEADLINES,
            feature_label,
            format_lead,
            score_units,
        )

        for metric, variable, level in HEADLINES:
            for lead in HEADLINE_LEADS:
                _HEADLINE_LABELS[headline_label(metric, variable, level, lead)] = (
                    metric,
                    feature_label(variable, level),
                    format_lead(lead),
                    score_units(metric, variable),
                )
    return _HEADLINE_LABELS


def asset_states(snapshot: Snapshot, stage: str | None = None) -> Iterable[AssetState]:
    """The snapshot's asset states, of one stage if given."""
    return (s for s in snapshot.assets if stage is None or s.watched.stage == stage)
