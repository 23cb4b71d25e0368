"""Start-up cost of the code location, and of one forecast partition run as a command.

Every step process and every Kubernetes pod imports the code location before it runs one
line of the step, so whatever ``import definitions`` pulls in is paid per step. Each row of
the first table is a fresh Python process (no warm module cache in the interpreter), run N
times interleaved with the other rows, best of N:

- ``import dagster``: the plain-library baseline, the floor of any Dagster code location;
- ``import definitions``: the module import, which builds the ``Definitions``;
- ``resolve definitions``: the import plus ``defs.get_repository_def()``, what Dagster does
  when it loads the code location.

All run with ``WXPLAT_HOME`` (and ``DAGSTER_HOME``) in a temporary directory. ``import s`` is
timed inside the child around the statement, ``process s`` from outside (interpreter start
and exit included). The last column lists the heavy libraries in ``sys.modules`` afterwards:
they should appear only in the steps that use them (torch in the forecast, matplotlib in
the pictures), never at load.

The second table (unless ``--no-forecast``) times whole processes on a demo home
(``wxplat demo --cycles 2`` with the persistence model only, made first, not timed), best of
``--forecast-repeat``, interleaved:

- ``plain script``: the same forecast of one partition in a Python script without Dagster
  (open the normalized input, build the model, ``run_forecast`` into a zarr store): the
  baseline of the ratios;
- ``dagster asset materialize``: ``forecast/persistence`` of that partition, forced (the
  forecast is recomputed, checked, pictured and committed), as an operator runs it;
- ``wxplat demo, up to date``: the demo run again over the same cycles: nothing to do.

The third table splits the fastest ``dagster asset materialize`` by the run's event log:
CLI start to the run's first event (interpreter, Dagster, the code location, creating the
run), to the step's start (executor, step process if any), the step (its ``wall_seconds``:
forecast, checks, picture, commit), to the run's end (the step process's exit, if any), and
to the process's exit.

    .venv/bin/python benchmarks/bench_startup.py [--repeat 7] [--forecast-repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
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
    "dask",
    "scipy",
    "matplotlib",
    "pandera",
    "hypothesis",
    "xarray",
    "pandas",
    "zarr",
)
MODEL = "persistence"
START = "2026-01-01T0000Z"
PARTITION = "2026-01-01T0600Z"  # the demo's second cycle
PLAIN = f"""
import tempfile
from model_registry.architectures import build_model
from model_registry.registry import load_registry
from model_registry.resolve import load_model_artifact, model_config_of
from resources.forecast_run import run_forecast
from resources.layout import store_relpath
from resources.storage import Storage
from weather_assets.forecast.normalize import identity_stats
from weather_assets.partitions import partition_key_to_time
from weather_assets.settings import load_settings

settings = load_settings()
spec = next(s for s in load_registry(settings.registry_dir) if s.name == {MODEL!r})
loaded = load_model_artifact(spec, settings)
t = partition_key_to_time({PARTITION!r})
rel = store_relpath(spec, settings, t, model_config_of(loaded), "normalized")
state = Storage(settings.storage_root).open_zarr(rel)["state"].load()
stats = loaded.stats if loaded is not None else identity_stats(spec.input_features)
model = build_model(
    spec.architecture,
    loaded.manifest.architecture.hyperparameters if loaded else {{}},
    spec.in_channels,
    len(spec.output_features),
    state_dict=loaded.state_dict if loaded else None,
)
with tempfile.TemporaryDirectory() as out:
    run_forecast(
        state, model, stats, steps=spec.steps, timestep=spec.timestep,
        stores=[out + "/forecast.zarr"], grid=loaded.manifest.grid if loaded else None,
        forcings=spec.forcings,
    )
"""
MATERIALIZE = [
    sys.executable, "-m", "dagster", "asset", "materialize", "-f", "definitions.py",
    "--select", f"forecast/{MODEL}", "--partition", PARTITION,
    "--config-json", json.dumps({"ops": {f"forecast__{MODEL}": {"config": {"force": True}}}}),
]  # fmt: skip
DEMO = [sys.executable, "-m", "weather_assets.cli", "demo", "--cycles", "2", "--start", START]
PHASES = (
    ("CLI start to the run's first event", None, "ASSET_MATERIALIZATION_PLANNED"),
    ("  to the step's start", "ASSET_MATERIALIZATION_PLANNED", "STEP_START"),
    ("  the step", "STEP_START", "STEP_SUCCESS"),
    ("  to the run's end", "STEP_SUCCESS", "PIPELINE_SUCCESS"),  # RUN_SUCCESS's value
    ("  to the process's exit", "PIPELINE_SUCCESS", None),
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


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(start, end) wall-clock times of a whole process (``time.time``, as event logs)."""
    t0 = time.time()
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    t1 = time.time()
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:6])} failed:\n{out.stderr[-3000:]}")
    return t0, t1


def phases(run_id: str, t0: float, t1: float) -> dict[str, float]:
    """Seconds of each of :data:`PHASES` of one run, from its event log."""
    import dagster as dg

    with dg.DagsterInstance.get() as instance:
        events = {}
        wall = float("nan")
        for record in instance.all_logs(run_id):
            event = record.dagster_event
            if event is not None:
                events.setdefault(event.event_type_value, record.timestamp)
                if event.event_type_value == "ASSET_MATERIALIZATION":
                    meta = event.step_materialization_data.materialization.metadata
                    wall = float(meta["wall_seconds"].value) if "wall_seconds" in meta else wall
    out = {}
    for name, start, end in PHASES:
        begin = t0 if start is None else events[start]
        finish = t1 if end is None else events[end]
        out[name] = finish - begin
    out["    of which the forecast's wall_seconds"] = wall
    return out


def forecast_rows(repeat: int, tmp: str) -> None:
    """Whole-process rows of one forecast partition (see the module docstring)."""
    import dagster as dg

    env = {k: v for k, v in os.environ.items() if not k.startswith("WXPLAT_")}
    registry = Path(tmp) / "registry"
    registry.mkdir()
    shutil.copy(ROOT / "model_registry" / "models" / f"{MODEL}.yaml", registry)
    env.update(
        WXPLAT_HOME=str(Path(tmp) / "demo"),
        DAGSTER_HOME=str(Path(tmp) / "demo" / "dagster"),
        WXPLAT_REGISTRY_DIR=str(registry),
        PYTHONPATH=str(ROOT),
    )
    os.environ.update(env)  # phases() reads this instance
    timed(DEMO, env)  # the demo home: raw inputs, normalized inputs, forecasts; not timed
    rows = {
        "plain script (same forecast, no Dagster)": [sys.executable, "-c", PLAIN],
        "dagster asset materialize (forced)": MATERIALIZE,
        "wxplat demo, up to date": DEMO,
    }
    best = {name: float("inf") for name in rows}
    fastest: tuple[float, str, float, float] | None = None
    for cmd in rows.values():  # warm the OS file cache, not timed
        timed(cmd, env)
    for _ in range(repeat):
        for name, cmd in rows.items():
            t0, t1 = timed(cmd, env)
            best[name] = min(best[name], t1 - t0)
            if cmd is MATERIALIZE and (fastest is None or t1 - t0 < fastest[0]):
                with dg.DagsterInstance.get() as instance:
                    run_id = instance.get_runs(limit=1)[0].run_id
                fastest = (t1 - t0, run_id, t0, t1)
    plain = best["plain script (same forecast, no Dagster)"]
    print(f"\none forecast partition ({MODEL}, {PARTITION}), whole processes, best of {repeat}")
    print(f"{'row':<44}{'seconds':>9}{'ratio':>7}")
    for name, seconds in best.items():
        print(f"{name:<44}{seconds:>9.2f}{seconds / plain:>7.2f}")
    assert fastest is not None
    print(f"\nwhere the fastest dagster asset materialize's {fastest[0]:.2f} s go (event log)")
    for name, seconds in phases(fastest[1], fastest[2], fastest[3]).items():
        print(f"{name:<44}{seconds:>9.2f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=7, help="fresh processes per row")
    parser.add_argument("--forecast-repeat", type=int, default=3, help="runs per forecast row")
    parser.add_argument("--no-forecast", action="store_true", help="import rows only")
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
    if not args.no_forecast:
        with tempfile.TemporaryDirectory(prefix="bench-startup-forecast-") as tmp:
            forecast_rows(args.forecast_repeat, tmp)


if __name__ == "__main__":
    main()
