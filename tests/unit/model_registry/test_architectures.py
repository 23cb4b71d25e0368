"""Architecture table, tiny FNO/SFNO builds and the model runners (in-process, Pipes)."""

# No `from __future__ import annotations`: Dagster inspects the asset annotations at runtime.
import sys
import textwrap
from datetime import UTC, datetime

import dagster as dg
import numpy as np
import pytest
import torch
import xarray as xr

from model_registry.architectures import (
    ARCHITECTURES,
    build_model,
    get_architecture,
    new_model,
)
from model_registry.artifact import WEIGHTED_ARCHITECTURES
from model_registry.networks import Persistence
from model_registry.spec import ModelSpec
from resources.runners import (
    InProcessTorchRunner,
    PipesRunner,
    RunRequest,
    container_command,
    run_container,
    runner_class,
    runner_resource_keys,
)

HP = {"n_modes": [4, 8], "hidden_channels": 4, "n_layers": 1}


def test_unknown_architecture_lists_valid_names():
    with pytest.raises(ValueError, match="unknown architecture 'unet'; valid .*persistence, fno"):
        get_architecture("unet")


def test_registry_schema_and_artifacts_read_the_table(monkeypatch):
    """A row added to the table is a valid registry architecture, with no other edit."""
    from dataclasses import replace

    monkeypatch.setitem(ARCHITECTURES, "fno2", replace(ARCHITECTURES["fno"], name="fno2"))
    with pytest.raises(ValueError, match="architecture 'fno2' needs an 'artifact'"):
        _spec("fno2")
    assert _spec("fno2", artifact={"uri": "a.zip"}).architecture == "fno2"
    with pytest.raises(ValueError, match="valid architectures are: .*container, fno2"):
        _spec("unet")
    assert WEIGHTED_ARCHITECTURES == {"fno", "sfno"}


def test_runner_of_each_architecture():
    assert runner_class(_spec("persistence")) is InProcessTorchRunner
    assert runner_resource_keys(_spec("persistence")) == set()
    boxed = _spec("container", container={"command": ["run"]})
    assert runner_class(boxed) is PipesRunner
    assert runner_resource_keys(boxed) == {"pipes_client"}
    assert get_architecture("container").kind == "docker"
    assert {get_architecture(n).kind for n in ("persistence", "fno", "sfno")} == {"pytorch"}


def test_persistence_is_zero_tendency():
    x = torch.randn(2, 3, 5, 6)
    model = build_model("persistence", {}, 3, 3)
    assert torch.equal(model(x), torch.zeros_like(x))
    assert isinstance(model, Persistence) and not list(model.parameters())


def test_fno_builds_from_state_dict():
    torch.manual_seed(0)
    trained = new_model("fno", HP, 3, 3)
    model = build_model("fno", HP, 3, 3, state_dict=trained.state_dict())
    x = torch.randn(1, 3, 10, 18)
    assert not model.training
    with torch.no_grad():
        assert torch.equal(model(x), trained.eval()(x))


def test_fno_needs_fitting_weights():
    with pytest.raises(ValueError, match="needs weights"):
        build_model("fno", HP, 3, 3)
    other = new_model("fno", {**HP, "hidden_channels": 6}, 3, 3).state_dict()
    with pytest.raises(ValueError, match="weights do not fit architecture 'fno'"):
        build_model("fno", HP, 3, 3, state_dict=other)
    with pytest.raises(ValueError, match="'n_modes'"):
        new_model("fno", {"hidden_channels": 4}, 3, 3)


def test_forcings_are_extra_input_channels_only():
    spec = ModelSpec.model_validate(
        {
            "name": "forced",
            "architecture": "fno",
            "artifact": {"uri": "a.zip"},
            "input_variables": [
                {"name": "2m_temperature"},
                {"name": "geopotential", "levels": [500]},
            ],
            "output_variables": [
                {"name": "2m_temperature"},
                {"name": "geopotential", "levels": [500]},
            ],
            "forcings": ["cos_local_hour", "sin_local_hour", "toa_insolation"],
            "timestep": "6h",
            "max_lead_time": "12h",
        }
    )
    assert spec.in_channels == 5 and len(spec.output_features) == 2
    torch.manual_seed(0)
    trained = new_model("fno", HP, spec.in_channels, len(spec.output_features))
    model = build_model("fno", HP, 5, 2, state_dict=trained.state_dict())
    assert model(torch.randn(1, 5, 10, 18)).shape == (1, 2, 10, 18)
    with pytest.raises(ValueError, match="weights do not fit"):
        build_model("fno", HP, 2, 2, state_dict=trained.state_dict())  # forcings forgotten
    # Persistence's zero tendency has the state's channels whatever its input has.
    assert build_model("persistence", {}, 5, 2)(torch.randn(1, 5, 3, 4)).shape == (1, 2, 3, 4)


def test_sfno_tiny():
    pytest.importorskip("torch_harmonics", reason="SFNO needs torch-harmonics")
    torch.manual_seed(0)
    trained = new_model("sfno", HP, 3, 3)
    model = build_model("sfno", HP, 3, 3, state_dict=trained.state_dict())
    out = model(torch.randn(1, 3, 10, 20))
    assert out.shape == (1, 3, 10, 20) and torch.isfinite(out).all()


def test_sfno_without_torch_harmonics_names_the_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch_harmonics", None)  # import now raises ImportError
    with pytest.raises(ImportError, match="torch-harmonics"):
        new_model("sfno", HP, 3, 3)


def test_container_has_no_torch_module():
    with pytest.raises(ValueError, match="use run_container"):
        new_model("container", {}, 3, 3)


def _spec(architecture, **extra):
    return ModelSpec.model_validate(
        {
            "name": "m",
            "architecture": architecture,
            "input_variables": [{"name": "2m_temperature"}],
            "output_variables": [{"name": "2m_temperature"}],
            "timestep": "6h",
            "max_lead_time": "12h",
            **extra,
        }
    )


def test_in_process_runner_writes_every_member(tmp_path):
    from weather_assets.forecast.normalize import FEATURE_DIM

    spec = _spec("persistence", members=2)
    state = np.arange(12.0, dtype=np.float32).reshape(1, 1, 3, 4)
    normalized = xr.Dataset(
        {"state": (("time", FEATURE_DIM, "latitude", "longitude"), state)},
        coords={
            "time": [np.datetime64("2026-01-01T06:00", "ns")],
            FEATURE_DIM: spec.input_features,
            "latitude": [10.0, 0.0, -10.0],
            "longitude": [0.0, 10.0, 20.0, 30.0],
        },
    )
    urls = [str(tmp_path / f"member{k}.zarr") for k in range(2)]
    md = InProcessTorchRunner().run(
        RunRequest(
            spec=spec,
            artifact=None,
            analysis_time=datetime(2026, 1, 1, 6, tzinfo=UTC),
            output_urls=urls,
            normalized=normalized,
            device="cpu",
            attrs={"model": "m"},
        )
    )
    assert md["steps"] == 2 and md["members"] == 2 and md["device"] == "cpu"
    control = xr.open_zarr(urls[0])
    assert control.attrs["model"] == "m"
    np.testing.assert_array_equal(control["2m_temperature"].values[0, -1], state[0, 0])
    assert xr.open_zarr(urls[1]).sizes["lead_time"] == 2


def test_pipes_runner_writes_one_store():
    runner = PipesRunner(context=None, client=dg.PipesSubprocessClient())
    request = RunRequest(
        spec=_spec("container", container={"command": ["run"]}),
        artifact=None,
        analysis_time=datetime(2026, 1, 1, 6, tzinfo=UTC),
        output_urls=["a.zarr", "b.zarr"],
        input_url="in.zarr",
    )
    with pytest.raises(ValueError, match="writes one store, got 2 output URLs"):
        runner.run(request)


ENTRY_POINT = textwrap.dedent(
    """
    import argparse, os
    import xarray as xr
    from dagster_pipes import open_dagster_pipes

    parser = argparse.ArgumentParser()
    parser.add_argument("--input")
    parser.add_argument("--output")
    parser.add_argument("--analysis-time")
    args = parser.parse_args()
    with open_dagster_pipes() as pipes:
        ds = xr.open_zarr(args.input)
        (ds * 2).to_zarr(args.output, mode="w", zarr_format=2)
        pipes.log.info(f"wrote {args.output}")
        pipes.report_asset_materialization(
            metadata={
                "analysis_time": args.analysis_time,
                "env_time": os.environ["WXPLAT_ANALYSIS_TIME"],
                "env_model": os.environ["WXPLAT_MODEL"],
                "extra": os.environ["MODEL_FLAVOUR"],
            }
        )
    """
)


def test_container_runs_locally_through_pipes(tmp_path):
    script = tmp_path / "entry.py"
    script.write_text(ENTRY_POINT)
    src, dst = tmp_path / "in.zarr", tmp_path / "out.zarr"
    xr.Dataset({"x": ("i", np.arange(3.0))}).to_zarr(src, zarr_format=2)
    spec = ModelSpec.model_validate(
        {
            "name": "boxed",
            "architecture": "container",
            "container": {"command": [sys.executable, str(script)], "env": {"MODEL_FLAVOUR": "v"}},
            "input_variables": [{"name": "2m_temperature"}],
            "output_variables": [{"name": "2m_temperature"}],
            "timestep": "6h",
            "max_lead_time": "12h",
        }
    )
    t0 = datetime(2026, 1, 1, 6, tzinfo=UTC)

    @dg.asset(key=["forecast", "boxed"])
    def boxed(context: dg.AssetExecutionContext, pipes_client: dg.PipesSubprocessClient):
        invocation = run_container(
            context,
            spec,
            client=pipes_client,
            input_url=str(src),
            output_url=str(dst),
            analysis_time=t0,
        )
        return invocation.get_materialize_result()

    result = dg.materialize([boxed], resources={"pipes_client": dg.PipesSubprocessClient()})
    assert result.success
    mat = result.asset_materializations_for_node("forecast__boxed")[0]
    assert mat.metadata["analysis_time"].value == "2026-01-01T06:00:00Z"
    assert mat.metadata["env_time"].value == "2026-01-01T06:00:00Z"
    assert mat.metadata["env_model"].value == "boxed"
    assert mat.metadata["extra"].value == "v"
    np.testing.assert_array_equal(xr.open_zarr(dst)["x"].values, [0.0, 2.0, 4.0])
    assert container_command(["run"], "i", "o", t0) == [
        "run",
        "--input",
        "i",
        "--output",
        "o",
        "--analysis-time",
        "2026-01-01T06:00:00Z",
    ]


def test_container_on_kubernetes_builds_a_gpu_pod():
    """The k8s path hands PipesK8sClient a pod spec that dagster-k8s turns into a valid pod."""
    from dagster_k8s import PipesK8sClient
    from dagster_k8s.pipes import build_pod_body

    class Recording(PipesK8sClient):
        def run(self, **kwargs):  # stands in for the cluster: record what would be launched
            self.kwargs = kwargs
            return kwargs

    spec = ModelSpec.model_validate(
        {
            "name": "boxed",
            "architecture": "container",
            "container": {"command": ["python", "-m", "model.run"]},
            "input_variables": [{"name": "2m_temperature"}],
            "output_variables": [{"name": "2m_temperature"}],
            "timestep": "6h",
            "max_lead_time": "12h",
            "runtime": {
                "gpu": 1,
                "node_selector": {"pool": "gpu"},
                "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists"}],
                "image": "ghcr.io/acme/model:1",
            },
        }
    )
    client = Recording()
    t0 = datetime(2026, 1, 1, 6, tzinfo=UTC)
    run_container(
        None, spec, client=client, input_url="s3://b/in", output_url="s3://b/out", analysis_time=t0
    )
    kw = client.kwargs
    assert kw["image"] == "ghcr.io/acme/model:1" and kw["env"]["WXPLAT_OUTPUT"] == "s3://b/out"
    pod = build_pod_body("p", kw["image"], kw["command"], kw["env"], None, kw["base_pod_spec"])
    container = pod.spec.containers[0]
    assert container.resources.limits["nvidia.com/gpu"] == "1"
    assert container.image == "ghcr.io/acme/model:1" and container.command[-1] == t0.strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    assert pod.spec.node_selector == {"pool": "gpu"}
    assert pod.spec.tolerations[0].key == "nvidia.com/gpu"
