"""A Dagster instance on a real PostgreSQL server, configured like the Kubernetes deployment.

The server comes from Debian's packages (``apt-get install -y postgresql``): ``initdb`` into a
temporary directory, ``pg_ctl start`` on a free port of 127.0.0.1 with password authentication,
stopped at teardown. The instance's ``dagster.yaml`` takes its ``storage``, ``concurrency`` and
``run_monitoring`` sections verbatim from ``deploy/dagster.yaml`` (connection values from the
``DAGSTER_PG_*`` environment, as in the cluster). In CI (``CI=true``) a missing PostgreSQL is a
failure, elsewhere a skip.
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest
import yaml

from resources import execution
from tests.conftest import ROOT
from weather_assets.partitions import analysis_time_partitions

T0 = datetime(2026, 1, 1, 6, tzinfo=UTC)
KEY = "2026-01-01T0600Z"
START_TIMEOUT_S = 30


@dataclass(frozen=True)
class PostgresServer:
    """Connection values of the throwaway server."""

    host: str
    port: int
    user: str
    password: str
    database: str

    def env(self) -> dict[str, str]:
        """The ``DAGSTER_PG_*`` variables deploy/dagster.yaml reads."""
        return {
            "DAGSTER_PG_HOST": self.host,
            "DAGSTER_PG_PORT": str(self.port),
            "DAGSTER_PG_DB": self.database,
            "DAGSTER_PG_USERNAME": self.user,
            "DAGSTER_PG_PASSWORD": self.password,
        }


def _pg_bin(name: str) -> str | None:
    """A PostgreSQL server program: on PATH, or in Debian's versioned directory."""
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(
        glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    return versions[-1] if versions else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(cmd: list[str], as_postgres: bool) -> None:
    # PostgreSQL refuses to run as root: as root, run its programs as the `postgres` user.
    full = ["runuser", "-u", "postgres", "--", *cmd] if as_postgres else cmd
    out = subprocess.run(full, capture_output=True, text=True, timeout=START_TIMEOUT_S + 30)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({out.returncode}): {out.stderr[-2000:]}")


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server on 127.0.0.1 for this module; stopped and deleted afterwards."""
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not (initdb and pg_ctl):
        reason = "PostgreSQL server programs not found: apt-get install -y postgresql"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    as_root = os.geteuid() == 0
    # Under /tmp itself: pytest's tmp_path parents are private to root, postgres could not enter.
    base = Path(tempfile.mkdtemp(prefix="wxplat-pg-"))
    data, password = base / "data", secrets.token_urlsafe(18)
    (base / "pwfile").write_text(password)
    if as_root:
        shutil.chown(base, "postgres", "postgres")
        shutil.chown(base / "pwfile", "postgres", "postgres")
    port = _free_port()
    init = [initdb, "-D", str(data), "-U", "dagster", "--auth=scram-sha-256"]
    init += [f"--pwfile={base / 'pwfile'}", "--no-locale", "--encoding=UTF8"]
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {base}"
    start = [pg_ctl, "-D", str(data), "-l", str(base / "server.log"), "-w"]
    start += ["-t", str(START_TIMEOUT_S), "-o", options, "start"]
    try:
        _run(init, as_root)
        _run(start, as_root)
        yield PostgresServer("127.0.0.1", port, "dagster", password, "postgres")
    finally:
        # Also after a failed or timed-out start: a half-started server must not outlive us.
        if (data / "postmaster.pid").exists():
            _run([pg_ctl, "-D", str(data), "-m", "immediate", "-w", "-t", "30", "stop"], as_root)
        shutil.rmtree(base, ignore_errors=True)


def _instance_yaml() -> dict:
    """deploy/dagster.yaml's storage, pools and run monitoring; local run launching."""
    deployed = yaml.safe_load((ROOT / "deploy" / "dagster.yaml").read_text())
    return {k: deployed[k] for k in ("storage", "concurrency", "run_monitoring")}


@pytest.fixture
def pg_instance(postgres, wx_env, tmp_path, monkeypatch) -> Iterator[dg.DagsterInstance]:
    """A DagsterInstance from DAGSTER_HOME/dagster.yaml on the server, tables emptied first.

    Requests ``wx_env`` so that its DAGSTER_HOME is set first and replaced here.
    """
    for k, v in postgres.env().items():
        monkeypatch.setenv(k, v)
    home = tmp_path / "pg_dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(yaml.safe_dump(_instance_yaml()))
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as instance:
        instance.wipe()
        instance.event_log_storage.wipe()
        yield instance


def test_instance_uses_postgres_storage(pg_instance):
    from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage

    assert isinstance(pg_instance.run_storage, PostgresRunStorage)
    assert isinstance(pg_instance.event_log_storage, PostgresEventLogStorage)
    pools = pg_instance.get_concurrency_config().pool_config
    assert pools.default_pool_limit == execution.DEFAULT_POOL_LIMIT


def test_partitioned_materialization_is_stored_and_read_back(pg_instance, postgres):
    partitions = analysis_time_partitions("2026-01-01T0000Z", "0 */6 * * *")

    @dg.asset(partitions_def=partitions)
    def tiny(context) -> dg.MaterializeResult:  # unannotated: annotations are strings here
        return dg.MaterializeResult(metadata={"cycle": context.partition_key})

    result = dg.materialize([tiny], partition_key=KEY, instance=pg_instance)
    assert result.success
    # Read back through the instance...
    event = pg_instance.get_latest_materialization_event(tiny.key)
    assert event is not None and event.dagster_event.partition == KEY
    assert event.asset_materialization.metadata["cycle"].value == KEY
    assert pg_instance.get_materialized_partitions(tiny.key) == {KEY}
    assert pg_instance.get_run_by_id(result.run_id).is_success
    # ...and straight from the database, through a fresh instance (another process would).
    with dg.DagsterInstance.get() as other:
        records = other.fetch_materializations(tiny.key, limit=10).records
        assert [r.partition_key for r in records] == [KEY]


def test_raw_inputs_through_definitions_on_postgres(pg_instance, settings):
    """The real raw_inputs asset and its checks, on a simulated cycle, recorded in Postgres."""
    import definitions
    from weather_assets.ingest.simulate import write_simulated_cycles
    from weather_assets.keys import raw_inputs_key

    write_simulated_cycles(settings.upstream_url, T0, T0)
    defs = definitions.build_definitions(settings)
    job = defs.resolve_implicit_global_asset_job_def()
    key = raw_inputs_key(settings.upstream_name)
    result = job.execute_in_process(partition_key=KEY, instance=pg_instance, asset_selection=[key])
    assert result.success
    assert pg_instance.get_materialized_partitions(key) == {KEY}
    record = pg_instance.fetch_materializations(key, limit=1).records[0]
    assert record.asset_materialization.metadata["analysis_time"].value == KEY
    # The data checks' evaluations are in the database too (read back, not from the result).
    stored = pg_instance.event_log_storage.get_latest_asset_check_execution_by_key(
        [dg.AssetCheckKey(key, name) for name in ("schema", "no_missing_values", "physical_ranges")]
    )
    assert len(stored) == 3
    for execution_record in stored.values():
        assert execution_record.run_id == result.run_id
        assert execution_record.event.dagster_event.asset_check_evaluation_data.passed


def test_pool_limits_are_stored_in_postgres(pg_instance, settings):
    slots = execution.apply_pool_limits(pg_instance, execution.pool_limits(settings))
    assert slots == {"gpu": settings.gpu_pool_size, "cpu": execution.DEFAULT_POOL_LIMIT}
    with dg.DagsterInstance.get() as other:
        assert other.event_log_storage.get_concurrency_info("gpu").slot_count == (
            settings.gpu_pool_size
        )
    with pytest.raises(ValueError, match="limit must be >= 0"):
        execution.apply_pool_limits(pg_instance, {"gpu": -1})
