"""ONNX models through ``forecast/<model>``: a Pangu-like two-tensor graph, the FNO export.

The Pangu-like graph is a small torch network exported to ONNX with Pangu-Weather's
conventions (an upper-air ``(variable, level, lat, lon)`` and a surface ``(variable, lat,
lon)`` tensor, no batch dim, its own variable and level order, latitudes north to south,
physical units in and the full next state out). Its forecast through the platform must be the
same network's forecast in torch on the canonical layout (standardized tendency).
"""

# No `from __future__ import annotations`: Dagster inspects annotations at runtime.

import io
from datetime import timedelta

import numpy as np
import pytest
import torch
import xarray as xr
from torch import nn
from typer.testing import CliRunner

from model_registry.architectures import new_model
from model_registry.artifact import GridSummary, build_artifact, load_artifact
from model_registry.onnx_contract import parse_contract
from model_registry.onnx_model import OnnxModel, onnx_session
from model_registry.registry import DEFAULT_REGISTRY_DIR, load_spec
from resources.layout import open_forecast, raw_inputs_relpath
from resources.storage import Storage
from tests.integration.test_forecast_assets import GRID, T0, assets_for, run, write_entry
from weather_assets.cli import app
from weather_assets.forecast.normalize import compute_stats, stack_features, standardize
from weather_assets.forecast.rollout import rollout
from weather_assets.settings import load_settings
from weather_assets.simulator import simulate_state

STEPS = 4  # write_entry's 24 h at 6 h
# |ONNX - torch| <= RTOL * |torch| + ATOL_STD * (the feature's std): float32 rounding of the
# unit conversions and of the state -> tendency -> state round trip (measured: ~1e-7 rel).
RTOL = 1e-5
ATOL_STD = 1e-5
CONTRACT = {
    "units": "physical",
    "output": "state",
    "latitude": "descending",
    "dtype": "float32",
    "inputs": [
        {
            "name": "input",
            "dims": ["variable", "level", "latitude", "longitude"],
            "variables": ["temperature", "geopotential"],
            "levels": [850, 500],
        },
        {
            "name": "input_surface",
            "dims": ["variable", "latitude", "longitude"],
            "variables": [
                "mean_sea_level_pressure",
                "10m_v_component_of_wind",
                "10m_u_component_of_wind",
                "2m_temperature",
            ],
        },
    ],
}
CONTRACT["outputs"] = [
    {**CONTRACT["inputs"][0], "name": "output"},
    {**CONTRACT["inputs"][1], "name": "output_surface"},
]


@pytest.fixture
def env(tmp_path):
    """The forecast-asset tests' deployment: a 10 x 18 global grid, one cycle of inputs."""
    settings = load_settings(
        {
            "WXPLAT_HOME": str(tmp_path / "home"),
            "WXPLAT_DOMAIN": "w0_s-90_e340_n90",
            "WXPLAT_RESOLUTION": "dx20deg_dy20deg",
        }
    )
    storage = Storage(settings.storage_root)
    storage.write_zarr(simulate_state(T0, GRID), raw_inputs_relpath(settings, T0))
    registry = tmp_path / "models"
    registry.mkdir()
    return {"settings": settings, "storage": storage, "registry": registry, "tmp": tmp_path}


def as_array(fc: xr.Dataset, feats) -> np.ndarray:
    """A stored forecast's control member as (lead, feature, lat, lon)."""
    if "member" in fc.dims:
        fc = fc.isel(member=0, drop=True)
    fc = fc.isel(time=0, drop=True).drop_vars("valid_time", errors="ignore")
    return stack_features(fc.rename(lead_time="time"), feats).values


def features():
    return load_spec(DEFAULT_REGISTRY_DIR / "persistence.yaml").input_features


def history_stats(feats):
    hist = xr.concat([simulate_state(T0 + timedelta(hours=6 * k), GRID) for k in range(3)], "time")
    return compute_stats(stack_features(hist, feats))


class CanonicalNet(nn.Module):
    """A platform-style network: standardized state in, standardized tendency out."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.conv(s))


class PanguLike(nn.Module):
    """``CanonicalNet`` behind Pangu's tensor layout (the contract above)."""

    def __init__(self, net: nn.Module, stats: xr.Dataset, feats: list[str]) -> None:
        super().__init__()
        contract = parse_contract(CONTRACT)
        order = [ch for t in contract.inputs for ch in t.channels]  # the graph's channels
        self.net = net
        self.n_upper = len(contract.inputs[0].channels)
        self.upper_shape = contract.inputs[0].grid_shape
        # canonical channel c is graph channel to_canon[c], and back
        self.register_buffer("to_canon", torch.tensor([order.index(f) for f in feats]))
        self.register_buffer("to_graph", torch.tensor([feats.index(ch) for ch in order]))
        for name in ("mean", "std", "diff_mean", "diff_std"):
            v = stats[f"state__train__{name}"].sel(state_feature=feats).values
            self.register_buffer(name, torch.tensor(v, dtype=torch.float32).reshape(-1, 1, 1))

    def forward(self, upper: torch.Tensor, surface: torch.Tensor):
        h, w = surface.shape[-2:]
        flat = torch.cat([upper.reshape(-1, h, w), surface], dim=0)
        x = flat.index_select(0, self.to_canon).flip(-2)  # canonical order, lat ascending
        s = (x - self.mean) / self.std
        nxt = x + self.diff_mean + self.diff_std * self.net(s.unsqueeze(0))[0]
        y = nxt.flip(-2).index_select(0, self.to_graph)
        return y[: self.n_upper].reshape(*self.upper_shape, h, w), y[self.n_upper :]


def export_pangu_like(net: nn.Module, stats: xr.Dataset, feats: list[str]) -> bytes:
    model = PanguLike(net, stats, feats).eval()
    upper = torch.randn(2, 2, GRID.latitude.size, GRID.longitude.size)
    surface = torch.randn(4, GRID.latitude.size, GRID.longitude.size)
    buf = io.BytesIO()
    program = torch.onnx.export(
        model,
        (upper, surface),
        dynamo=True,
        input_names=["input", "input_surface"],
        output_names=["output", "output_surface"],
        verbose=False,
    )
    program.save(buf)
    return buf.getvalue()


@pytest.fixture(scope="module")
def pangu():
    feats = features()
    stats = history_stats(feats)
    net = CanonicalNet(len(feats)).eval()
    return {
        "feats": feats,
        "stats": stats,
        "net": net,
        "graph": export_pangu_like(net, stats, feats),
    }


def pangu_artifact(env, pangu, contract=CONTRACT, name="pangu.zip"):
    return build_artifact(
        env["tmp"] / name,
        name="pangu-like",
        architecture="onnx",
        hyperparameters=contract,
        input_features=pangu["feats"],
        output_features=pangu["feats"],
        timestep=timedelta(hours=6),
        stats=pangu["stats"],
        onnx_model=pangu["graph"],
        grid=GridSummary.from_coords(GRID.latitude, GRID.longitude),
        version="v1",
    )


def differences(fc: xr.Dataset, expected: np.ndarray, feats, stats) -> tuple[float, float, bool]:
    """Max abs difference of a stored forecast against (lead, feature, lat, lon), the largest
    per-feature max abs difference relative to the feature's max |value|, and the verdict."""
    got = as_array(fc, feats)
    std = stats["state__train__std"].sel(state_feature=feats).values.reshape(1, -1, 1, 1)
    diff = np.abs(got - expected)
    ok = bool(np.all(diff <= RTOL * np.abs(expected) + ATOL_STD * std))
    rel = diff.max(axis=(0, 2, 3)) / np.abs(expected).max(axis=(0, 2, 3))
    return float(diff.max()), float(rel.max()), ok


def test_pangu_like_onnx_forecast_equals_the_torch_network(env, pangu):
    feats, stats = pangu["feats"], pangu["stats"]
    spec = load_spec(
        write_entry(
            env,
            "pangu-like",
            architecture="onnx",
            artifact={"uri": str(pangu_artifact(env, pangu))},
        )
    )
    result = run(env, assets_for(env, spec)[1:])
    assert result.success
    md = result.asset_materializations_for_node("forecast__pangu_like")[0].metadata
    assert md["steps"].value == STEPS
    assert all(c.passed for c in result.get_asset_check_evaluations())
    fc = open_forecast(env["storage"], spec, env["settings"], T0)

    x0 = standardize(stack_features(simulate_state(T0, GRID), feats), stats)
    kw = dict(features=feats, timestep=spec.timestep, device="cpu")
    expected = np.stack([s.state[0] for s in rollout(x0.values, pangu["net"], stats, STEPS, **kw)])
    max_abs, max_rel, ok = differences(fc, expected, feats, stats)
    print(
        f"pangu-like ONNX vs torch over {STEPS} steps: max abs {max_abs:.3g}, max rel {max_rel:.3g}"
    )
    assert ok, (max_abs, max_rel)


def test_onnx_model_runs_each_member_through_an_unbatched_graph(pangu):
    feats, stats = pangu["feats"], pangu["stats"]
    model = OnnxModel(onnx_session(pangu["graph"]), parse_contract(CONTRACT), stats, feats)
    s = torch.randn(3, len(feats), GRID.latitude.size, GRID.longitude.size)
    with torch.no_grad():
        expected = pangu["net"](s)
    # (next state - state) / diff_std round trip: tendency agrees to float32 rounding of the state
    np.testing.assert_allclose(model(s).numpy(), expected.numpy(), atol=2e-3)


def test_graph_that_breaks_the_contract_fails_before_compute(env, pangu):
    wrong = {
        **CONTRACT,
        "inputs": [CONTRACT["inputs"][0], {**CONTRACT["inputs"][1], "name": "surface"}],
    }
    spec = load_spec(
        write_entry(
            env, "pangu-like", architecture="onnx",
            artifact={"uri": str(pangu_artifact(env, pangu, wrong, "wrong.zip"))},
        )
    )  # fmt: skip
    result = run(env, assets_for(env, spec)[1:], raise_on_error=False)
    assert not result.success
    err = result.failure_data_for_node("forecast__pangu_like").error
    message = str(err.cause or err)
    assert "contract input 'surface' is not a graph input" in message
    assert "['input', 'input_surface']" in message and "wrong.zip" in message
    with pytest.raises(FileNotFoundError):
        open_forecast(env["storage"], spec, env["settings"], T0)


def test_export_onnx_round_trip_of_the_demo_fno(env):
    demo = load_spec(DEFAULT_REGISTRY_DIR / "fno-demo.yaml")
    feats, forcings = demo.input_features, list(demo.forcings)
    hp = {
        "n_modes": list(demo.training.n_modes),
        "hidden_channels": demo.training.hidden_channels,
        "n_layers": demo.training.n_layers,
    }
    torch.manual_seed(0)
    weights = new_model("fno", hp, len(feats) + len(forcings), len(feats)).state_dict()
    stats = history_stats(feats)
    torch_zip = build_artifact(
        env["tmp"] / "fno-demo.zip",
        name="fno-demo",
        architecture="fno",
        hyperparameters=hp,
        input_features=feats,
        output_features=feats,
        forcings=forcings,
        timestep=demo.timestep,
        stats=stats,
        state_dict=weights,
        grid=GridSummary.from_coords(GRID.latitude, GRID.longitude),
        version="v3",
    )
    onnx_zip = env["tmp"] / "fno-demo-onnx.zip"
    cli = CliRunner().invoke(
        app, ["artifact", "export-onnx", str(torch_zip), "--out", str(onnx_zip)]
    )
    assert cli.exit_code == 0, cli.output
    assert "onnxruntime vs torch on 10x18: max abs" in cli.output
    loaded = load_artifact(onnx_zip)
    m = loaded.manifest
    assert m.architecture.name == "onnx" and m.version == "v3-onnx" and loaded.state_dict == {}
    assert list(m.forcings) == forcings and m.grid == load_artifact(torch_zip).manifest.grid
    contract = parse_contract(m.architecture.hyperparameters)
    assert (contract.units, contract.output, contract.latitude) == (
        "standardized",
        "tendency",
        "ascending",
    )

    entry = {
        "forcings": forcings,
        "input_variables": [v.model_dump() for v in demo.input_variables],
    }
    entry["output_variables"] = entry["input_variables"]
    torch_spec = load_spec(
        write_entry(
            env, "demo-torch", architecture="fno", artifact={"uri": str(torch_zip)}, **entry
        )
    )
    onnx_spec = load_spec(
        write_entry(env, "demo-onnx", architecture="onnx", artifact={"uri": str(onnx_zip)}, **entry)
    )
    paths = {}
    for spec in (torch_spec, onnx_spec):
        result = run(env, assets_for(env, spec)[1:])
        assert result.success
        node = f"forecast__{spec.name.replace('-', '_')}"
        paths[spec.name] = result.asset_materializations_for_node(node)[0].metadata["path"].value
    assert "/demo-onnx/v3-onnx/" in paths["demo-onnx"]  # the ONNX artifact's own version
    fc_torch = open_forecast(env["storage"], torch_spec, env["settings"], T0)
    fc_onnx = open_forecast(env["storage"], onnx_spec, env["settings"], T0)
    expected = as_array(fc_torch, feats)
    max_abs, max_rel, ok = differences(fc_onnx, expected, feats, stats)
    print(
        f"fno-demo ONNX vs torch over {STEPS} steps: max abs {max_abs:.3g}, max rel {max_rel:.3g}"
    )
    assert ok, (max_abs, max_rel)


def test_export_onnx_refuses_what_it_cannot_export(env):
    sfno = build_artifact(
        env["tmp"] / "sfno.zip",
        name="tiny-sfno",
        architecture="sfno",
        hyperparameters={"n_modes": [4, 8], "hidden_channels": 4, "n_layers": 1},
        input_features=["2m_temperature"],
        output_features=["2m_temperature"],
        timestep="6h",
        stats=history_stats(["2m_temperature"]),
        state_dict=new_model(
            "sfno", {"n_modes": [4, 8], "hidden_channels": 4, "n_layers": 1}, 1, 1
        ).state_dict(),
        grid=GridSummary.from_coords(GRID.latitude, GRID.longitude),
        version="v1",
    )
    cli = CliRunner().invoke(
        app, ["artifact", "export-onnx", str(sfno), "--out", str(env["tmp"] / "x.zip")]
    )
    assert cli.exit_code == 1
    assert "(sfno): ComplexDenseTensor holds complex weights" in cli.output
    assert not (env["tmp"] / "x.zip").exists()
