"""A real Prometheus scrapes `wxplat metrics serve` after a demo cycle.

The demo (``wxplat demo --cycles 2 --start 2026-01-01T0000Z``, persistence only) runs in a
temporary WXPLAT_HOME; the exporter runs on it as a subprocess on 127.0.0.1; Debian's
``prometheus`` (``make prometheus``) runs on 127.0.0.1 with its own storage, scraping the
exporter every 2 s and loading ``deploy/prometheus/wxplat-alerts.yml``. The test asks
Prometheus' HTTP API for the cycle-latency series of the demo's models and checks their
values against the demo's own clock; every dashboard and alert query is evaluated there too.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.e2e.webserver import ROOT, free_port, platform_env, wait_until
from weather_assets.partitions import partition_key_to_time

pytestmark = pytest.mark.slow

START = "2026-01-01T0000Z"
CYCLES = ("2026-01-01T0000Z", "2026-01-01T0600Z")
MODELS = ("persistence",)
DASHBOARD = ROOT / "deploy" / "grafana" / "wxplat-dashboard.json"
ALERTS = ROOT / "deploy" / "prometheus" / "wxplat-alerts.yml"
DEMO_TIMEOUT = 600  # seconds; the demo takes about 1 minute on two cores
START_TIMEOUT = 120  # the exporter loads the code location before it listens
SCRAPE_TIMEOUT = 60


@dataclass(frozen=True)
class Monitored:
    prometheus: str  # http://127.0.0.1:<port>
    exporter: str
    demo_started: float  # Unix seconds
    demo_finished: float
    logs: Path


def _stop(proc: subprocess.Popen, timeout: float = 20) -> None:
    """SIGTERM the process group, SIGKILL it if it is still there after ``timeout`` s."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=timeout)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=timeout)


def _start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with open(log, "w") as out:
        return subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, stopped as one
        )


def _get(url: str, timeout: float = 10) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read().decode()


def query(prometheus: str, expr: str) -> list[dict]:
    """The result of an instant query (``/api/v1/query``); raises on an error status."""
    answer = json.loads(
        _get(f"{prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
    )
    assert answer["status"] == "success", f"{expr}: {answer}"
    return answer["data"]["result"]


def _run_demo(env: dict[str, str], log: Path) -> None:
    command = [
        sys.executable,
        "-m",
        "weather_assets.cli",
        "demo",
        "--cycles",
        "2",
        "--start",
        START,
    ]
    with open(log, "w") as out:
        done = subprocess.run(
            command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=DEMO_TIMEOUT
        )
    assert done.returncode == 0, f"`wxplat demo` failed:\n{log.read_text()[-3000:]}"


@pytest.fixture(scope="module")
def monitored(tmp_path_factory) -> Iterator[Monitored]:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("Debian's prometheus is not installed (`make prometheus`, needs root)")
    from model_registry.registry import DEFAULT_REGISTRY_DIR

    root = tmp_path_factory.mktemp("prometheus_e2e")
    registry = root / "registry"
    registry.mkdir()
    shutil.copy(DEFAULT_REGISTRY_DIR / "persistence.yaml", registry)
    env = platform_env(root / "home", registry)
    started = time.time()
    _run_demo(env, root / "demo.log")
    finished = time.time()

    port = free_port()
    exporter_url = f"http://127.0.0.1:{port}"
    exporter_log = root / "exporter.log"
    exporter = _start(
        [
            sys.executable,
            "-m",
            "weather_assets.cli",
            "metrics",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--cache-seconds",
            "1",
        ],
        env,
        exporter_log,
    )
    prometheus = None
    try:
        wait_until(
            lambda: "wxplat_cycle_latency_seconds" in _get(f"{exporter_url}/metrics"),
            START_TIMEOUT,
            f"{exporter_url}/metrics",
            proc=exporter,
            log=exporter_log,
        )
        prom_port = free_port()
        prom_url = f"http://127.0.0.1:{prom_port}"
        config = {
            "global": {
                "scrape_interval": "2s",
                "scrape_timeout": "2s",
                "evaluation_interval": "2s",
            },
            "rule_files": [str(ALERTS)],
            "scrape_configs": [
                {"job_name": "wxplat", "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
            ],
        }
        config_file = root / "prometheus.yml"
        config_file.write_text(yaml.safe_dump(config))
        prom_log = root / "prometheus.log"
        prometheus = _start(
            [
                binary,
                f"--config.file={config_file}",
                f"--storage.tsdb.path={root / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
                "--log.level=warn",
            ],
            env,
            prom_log,
        )
        wait_until(
            lambda: _get(f"{prom_url}/-/ready").strip() != "",
            START_TIMEOUT,
            f"{prom_url}/-/ready",
            proc=prometheus,
            log=prom_log,
        )
        yield Monitored(prom_url, exporter_url, started, finished, root)
    finally:
        if prometheus is not None:
            _stop(prometheus)
        _stop(exporter)


def test_prometheus_scrapes_cycle_latency_of_every_demo_model(monitored):
    series = wait_until(
        lambda: query(monitored.prometheus, 'wxplat_cycle_latency_seconds{stage="forecast"}'),
        SCRAPE_TIMEOUT,
        "the forecast cycle-latency series in Prometheus",
        log=monitored.logs / "exporter.log",
    )
    assert query(monitored.prometheus, 'up{job="wxplat"}')[0]["value"][1] == "1"
    assert {s["metric"]["model"] for s in series} == set(MODELS)
    newest = partition_key_to_time(CYCLES[-1]).timestamp()
    for s in series:
        latency = float(s["value"][1])
        # the newest cycle's forecast landed while the demo ran, long after 2026-01-01
        assert (
            monitored.demo_started - newest - 1 <= latency <= monitored.demo_finished - newest + 1
        )
        assert s["metric"]["asset"] == f"forecast/{s['metric']['model']}"
    stages = {
        s["metric"]["stage"] for s in query(monitored.prometheus, "wxplat_cycle_latency_seconds")
    }
    assert stages == {"upstream", "raw_inputs", "normalized", "forecast", "verification"}
    for s in query(monitored.prometheus, "wxplat_cycle_latency_seconds"):
        assert float(s["value"][1]) > 0
    steps = query(monitored.prometheus, "wxplat_forecast_step_seconds_count")
    assert {s["metric"]["model"]: float(s["value"][1]) for s in steps} == {"persistence": 24.0}
    scores = query(monitored.prometheus, 'wxplat_verification_score{metric="rmse", lead="+6h"}')
    assert {s["metric"]["variable"] for s in scores} >= {"geopotential_500hPa", "2m_temperature"}


def test_dashboard_and_alert_queries_evaluate_in_prometheus(monitored):
    from tests.integration.test_monitoring import dashboard_queries

    wait_until(
        lambda: query(monitored.prometheus, "wxplat_exporter_refresh_seconds"),
        SCRAPE_TIMEOUT,
        "a scrape of the exporter",
    )
    dashboard = json.loads(DASHBOARD.read_text())
    empty = []
    for expr in dashboard_queries(dashboard):
        grafana_free = expr.replace("$__rate_interval", "1m").replace("$model", ".*")
        if not query(monitored.prometheus, grafana_free):
            empty.append(expr)
    # Counters over a day have one sample here, so their increase() is empty; every panel
    # on a gauge has data after one demo cycle.
    assert not [e for e in empty if "increase(" not in e and "== 1" not in e], empty

    def rules_evaluated():
        groups = json.loads(_get(f"{monitored.prometheus}/api/v1/rules"))["data"]["groups"]
        rules = {r["name"]: r for g in groups for r in g["rules"]}
        healthy = rules and all(r["health"] == "ok" for r in rules.values())
        # once evaluated on scraped data: the exporter is up, the demo's forecast is late
        # (its newest cycle is from 2026-01-01)
        scraped = healthy and rules["WxplatExporterDown"]["state"] == "inactive"
        return rules if scraped and rules["WxplatForecastLate"]["state"] != "inactive" else None

    rules = wait_until(rules_evaluated, SCRAPE_TIMEOUT, "the alert rules, evaluated on the data")
    assert len(rules) == len(yaml.safe_load(ALERTS.read_text())["groups"][0]["rules"])
    assert rules["WxplatForecastLate"]["alerts"][0]["labels"]["model"] == "persistence"
