"""`wxplat simulate` and `wxplat backfill` refuse bad input with one sentence, no traceback.

Each case runs the installed ``wxplat`` in a subprocess with a temporary WXPLAT_HOME and
DAGSTER_HOME (the ``wx_env`` fixture), so nothing of the project's own home is touched.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

WXPLAT = Path(sys.executable).with_name("wxplat")


def _wxplat(*args: str) -> tuple[int, str]:
    """Run ``wxplat``; (exit status, stdout+stderr with typer's error box flattened)."""
    env = {**os.environ, "COLUMNS": "400", "NO_COLOR": "1"}
    proc = subprocess.run(
        [str(WXPLAT), *args], env=env, capture_output=True, text=True, timeout=180
    )
    out = proc.stdout + proc.stderr
    return proc.returncode, " ".join(re.sub(r"[│╭╮╰╯─]", " ", out).split())


def _free_port() -> int:
    """A 127.0.0.1 port that nothing listens on (bound, read, closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _upstream_cycles(home: str) -> list[Path]:
    return sorted(Path(home).rglob("analysis.zarr"))


def test_backfill_without_webserver(wx_env, persistence_registry):
    url = f"http://127.0.0.1:{_free_port()}"
    rc, out = _wxplat(
        "backfill", "--start", "2026-01-01T0000Z", "--end", "2026-01-01T0600Z",
        "--model", "persistence", "--url", url,
    )  # fmt: skip
    assert rc != 0, out
    assert f"no Dagster webserver answers at {url}: start it with `make dev`" in out
    assert "Traceback" not in out


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        (
            "2026-01-01T0600Z",
            "2026-01-01T0000Z",
            "end 2026-01-01T0000Z is before start 2026-01-01T0600Z",
        ),
        (
            "2026-01-01T0300Z",
            "2026-01-01T0600Z",
            "start 2026-01-01T0300Z is off the partitions' cadence (0 */6 * * *): "
            "the nearest partitions are 2026-01-01T0000Z and 2026-01-01T0600Z",
        ),
        (
            "2025-12-31T0000Z",
            "2026-01-01T0600Z",
            "start 2025-12-31T0000Z is outside the partitions of normalized/persistence, "
            "which run from 2026-01-01T0000Z to ",
        ),
    ],
    ids=["end-before-start", "off-cadence", "outside"],
)
def test_backfill_bad_range(wx_env, persistence_registry, start, end, message):
    rc, out = _wxplat(
        "backfill", "--start", start, "--end", end, "--model", "persistence",
        "--url", f"http://127.0.0.1:{_free_port()}",
    )  # fmt: skip
    assert rc != 0, out
    assert message in out
    assert "already materialized" not in out
    assert "no Dagster webserver" not in out  # refused before any launch
    assert "Traceback" not in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--start", "2026-01-01T0600Z", "--end", "2026-01-01T0000Z"],
            "end 2026-01-01T0000Z is before start 2026-01-01T0600Z",
        ),
        (
            ["--start", "2026-01-01T0300Z", "--end", "2026-01-01T0300Z"],
            "start 2026-01-01T0300Z is off the partitions' cadence (0 */6 * * *): "
            "the nearest cycles are 2026-01-01T0000Z and 2026-01-01T0600Z",
        ),
        (
            ["--start", "2026-01-01T0000Z", "--end", "2026-01-01T1200Z", "--every-hours", "4"],
            "cycle 2026-01-01T0400Z, in steps of 4 h from 2026-01-01T0000Z, is off the "
            "partitions' cadence (0 */6 * * *)",
        ),
    ],
    ids=["end-before-start", "off-cadence", "step-off-cadence"],
)
def test_simulate_bad_range(wx_env, args, message):
    rc, out = _wxplat("simulate", *args)
    assert rc != 0, out
    assert message in out
    assert "Traceback" not in out
    assert _upstream_cycles(wx_env["WXPLAT_HOME"]) == []
