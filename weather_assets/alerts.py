"""Run-failure alerts: a structured log line, and a POST to a webhook when one is configured."""

import json
import urllib.request
from datetime import UTC, datetime

import dagster as dg


def failure_alert(run: dg.DagsterRun, error: str | None) -> dict:
    """The alert document for a failed run."""
    return {
        "kind": "run_failure",
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "run_id": run.run_id,
        "job": run.job_name,
        "partition": run.tags.get("dagster/partition"),
        "assets": sorted(k.to_user_string() for k in (run.asset_selection or [])),
        "error": error,
    }


def build_failure_sensor(webhook_url: str | None) -> dg.SensorDefinition:
    """A run-failure sensor writing a JSON alert to the log (and the webhook, if set)."""

    @dg.run_failure_sensor(
        name="run_failure_alerts",
        default_status=dg.DefaultSensorStatus.RUNNING,
        monitor_all_code_locations=False,
    )
    def run_failure_alerts(context: dg.RunFailureSensorContext) -> None:
        error = context.failure_event.message if context.failure_event else None
        alert = failure_alert(context.dagster_run, error)
        context.log.error("ALERT " + json.dumps(alert, sort_keys=True))
        if webhook_url:
            request = urllib.request.Request(
                webhook_url,
                data=json.dumps(alert).encode(),
                headers={"Content-Type": "application/json"},
                method="POST",
            )
            with urllib.request.urlopen(request, timeout=10) as response:
                response.read()

    return run_failure_alerts
