"""Forecast step of the platform vs a bare ``model(x)`` loop, plus zarr write throughput.

The platform step is what ``forecast/<model>`` does: load and validate the artifact zip,
stack and standardize the canonical input, roll out autoregressively, de-normalize, and write
every lead time into a staged zarr store that is committed atomically. The baseline is the
plain-library way: the same network called in a loop on an in-memory tensor
(``model(x)`` on the same standardized tensor, its forcing channels computed once), nothing
loaded or written. Same weights, grid and steps. The network is fno-demo's: the state's 8
features plus its 2 local-hour forcings in, which the platform recomputes at every step.
The "its model steps alone" row is the platform's own rollout steps alone (forcings, model, de-normalize,
copy to the host): against the bare loop it shows what writing costs the model (contention).

    .venv/bin/python benchmarks/bench_rollout.py [--step 1.0] [--steps 20] [--repeats 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import torch
import xarray as xr

from model_registry.architectures import build_model
from model_registry.artifact import load_artifact
from model_registry.registry import get_spec
from model_registry.training import untrained_artifact
from resources.forecast_run import run_forecast
from resources.storage import Storage
from weather_assets.forecast.normalize import (
    forcing_fields,
    stack_features,
    standardize,
)
from weather_assets.forecast.rollout import select_device
from weather_assets.simulator import Grid, simulate_state

HP = {"n_modes": [16, 32], "hidden_channels": 16, "n_layers": 3}  # the fno-demo network
FORCINGS = list(get_spec("fno-demo").forcings)  # cos/sin of the local solar hour


def make_artifact(path: Path, grid: Grid) -> tuple[Path, xr.Dataset]:
    """A random-weight fno-demo-sized artifact on ``grid`` and one analysis to start from."""
    untrained_artifact(
        path, grid=grid, hyperparameters=HP, forcings=FORCINGS, name="bench-fno", version="bench"
    )
    return path, simulate_state("2026-01-01T06", grid)


def bare(artifact: Path, analysis: xr.Dataset, steps: int, device: torch.device) -> float:
    """Seconds for ``steps`` calls of the network on the same ready tensor (nothing else)."""
    loaded = load_artifact(artifact)
    features = list(loaded.manifest.input_features)
    n_in = loaded.manifest.in_channels
    model = build_model("fno", HP, n_in, len(features), loaded.state_dict).to(device)
    # The same standardized input the platform feeds the network, with its forcings.
    x = torch.from_numpy(standardize(stack_features(analysis, features), loaded.stats).values)
    f = forcing_fields(
        loaded.manifest.forcings,
        analysis["time"].values[0],
        analysis["latitude"].values,
        analysis["longitude"].values,
    )
    x = torch.cat([x, torch.from_numpy(f)[None]], dim=1).to(device)
    with torch.inference_mode():
        model(x)  # warm-up
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(steps):
            model(x)
        if device.type == "cuda":
            torch.cuda.synchronize()
    return time.perf_counter() - t0


def platform(
    artifact: Path, analysis: xr.Dataset, steps: int, device: torch.device, storage: Storage
) -> tuple[float, float, int, float]:
    """(total seconds, write seconds, bytes, model-step seconds) of the platform's step."""
    t0 = time.perf_counter()
    loaded = load_artifact(artifact)
    features = list(loaded.manifest.input_features)
    model = build_model("fno", HP, loaded.manifest.in_channels, len(features), loaded.state_dict)
    normalized = standardize(stack_features(analysis, features), loaded.stats)
    with storage.staged_zarr("bench/forecast.zarr") as url:
        summary = run_forecast(
            normalized,
            model,
            loaded.stats,
            steps=steps,
            timestep=timedelta(hours=6),
            stores=[url],
            grid=loaded.manifest.grid,
            device=device,
            forcings=loaded.manifest.forcings,
        )
    steps_s = sum(summary.step_seconds)
    return time.perf_counter() - t0, summary.write_seconds, summary.nbytes, steps_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--step", type=float, default=1.0, help="grid spacing, degrees")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default=None)
    args = parser.parse_args()
    grid = Grid(-90.0, 90.0, 0.0, 360.0 - args.step, args.step)
    device = select_device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        artifact, analysis = make_artifact(Path(tmp) / "bench.zip", grid)
        storage = Storage(str(Path(tmp) / "storage"))
        bare_s, plat = [], []
        for _ in range(args.repeats):
            bare_s.append(bare(artifact, analysis, args.steps, device))
            plat.append(platform(artifact, analysis, args.steps, device, storage))
    # Best of N, as timeit does: on a shared machine the minimum is the least disturbed run.
    b = min(bare_s)
    best = min(plat, key=lambda r: r[0])
    p, w, m = best[0], best[1], best[3]
    mb = plat[0][2] / 1e6
    shape = f"{grid.latitude.size}x{grid.longitude.size}"
    print(
        f"\nFNO {HP}, {shape} grid, 8 features + {len(FORCINGS)} forcings, {args.steps} steps, "
        f"device {device}, "
        f"torch threads {torch.get_num_threads()}, best of {args.repeats}\n"
    )
    print("| variant | seconds | ms / step | ratio to bare |")
    print("|---|---:|---:|---:|")
    print(f"| bare `model(x)` loop | {b:.3f} | {1e3 * b / args.steps:.1f} | 1.00 |")
    print(
        f"| platform step (load+normalize+rollout+denormalize+write) | {p:.3f} | "
        f"{1e3 * p / args.steps:.1f} | {p / b:.2f} |"
    )
    print(
        f"| platform: its model steps alone | {m:.3f} | {1e3 * m / args.steps:.1f} | {m / b:.2f} |"
    )
    print("\n| written | write seconds | write MB/s |\n|---:|---:|---:|")
    print(f"| {mb:.1f} MB | {w:.3f} | {mb / w:.1f} |")


if __name__ == "__main__":
    main()
