"""Every metric the exporter exposes: the names dashboards and alert rules may use.

Counters count what the exporter has read since it started (plus the most recent records of
the instance at start, see :mod:`weather_assets.monitoring.reader`); use ``increase()`` /
``rate()`` on them, which handle the reset of an exporter restart. Gauges describe the newest
cycle, forecast or verification the instance holds.

Labels: ``stage`` is the kind of asset (``upstream``, ``raw_inputs``, ``normalized``,
``forecast``, ``verification``), ``asset`` its key (``forecast/fno-demo``), ``model`` the
registry model (empty for ``upstream`` and ``raw_inputs``), ``source`` the upstream source.
"""

from __future__ import annotations

from dataclasses import dataclass

PREFIX = "wxplat_"
ASSET_LABELS = ("stage", "asset", "model")


@dataclass(frozen=True)
class Metric:
    """One metric family: its name (counters without ``_total``), type, labels and help."""

    name: str
    type: str  # "gauge", "counter" or "summary"
    labels: tuple[str, ...]
    help: str

    @property
    def samples(self) -> tuple[str, ...]:
        """The sample names the exposition holds for this family."""
        if self.type == "counter":
            return (f"{self.name}_total",)
        if self.type == "summary":
            return (f"{self.name}_count", f"{self.name}_sum")
        return (self.name,)


METRICS: tuple[Metric, ...] = (
    # cycle latency: how long after its analysis time a cycle reached each stage
    Metric(
        "wxplat_cycle_latency_seconds",
        "gauge",
        ASSET_LABELS,
        "Seconds from the analysis time of the newest cycle of an asset to its first "
        "materialization (upstream: to the sensor recording its arrival).",
    ),
    Metric(
        "wxplat_cycle_newest_analysis_timestamp_seconds",
        "gauge",
        ASSET_LABELS,
        "Analysis time (Unix seconds) of the newest cycle materialized for an asset.",
    ),
    Metric(
        "wxplat_last_materialization_timestamp_seconds",
        "gauge",
        ASSET_LABELS,
        "When an asset was last materialized (Unix seconds), any cycle.",
    ),
    Metric(
        "wxplat_materializations",
        "counter",
        ASSET_LABELS,
        "Materializations of an asset (any cycle, backfills included).",
    ),
    Metric(
        "wxplat_step_failures",
        "counter",
        ASSET_LABELS,
        "Failed steps of an asset in failed runs (an error, or a cycle refused by its "
        "blocking checks).",
    ),
    Metric(
        "wxplat_bytes_written",
        "counter",
        ASSET_LABELS,
        "Bytes of the stores an asset committed (metadata 'bytes' or 'bytes_written').",
    ),
    # forecast steps
    Metric(
        "wxplat_forecast_step_seconds",
        "summary",
        ("model",),
        "Seconds per model step (one lead time, all members) of forecasts that ran.",
    ),
    Metric(
        "wxplat_forecast_last_step_seconds",
        "gauge",
        ("model",),
        "Mean seconds per model step of the newest forecast that ran.",
    ),
    Metric(
        "wxplat_forecast_wall_seconds",
        "summary",
        ("model",),
        "Wall seconds of a forecast step (rollout, checks, map), forecasts that ran.",
    ),
    Metric(
        "wxplat_forecast_device_seconds",
        "counter",
        ("model", "device"),
        "Device-seconds of forecast steps: the step's own gpu_seconds (device=gpu) or "
        "cpu_seconds (device=cpu, CPU time) where it recorded them, else wall seconds times "
        "the GPUs of the step, or wall seconds on the CPU.",
    ),
    # quality
    Metric(
        "wxplat_check_failures",
        "counter",
        ("asset", "check", "severity"),
        "Failed evaluations of an asset check (any cycle).",
    ),
    Metric(
        "wxplat_check_failing",
        "gauge",
        ("asset", "check"),
        "1 when the latest evaluation of an asset check failed, else 0.",
    ),
    Metric(
        "wxplat_verification_score",
        "gauge",
        ("model", "metric", "variable", "lead", "units"),
        "Headline verification score of a model at a lead time, from the newest cycle "
        "verified at that lead (scores table in the storage).",
    ),
    # the upstream source and the sensor
    Metric(
        "wxplat_upstream_newest_cycle_timestamp_seconds",
        "gauge",
        ("source",),
        "Analysis time (Unix seconds) of the newest complete cycle the upstream source holds.",
    ),
    Metric(
        "wxplat_sensor_lag_seconds",
        "gauge",
        ("source",),
        "Newest upstream cycle minus newest ingested cycle (raw_inputs), seconds; 0 when "
        "ingest is up to date.",
    ),
    Metric(
        "wxplat_upstream_up",
        "gauge",
        ("source",),
        "1 when the last look at the upstream source succeeded, else 0.",
    ),
    # runs
    Metric("wxplat_runs_failed", "counter", (), "Dagster runs that failed."),
    Metric(
        "wxplat_runs_in_progress",
        "gauge",
        ("status",),
        "Dagster runs queued or started now.",
    ),
    # the exporter itself
    Metric(
        "wxplat_exporter_refresh_seconds",
        "gauge",
        (),
        "Seconds the exporter's last refresh from the instance took.",
    ),
    Metric(
        "wxplat_exporter_errors",
        "counter",
        ("part",),
        "Errors of the exporter reading a part (upstream, scores) that it reported and "
        "skipped; an unreachable instance fails the scrape instead.",
    ),
)

BY_NAME: dict[str, Metric] = {m.name: m for m in METRICS}


def sample_names() -> set[str]:
    """Every sample name the exporter may expose (what a dashboard query may reference)."""
    return {s for m in METRICS for s in m.samples}
