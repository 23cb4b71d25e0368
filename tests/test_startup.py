"""Loading the code location imports no heavy library that only some steps use.

Every step process and every Kubernetes pod imports ``definitions`` before it runs its step,
so torch (the forecast), neuraloperator (building a model), dask.array (laying out a
forecast store), matplotlib (pictures) and scipy are imported inside the functions that use
them, never at load. Checked in a fresh interpreter (this test process has imported them all
already); the time it takes is ``benchmarks/bench_startup.py``'s business, not a test's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import ROOT

STEP_ONLY = ("torch", "neuralop", "torch_harmonics", "dask.array", "matplotlib", "scipy")
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
