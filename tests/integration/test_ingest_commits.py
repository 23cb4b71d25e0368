"""Ingest that loses nothing: a republished cycle with missing values, and a killed run of a
10-member ensemble, against real ERA5 GRIB files and a persistent Dagster instance."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import eccodes
import pytest
from dagster._daemon.monitoring.run_monitoring import monitor_started_run

from resources.layout import open_raw_inputs
from resources.storage import STAGING, Storage
from tests.conftest import ROOT
from tests.grib_factory import era5_messages, grib_with_missing_values, write_messages
from weather_assets.cli.common import LOCAL_INSTANCE_YAML
from weather_assets.settings import load_settings

KEY = "2017-01-01T1200Z"
T = datetime(2017, 1, 1, 12, tzinfo=UTC)


@pytest.fixture
def era5_env(wx_env, tmp_path, monkeypatch) -> dict[str, str]:
    """Settings for an ERA5 GRIB upstream at ``tmp_path/upstream.grib``."""
    env = {
        "WXPLAT_UPSTREAM_KIND": "grib",
        "WXPLAT_UPSTREAM_URL": str(tmp_path / "upstream.grib"),
        "WXPLAT_UPSTREAM_NAME": "era5",
        "WXPLAT_PARTITIONS_START": "2017-01-01T0000Z",
        "WXPLAT_PARTITIONS_CRON": "0 */12 * * *",
        "WXPLAT_DOMAIN": "w-30_s30_e60_n72",
        "WXPLAT_RESOLUTION": "dx3deg_dy3deg",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return {**wx_env, **env}


def _materialize(settings, instance=None):
    import definitions

    defs = definitions.build_definitions(settings)
    return defs.resolve_implicit_global_asset_job_def().execute_in_process(
        partition_key=KEY,
        instance=instance or dg.DagsterInstance.ephemeral(),
        asset_selection=[dg.AssetKey(["raw_inputs", "era5"])],
        raise_on_error=False,
    )


def test_republished_cycle_with_missing_values_keeps_the_clean_one(era5_env, tmp_path):
    upstream = Path(era5_env["WXPLAT_UPSTREAM_URL"])
    write_messages(upstream, _offset_messages(0.0, numbers=(0,)))
    settings = load_settings()
    assert _materialize(settings).success
    storage = Storage(settings.storage_root)
    clean = open_raw_inputs(storage, settings, T).load()
    # The provider republishes the cycle; t at 850 hPa now has a bitmap of missing points.
    grib_with_missing_values(upstream, short_name="t", level=850, points=slice(0, 4000))
    result = _materialize(settings)
    assert not result.success
    evals = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert not evals["no_missing_values"].passed
    assert evals["no_missing_values"].description == "NaNs in: temperature@850"
    error = str(result.failure_data_for_node("raw_inputs__era5").error)
    assert str(upstream) in error and "temperature@850" in error
    assert open_raw_inputs(storage, settings, T).load().identical(clean)


def _offset_messages(offset: float, numbers=None) -> list[int]:
    """Clones of the cycle's ERA5 messages with ``offset`` added to every value."""
    out = []
    with era5_messages(numbers=numbers) as handles:
        for h in handles:
            clone = eccodes.codes_clone(h)
            eccodes.codes_set_values(clone, eccodes.codes_get_values(h) + offset)
            out.append(clone)
    return out


# A raw_inputs run in its own process on the persistent instance, slowed down to 0.5 s per
# staged member so that the test can kill it half-way through the cycle.
RUN = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, {root!r})
    import dagster as dg
    import resources.storage as storage

    write = storage.to_zarr

    def slow_write(*args, **kwargs):
        write(*args, **kwargs)
        time.sleep(0.5)

    storage.to_zarr = slow_write
    import definitions

    defs = definitions.build_definitions(definitions.load_settings())
    defs.resolve_implicit_global_asset_job_def().execute_in_process(
        partition_key={key!r},
        instance=dg.DagsterInstance.get(),
        asset_selection=[dg.AssetKey(["raw_inputs", "era5"])],
    )
    """
)


@pytest.mark.slow
def test_killed_ensemble_ingest_commits_no_member_and_its_run_is_failed(
    era5_env, tmp_path, monkeypatch
):
    monkeypatch.setenv("WXPLAT_UPSTREAM_ENSEMBLE", "true")
    home = Path(era5_env["DAGSTER_HOME"])
    (home / "dagster.yaml").write_text(LOCAL_INSTANCE_YAML)
    upstream = Path(era5_env["WXPLAT_UPSTREAM_URL"])
    settings = load_settings()
    storage = Storage(settings.storage_root)
    # The cycle as first ingested: 10 members.
    write_messages(upstream, _offset_messages(0.0))
    with dg.DagsterInstance.get() as instance:
        assert _materialize(settings, instance).success
    before = open_raw_inputs(storage, settings, T).load()
    assert before.sizes["member"] == 10
    # A corrected cycle is republished (every value +0.5) and ingested; the run is killed
    # once four of its ten members are staged.
    write_messages(upstream, _offset_messages(0.5))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", RUN.format(root=str(ROOT), key=KEY)],
        cwd=ROOT,
        env=env,
        start_new_session=True,
    )
    staging = Path(storage.path(STAGING))
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        staged = list(staging.glob("*/*/analysis.zarr/.zmetadata"))
        if len(staged) >= 4:
            os.killpg(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.05)
    assert proc.wait(timeout=60) == -signal.SIGKILL, "the run ended before it could be killed"
    # All members are still the first version: none of the new ones was committed.
    xr_after = open_raw_inputs(storage, settings, T).load()
    assert xr_after.identical(before)
    # The run is STARTED in the instance; run monitoring sees its process gone and fails it.
    with dg.DagsterInstance.get() as instance:
        (record,) = instance.get_run_records(
            filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])
        )
        health = instance.run_launcher.check_run_worker_health(record.dagster_run)
        assert health.status.value == "FAILED" and "is gone" in (health.msg or "")
        monitor_started_run(instance, None, record, logging.getLogger("test"))
        run = instance.get_run_by_id(record.dagster_run.run_id)
        assert run.status == dg.DagsterRunStatus.FAILURE
    # The dead run's staging is abandoned: the cleanup removes it; a rerun commits all 10.
    assert len(storage.clean_staging().removed) == 1
    with dg.DagsterInstance.get() as instance:
        assert _materialize(settings, instance).success
    after = open_raw_inputs(storage, settings, T).load()
    diff = (after - before)["temperature"]
    assert after.sizes["member"] == 10 and float(abs(diff - 0.5).max()) < 0.01
