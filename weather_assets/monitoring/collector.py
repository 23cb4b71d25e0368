"""The Prometheus collector of the platform and the HTTP server of ``wxplat metrics serve``.

The collector computes on scrape: the first scrape after ``cache_seconds`` refreshes the
reader (new records of the instance, the upstream source when due) and builds every family of
:mod:`weather_assets.monitoring.catalog`; scrapes within ``cache_seconds`` get the same
families. An instance that cannot be read fails the scrape (Prometheus' ``up`` turns 0);
a source or scores table that cannot be read is reported by ``wxplat_upstream_up`` and
``wxplat_exporter_errors_total`` and the rest is still exposed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

from weather_assets.monitoring.catalog import BY_NAME
from weather_assets.monitoring.reader import (
    PlatformReader,
    Snapshot,
    analysis_timestamp,
    asset_states,
)


def _family(name: str):
    from prometheus_client.core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        SummaryMetricFamily,
    )

    metric = BY_NAME[name]
    kind = {
        "gauge": GaugeMetricFamily,
        "counter": CounterMetricFamily,
        "summary": SummaryMetricFamily,
    }[metric.type]
    return kind(metric.name, metric.help, labels=list(metric.labels))


def build_families(snapshot: Snapshot) -> list:
    """Every metric family of the catalog, from one refresh's snapshot."""
    fam = {name: _family(name) for name in BY_NAME}
    for state in snapshot.assets:
        labels = list(state.watched.labels)
        fam["wxplat_materializations"].add_metric(labels, state.materializations)
        fam["wxplat_step_failures"].add_metric(labels, state.failures)
        if state.watched.stage not in ("upstream", "verification"):
            fam["wxplat_bytes_written"].add_metric(labels, state.bytes_written)
        newest = state.newest_cycle()
        if newest is not None:
            cycle, latency = newest
            fam["wxplat_cycle_latency_seconds"].add_metric(labels, latency)
            fam["wxplat_cycle_newest_analysis_timestamp_seconds"].add_metric(
                labels, analysis_timestamp(cycle)
            )
        if state.last_timestamp is not None:
            fam["wxplat_last_materialization_timestamp_seconds"].add_metric(
                labels, state.last_timestamp
            )
    for state in asset_states(snapshot, "forecast"):
        model = [state.watched.model]
        fam["wxplat_forecast_step_seconds"].add_metric(model, state.step_count, state.step_sum)
        fam["wxplat_forecast_wall_seconds"].add_metric(model, state.wall_count, state.wall_sum)
        if state.last_step is not None:
            fam["wxplat_forecast_last_step_seconds"].add_metric(model, state.last_step[1])
        for device, seconds in sorted(state.device_seconds.items()):
            fam["wxplat_forecast_device_seconds"].add_metric([*model, device], seconds)
    for state in asset_states(snapshot, "verification"):
        for (metric, variable, lead, units), (_, value) in sorted(state.scores.items()):
            fam["wxplat_verification_score"].add_metric(
                [state.watched.model, metric, variable, lead, units], value
            )
    for key, check in snapshot.checks.items():
        asset, name = key.asset_key.to_user_string(), key.name
        for severity in sorted({"ERROR", *check.failures}):
            fam["wxplat_check_failures"].add_metric(
                [asset, name, severity], check.failures.get(severity, 0)
            )
        if check.failing is not None:
            fam["wxplat_check_failing"].add_metric([asset, name], float(check.failing))
    _upstream(fam, snapshot)
    fam["wxplat_runs_failed"].add_metric([], snapshot.runs_failed)
    for status, count in sorted(snapshot.runs_in_progress.items()):
        fam["wxplat_runs_in_progress"].add_metric([status], count)
    fam["wxplat_exporter_refresh_seconds"].add_metric([], snapshot.refresh_seconds)
    for part, count in sorted(snapshot.errors.items()):
        fam["wxplat_exporter_errors"].add_metric([part], count)
    return list(fam.values())


def _upstream(fam: dict, snapshot: Snapshot) -> None:
    up, source = snapshot.upstream, [snapshot.source_name]
    if up.up is None:  # no source configured, or not looked at yet
        return
    fam["wxplat_upstream_up"].add_metric(source, float(up.up))
    if up.newest is None:
        return
    newest = analysis_timestamp(up.newest)
    fam["wxplat_upstream_newest_cycle_timestamp_seconds"].add_metric(source, newest)
    ingested = [s.newest_cycle() for s in asset_states(snapshot, "raw_inputs")]
    ingested = [analysis_timestamp(c) for c, _ in filter(None, ingested)]
    if ingested:  # absent until the first cycle is ingested
        fam["wxplat_sensor_lag_seconds"].add_metric(source, max(0.0, newest - max(ingested)))


class PlatformCollector:
    """A ``prometheus_client`` collector over a :class:`PlatformReader`, cached briefly."""

    def __init__(
        self,
        reader: PlatformReader,
        *,
        cache_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.reader = reader
        self.cache_seconds = cache_seconds
        self.clock = clock
        self._lock = threading.Lock()
        self._families: list | None = None
        self._at = 0.0

    def collect(self) -> Iterator:
        with self._lock:
            if self._families is None or self.clock() - self._at >= self.cache_seconds:
                self._families = build_families(self.reader.refresh())
                self._at = self.clock()
            families = self._families
        yield from families


def make_registry(collector: PlatformCollector):
    """A registry with the platform's collector and the exporter's own process metrics.

    ``auto_describe`` is off, so registering does not read the instance; the first scrape does.
    """
    from prometheus_client import CollectorRegistry, ProcessCollector

    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    ProcessCollector(registry=registry)
    return registry


def serve(collector: PlatformCollector, *, host: str, port: int):
    """Serve ``/metrics`` on ``host:port`` in a daemon thread; returns (server, thread)."""
    from prometheus_client import start_http_server

    return start_http_server(port, addr=host, registry=make_registry(collector))
