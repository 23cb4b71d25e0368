"""What every command shares: reading times, and the local Dagster instance."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import typer

from weather_assets import paths
from weather_assets.settings import PlatformSettings, load_settings

LOCAL_INSTANCE_YAML = """\
# Local Dagster instance of the platform (SQLite under this folder), written by `wxplat instance`.
telemetry:
  enabled: false
concurrency:
  pools:
    default_limit: 4
    granularity: op
# The default launcher plus a worker health check: run monitoring fails a run whose process
# was killed instead of leaving it STARTED.
run_launcher:
  module: resources.run_launcher
  class: LocalRunLauncher
run_monitoring:
  enabled: true
  poll_interval_seconds: 30
  max_resume_run_attempts: 0
  # A crashed run frees its pool slots (the gpu pool above all) after this long.
  free_slots_after_run_end_seconds: 300
# Storage retries and interrupted commits show in the run's log.
python_logs:
  managed_python_loggers:
    - wxplat.storage
"""


def parse_time(text: str) -> datetime:
    """An analysis time from ``YYYY-MM-DDThhmmZ`` or ISO 8601 (naive = UTC)."""
    try:
        return paths.parse_analysis_time(text)
    except ValueError:
        try:
            t = datetime.fromisoformat(text)
        except ValueError:
            raise typer.BadParameter(
                f"{text!r} is not a time: use YYYY-MM-DDThhmmZ or ISO 8601"
            ) from None
        return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def instance_home(settings: PlatformSettings) -> Path:
    """The local instance's folder: ``DAGSTER_HOME`` if set, else ``$WXPLAT_HOME/dagster``."""
    return Path(os.environ.get("DAGSTER_HOME") or settings.home / "dagster")


def local_instance():
    """The local Dagster instance (what `make dev` shows), with dagster.yaml and pool limits."""
    import dagster as dg

    from resources.execution import apply_pool_limits, pool_limits

    settings = load_settings()
    home = instance_home(settings)
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        (home / "dagster.yaml").write_text(LOCAL_INSTANCE_YAML)
    instance = dg.DagsterInstance.from_config(str(home))
    apply_pool_limits(instance, pool_limits(settings))
    return instance
