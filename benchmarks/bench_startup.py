"""Start-up cost of the code location, against importing Dagster alone.

Every step process and every Kubernetes pod imports the code location before it runs one
line of the step, so whatever ``import definitions`` pulls in is paid per step. Each row is
a fresh Python process (no warm module cache in the interpreter), run N times interleaved
with the other rows, best of N:

- ``import dagster``: the plain-library baseline, the floor of any Dagster code location;
- ``import definitions``: the module import, which builds the ``Definitions``;
- ``resolve definitions``: the import plus ``defs.get_repository_def()``, what Dagster does
  when it loads the code location.

All run with ``WXPLAT_HOME`` (and ``DAGSTER_HOME``) in a temporary directory. ``import s`` is
timed inside the child around the statement, ``process s`` from outside (interpreter start
and exit included). The last column lists the heavy libraries in ``sys.modules`` afterwards:
they should appear only in the steps that use them (torch in the forecast, matplotlib in
the pictures), never at load.

    .venv/bin/python benchmarks/bench_startup.py [--repeat 7]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEAVY = (
    "torch",
    "neuralop",
    "torch_harmonics",
    "onnxruntime",
    "dask.array",
    "scipy",
    "matplotlib",
    "xarray",
    "pandas",
    "zarr",
)
CASES = {
    "import dagster": "import dagster",
    "import definitions": "import definitions",
    "resolve definitions": "import definitions; definitions.defs.get_repository_def()",
}
CHILD = """
import json, sys, time
t0 = time.perf_counter()
exec({statement!r})
seconds = time.perf_counter() - t0
print(json.dumps({{"seconds": seconds, "heavy": [m for m in {heavy!r} if m in sys.modules]}}))
"""


def run_case(statement: str, env: dict[str, str]) -> tuple[float, float, list[str]]:
    """(import seconds, process seconds, heavy modules loaded) of one fresh process."""
    code = CHILD.format(statement=statement, heavy=HEAVY)
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    process = time.perf_counter() - t0
    if out.returncode != 0:
        raise RuntimeError(f"{statement!r} failed:\n{out.stderr[-2000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return result["seconds"], process, result["heavy"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=7, help="fresh processes per row")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("WXPLAT_")}
        env.update(
            WXPLAT_HOME=str(Path(tmp) / "home"),
            DAGSTER_HOME=str(Path(tmp) / "dagster_home"),
            PYTHONPATH=str(ROOT),
        )
        Path(env["DAGSTER_HOME"]).mkdir()
        best: dict[str, list[float]] = {name: [float("inf")] * 2 for name in CASES}
        heavy: dict[str, list[str]] = {}
        for name, statement in CASES.items():  # warm the OS file cache, not timed
            heavy[name] = run_case(statement, env)[2]
        for _ in range(args.repeat):  # interleaved: drift on a shared machine hits every row
            for name, statement in CASES.items():
                seconds, process, _ = run_case(statement, env)
                best[name] = [min(best[name][0], seconds), min(best[name][1], process)]
    base = best["import dagster"][0]
    print(f"best of {args.repeat} fresh processes, interleaved ({sys.executable})")
    print(f"{'row':<22}{'import s':>10}{'process s':>11}{'ratio':>7}  heavy modules loaded")
    for name, (seconds, process) in best.items():
        loaded = ", ".join(heavy[name]) or "-"
        print(f"{name:<22}{seconds:>10.3f}{process:>11.3f}{seconds / base:>7.2f}  {loaded}")


if __name__ == "__main__":
    main()
