"""Run-failure alerts carry the cause: the failed step and the first line of its error."""

import dagster as dg
import pytest

from weather_assets.alerts import failure_alert


@pytest.mark.parametrize(
    ("raise_it", "cause"),
    [
        (
            lambda: (_ for _ in ()).throw(
                FileNotFoundError(
                    "cycle 2026-01-01T0600Z has not arrived: no complete store at /up\nmore"
                )
            ),
            "FileNotFoundError: cycle 2026-01-01T0600Z has not arrived: no complete store at /up",
        ),
        (
            lambda: (_ for _ in ()).throw(dg.Failure(description="refused before commit: no_nans")),
            "refused before commit: no_nans",
        ),
    ],
)
def test_alert_names_the_failed_step_and_its_cause(raise_it, cause):
    @dg.asset(name="raw_inputs__simulator")
    def failing():
        raise_it()

    result = dg.materialize([failing], raise_on_error=False)
    assert not result.success
    failures = [e for e in result.all_events if e.is_step_failure]
    alert = failure_alert(result.dagster_run, "Steps failed: ['raw_inputs__simulator']", failures)
    assert alert["failed_step"] == "raw_inputs__simulator"
    assert alert["cause"] == cause


def test_alert_without_step_failures_has_no_cause():
    @dg.asset
    def fine():
        return 1

    result = dg.materialize([fine])
    alert = failure_alert(result.dagster_run, None)
    assert alert["cause"] is None and alert["failed_step"] is None


def test_a_webhook_that_does_not_answer_is_a_warning_not_an_error(caplog):
    """The alert stays in the log and what raised it stands when the webhook is down."""
    import logging
    import socket

    from weather_assets.alerts import send_alert

    with socket.socket() as s:  # a port on 127.0.0.1 where nothing listens
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = logging.getLogger("test-alerts")
    with caplog.at_level(logging.WARNING, logger="test-alerts"):
        line = send_alert(log, {"kind": "product_rollback"}, f"http://127.0.0.1:{port}/hook")
    assert line.startswith("ALERT ") and '"product_rollback"' in line
    messages = [r.getMessage() for r in caplog.records]
    assert line in messages
    assert any("did not take the alert" in m and str(port) in m for m in messages)
