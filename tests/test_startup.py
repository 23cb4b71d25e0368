"""Loading the code location imports no heavy library that only some steps use, and a run of
one step starts no second process.

Every step process and every Kubernetes pod imports ``definitions`` before it runs its step,
so torch (the forecast), neuraloperator (building a model), dask (computing checks and
scores, laying out a forecast store), matplotlib (pictures), scipy and hypothesis (which
pandera imports when it first validates) are imported inside the functions that use them,
never at load. Checked in a fresh interpreter (this test process has imported them all
already); the time it takes is ``benchmarks/bench_startup.py``'s business, not a test's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import dagster as dg

from resources.execution import local_executor
from tests.conftest import ROOT

STEP_ONLY = (
    "torch",
    "neuralop",
    "torch_harmonics",
    "dask",
    "matplotlib",
    "scipy",
    "pandera",
    "hypothesis",
)
PROBE = f"""
import json, sys
import definitions
definitions.defs.get_repository_def()  # what Dagster does when it loads the location
print(json.dumps([m for m in {STEP_ONLY!r} if m in sys.modules]))
"""


def test_loading_the_code_location_imports_no_step_only_library(wx_env):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-3000:]
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert loaded == [], f"imported when the code location loads: {loaded}"


@dg.asset
def first() -> None:
    """A step."""


@dg.asset(deps=[first])
def second() -> None:
    """Another step."""


def local_job() -> dg.JobDefinition:
    """Both assets under the local deployment's executor (reconstructable: module level)."""
    job = dg.define_asset_job("both", executor_def=local_executor)
    return dg.Definitions(assets=[first, second], jobs=[job]).resolve_job_def("both")


def test_a_run_of_one_step_runs_in_the_run_process_and_more_steps_in_subprocesses(tmp_path):
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        job = dg.reconstructable(local_job)
        with dg.execute_job(job, instance, asset_selection=[dg.AssetKey("first")]) as one:
            assert one.success
            one_pids = {e.pid for e in one.all_events if e.event_type_value == "STEP_START"}
        with dg.execute_job(job, instance) as both:
            assert both.success
            both_pids = {e.pid for e in both.all_events if e.event_type_value == "STEP_START"}
    assert one_pids == {os.getpid()}  # the only step ran in the run's own process
    assert len(both_pids) == 2 and os.getpid() not in both_pids  # a process per step
