"""Run-failure alerts: a structured log line, and a POST to a webhook when one is configured."""

import json
import urllib.request
from collections.abc import Sequence
from datetime import UTC, datetime

import dagster as dg


def failure_cause(step_failures: Sequence[dg.DagsterEvent]) -> dict | None:
    """The first failed step and the first line of what went wrong in it (the user's error,
    not Dagster's wrapper): what an operator needs in the alert itself."""
    for event in step_failures:
        data = event.step_failure_data
        if data is None:
            continue
        described = data.user_failure_data.description if data.user_failure_data else None
        error = data.error
        while error is not None and error.cause is not None:
            error = error.cause  # Dagster wraps the user's exception: report the cause
        text = described or (error.message if error is not None else "")
        first = next((line.strip() for line in text.splitlines() if line.strip()), "")
        return {"step": event.step_key, "message": first}
    return None


def failure_alert(
    run: dg.DagsterRun, error: str | None, step_failures: Sequence[dg.DagsterEvent] = ()
) -> dict:
    """The alert document for a failed run, with the cause of its first failed step."""
    cause = failure_cause(step_failures)
    return {
        "kind": "run_failure",
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "run_id": run.run_id,
        "job": run.job_name,
        "partition": run.tags.get("dagster/partition"),
        "assets": sorted(k.to_user_string() for k in (run.asset_selection or [])),
        "error": error,
        "failed_step": cause["step"] if cause else None,
        "cause": cause["message"] if cause else None,
    }


def build_failure_sensor(webhook_url: str | None) -> dg.SensorDefinition:
    """A run-failure sensor writing a JSON alert to the log (and the webhook, if set)."""

    @dg.run_failure_sensor(
        name="run_failure_alerts",
        description="On every failed run: one 'ALERT {json}' log line with the run, the "
        "partition, the failed step and the first line of its error"
        + (", also POSTed to the alert webhook." if webhook_url else "."),
        default_status=dg.DefaultSensorStatus.RUNNING,
        monitor_all_code_locations=False,
    )
    def run_failure_alerts(context: dg.RunFailureSensorContext) -> None:
        error = context.failure_event.message if context.failure_event else None
        alert = failure_alert(context.dagster_run, error, context.get_step_failure_events())
        send_alert(context.log, alert, webhook_url, level="error")

    return run_failure_alerts


def send_alert(log, alert: dict, webhook_url: str | None = None, *, level: str = "warning") -> str:
    """Write an ``ALERT {json}`` line to ``log`` (a logger or Dagster's context.log) at
    ``level`` and POST the document to the webhook when one is configured; returns the line.

    A webhook that does not answer is a warning in the same log, not an error: the alert is
    in the log either way, and what raised it (a published product, a decision) stands.
    """
    line = "ALERT " + json.dumps(alert, sort_keys=True, default=str)
    getattr(log, level)(line)
    if webhook_url:
        request = urllib.request.Request(
            webhook_url,
            data=json.dumps(alert, default=str).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                response.read()
        except OSError as exc:  # refused, timed out, HTTP error status (URLError, HTTPError)
            log.warning(f"alert webhook {webhook_url} did not take the alert: {exc}")
    return line
