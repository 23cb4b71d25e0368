"""fno-demo in torch vs its ONNX export in onnxruntime: forecast differences and step time.

Exports the artifact's network (``model_registry.onnx_model.export_onnx``, what ``wxplat
artifact export-onnx`` runs), then rolls out the same analysis with both through the
platform's rollout (``weather_assets.forecast.rollout``): the torch module, and the
``OnnxModel`` adapter around the exported graph with the export's contract. Prints, per
feature, the largest absolute difference over all lead times and that difference relative
to the feature's largest |value|; then the seconds per step of each (best of the steps,
interleaved runs), on this machine's CPU unless ``--device cuda`` (onnxruntime then uses the
CUDA execution provider if ``onnxruntime-gpu`` is installed).

    .venv/bin/python benchmarks/bench_onnx.py [--artifact artifacts/fno-demo.zip]
        [--steps 12] [--device cpu]

Without the artifact (a fresh checkout) an untrained FNO of fno-demo's size on its grid is
used: the differences then measure the same arithmetic on meaningless weights.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from model_registry.architectures import build_model
from model_registry.artifact import load_artifact
from model_registry.onnx_contract import parse_contract
from model_registry.onnx_model import OnnxModel, export_onnx, exported_contract, onnx_session
from model_registry.registry import get_spec
from model_registry.spec import format_duration
from model_registry.training import untrained_artifact
from weather_assets.forecast.normalize import stack_features, standardize
from weather_assets.forecast.rollout import rollout
from weather_assets.simulator import Grid, simulate_state

T0 = "2026-01-01T06"


def _artifact(path: Path, tmp: Path):
    if path.is_file():
        return load_artifact(path), str(path)
    spec = get_spec("fno-demo")
    hp = {"n_modes": list(spec.training.n_modes), "hidden_channels": spec.training.hidden_channels,
          "n_layers": spec.training.n_layers}  # fmt: skip
    made = untrained_artifact(tmp / "untrained.zip", hyperparameters=hp, forcings=spec.forcings)
    return load_artifact(made), f"untrained FNO ({path} absent)"


def _steps(model, x0, loaded, args, grid):
    m = loaded.manifest
    out, seconds = [], []
    for step in rollout(
        x0, model, loaded.stats, args.steps, features=list(m.input_features),
        timestep=m.timestep, device=args.device, forcings=m.forcings, analysis_time=T0,
        latitude=grid.latitude, longitude=grid.longitude,
    ):  # fmt: skip
        out.append(step.state[0])
        seconds.append(step.seconds)
    return np.stack(out), min(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--artifact", type=Path, default=Path("artifacts/fno-demo.zip"))
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        loaded, source = _artifact(args.artifact, Path(tmp))
    m = loaded.manifest
    lat, lon = m.grid.latitude, m.grid.longitude
    grid = Grid(lat.values()[0], lat.values()[-1], lon.values()[0], lon.values()[-1], lat.step)
    hp = m.architecture.hyperparameters
    net = build_model(m.architecture.name, hp, m.in_channels, len(m.output_features),
                      loaded.state_dict)  # fmt: skip
    t = time.perf_counter()
    exported = export_onnx(net, m.in_channels, lat.size, lon.size)
    export_seconds = time.perf_counter() - t
    contract = parse_contract(
        exported_contract([*m.input_features, *m.forcings], m.output_features)
    )
    onnx = OnnxModel(onnx_session(exported.model), contract, loaded.stats, list(m.input_features),
                     m.forcings)  # fmt: skip
    x0 = standardize(stack_features(simulate_state(T0, grid), m.input_features), loaded.stats)
    ref, torch_s = _steps(net, x0.values, loaded, args, grid)
    got, onnx_s = _steps(onnx, x0.values, loaded, args, grid)
    print(
        f"{source}: {lat.size}x{lon.size}, {args.steps} steps of {format_duration(m.timestep)}, {args.device}"
    )
    print(f"export {export_seconds:.1f} s; export check (one call, standardized tendency): "
          f"max abs {exported.max_abs:.3g}, rel {exported.max_rel:.3g}")  # fmt: skip
    print(f"{'feature':28s} {'max abs diff':>14s} {'rel to max|x|':>14s}")
    diff = np.abs(got - ref)
    for i, f in enumerate(m.input_features):
        rel = diff[:, i].max() / np.abs(ref[:, i]).max()
        print(f"{f:28s} {diff[:, i].max():14.3g} {rel:14.3g}")
    print(f"{'seconds per step':28s} {'torch':>14s} {'onnxruntime':>14s} {'ratio':>8s}")
    print(f"{'':28s} {torch_s:14.4f} {onnx_s:14.4f} {onnx_s / torch_s:8.2f}")


if __name__ == "__main__":
    main()
