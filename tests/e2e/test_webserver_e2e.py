"""End to end through real clients: `dagster dev` (webserver + daemon) on 127.0.0.1, GraphQL,
a moto S3 upstream bucket, the upstream sensor, and a backfill from the platform CLI."""

import os
import signal
import socket
import subprocess
import sys
import time
from datetime import timedelta

import dagster as dg
import pytest

from resources.storage import s3_options
from tests.conftest import ROOT
from weather_assets.backfill import graphql
from weather_assets.ingest.simulate import write_simulated_cycles
from weather_assets.partitions import (
    analysis_time_partitions,
    partition_key_to_time,
    time_to_partition_key,
)

pytestmark = pytest.mark.slow

WORKSPACE = """
query {
  workspaceOrError {
    ... on Workspace {
      locationEntries {
        name
        locationOrLoadError {
          __typename
          ... on PythonError { message }
          ... on RepositoryLocation {
            repositories {
              sensors { name sensorState { status } }
              assetNodes {
                assetKey { path }
                partitionDefinition { description }
                assetChecksOrError { ... on AssetChecks { checks { name } } }
              }
            }
          }
        }
      }
    }
  }
}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(predicate, timeout: float, what: str, proc=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"dagster dev exited while waiting for {what}")
        try:
            value = predicate()
        except OSError:
            value = None
        if value:
            return value
        time.sleep(2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _checks_passed(instance, asset_key: dg.AssetKey, names: set[str]) -> bool:
    from dagster._core.storage.asset_check_execution_record import (
        AssetCheckExecutionRecordStatus as Status,
    )

    storage = instance.event_log_storage
    for name in names:
        history = storage.get_asset_check_execution_history(
            dg.AssetCheckKey(asset_key, name), limit=1
        )
        if not history or history[0].status != Status.SUCCEEDED:
            return False
    return True


def test_cycle_dropped_in_bucket_runs_itself(tmp_path, s3_bucket, wx_env, persistence_registry):
    # The persistence model only: the FNO's training is tested elsewhere.
    bucket, endpoint = s3_bucket
    prefix = f"s3://{bucket}/nwp/simulator/analysis/w0_s-90_e358_n90/dx2deg_dy2deg"
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        **wx_env,
        "WXPLAT_UPSTREAM_URL": prefix,
        "WXPLAT_UPSTREAM_ENDPOINT_URL": endpoint,
        "DAGSTER_HOME": wx_env["DAGSTER_HOME"],
        "WXPLAT_REGISTRY_DIR": str(persistence_registry),
    }
    log = open(tmp_path / "dagster-dev.log", "w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dagster",
            "dev",
            "-w",
            "workspace.yaml",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        data = _wait(lambda: graphql(url, WORKSPACE, timeout=10), 180, "the webserver", proc)
        entry = data["workspaceOrError"]["locationEntries"][0]
        location = entry["locationOrLoadError"]
        assert location["__typename"] == "RepositoryLocation", location.get("message")
        repo = location["repositories"][0]
        nodes = {"/".join(n["assetKey"]["path"]): n for n in repo["assetNodes"]}
        assert {
            "upstream/simulator",
            "raw_inputs/simulator",
            "normalized/persistence",
            "forecast/persistence",
            "verification/persistence",
            "scorecard",
        } <= set(nodes)
        assert nodes["raw_inputs/simulator"]["partitionDefinition"]["description"]
        checks = {c["name"] for c in nodes["raw_inputs/simulator"]["assetChecksOrError"]["checks"]}
        assert {"schema", "no_missing_values", "physical_ranges"} <= checks
        sensors = {s["name"]: s["sensorState"]["status"] for s in repo["sensors"]}
        assert sensors["upstream_simulator_sensor"] == "RUNNING"
        assert sensors["automation"] == "RUNNING"
        assert sensors["run_failure_alerts"] == "RUNNING"
        assert sensors["raw_inputs_freshness_sensor"] == "RUNNING"

        # A provider drops the current cycle into the bucket: nobody presses a button.
        latest = analysis_time_partitions().get_last_partition_key()
        t = partition_key_to_time(latest)
        previous = time_to_partition_key(t - timedelta(hours=6))
        write_simulated_cycles(prefix, t, t, storage_options=s3_options(endpoint))
        instance = dg.DagsterInstance.from_config(wx_env["DAGSTER_HOME"])
        key = dg.AssetKey(["raw_inputs", "simulator"])
        _wait(
            lambda: latest in instance.get_materialized_partitions(key),
            240,
            "the sensor-launched raw_inputs run",
            proc,
        )
        raw_checks = {"schema", "no_missing_values", "physical_ranges"}
        _wait(lambda: _checks_passed(instance, key, raw_checks), 120, "the raw_inputs checks", proc)
        # Declarative automation carries the cycle on to the model's forecast and its checks.
        forecast = dg.AssetKey(["forecast", "persistence"])
        _wait(
            lambda: latest in instance.get_materialized_partitions(forecast),
            300,
            "the automated forecast run",
            proc,
        )
        _wait(
            lambda: _checks_passed(instance, forecast, {"schema", "no_nans", "physical_ranges"}),
            120,
            "the forecast checks",
            proc,
        )

        # Backfill an older cycle from the platform CLI through GraphQL and the daemon.
        write_simulated_cycles(
            prefix,
            t - timedelta(hours=6),
            t - timedelta(hours=6),
            storage_options=s3_options(endpoint),
        )
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "weather_assets.cli",
                "backfill",
                "--asset",
                "raw_inputs/simulator",
                "--start",
                previous,
                "--end",
                latest,
                "--url",
                url,
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr[-2000:]
        assert "1 partition(s)" in out.stdout  # the latest is up to date and is not redone
        _wait(
            lambda: previous in instance.get_materialized_partitions(key),
            240,
            "the backfill",
            proc,
        )
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
