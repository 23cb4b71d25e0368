"""Registry schema, loader errors, Kubernetes config and the registry CLI commands."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from model_registry.artifact import sha256_file
from model_registry.registry import (
    DEFAULT_REGISTRY_DIR,
    RegistryError,
    k8s_config,
    load_registry,
    load_registry_report,
    load_spec,
    pool_for,
)
from model_registry.spec import ModelSpec, format_duration, parse_duration
from weather_assets.cli import app

SIM_FEATURES = [
    "2m_temperature",
    "10m_u_component_of_wind",
    "10m_v_component_of_wind",
    "mean_sea_level_pressure",
    "geopotential_500hPa",
    "geopotential_850hPa",
    "temperature_500hPa",
    "temperature_850hPa",
]


def entry(**overrides) -> dict:
    """A valid persistence entry with overrides."""
    base = {
        "name": "pers",
        "architecture": "persistence",
        "input_variables": [{"name": "2m_temperature"}, {"name": "geopotential", "levels": [500]}],
        "output_variables": [{"name": "2m_temperature"}, {"name": "geopotential", "levels": [500]}],
        "timestep": "6h",
        "max_lead_time": "24h",
    }
    base.update(overrides)
    return base


def write(directory: Path, filename: str, data) -> Path:
    path = directory / filename
    text = data if isinstance(data, str) else yaml.safe_dump(data)
    path.write_text(text)
    return path


def test_shipped_registry_loads():
    specs = load_registry(DEFAULT_REGISTRY_DIR)
    assert [s.name for s in specs] == ["fno-challenger", "fno-demo", "persistence"]
    challenger, fno, pers = specs
    assert challenger.input_features == fno.input_features  # the demo product's challenger
    assert fno.input_features == SIM_FEATURES == pers.output_features
    assert fno.steps == 12 and fno.timestep == timedelta(hours=6)
    assert pers.artifact is None
    # Relative local uri resolves against the project root (the folder with pyproject.toml).
    root = DEFAULT_REGISTRY_DIR.parent.parent
    assert fno.artifact_location == str((root / "artifacts" / "fno-demo.zip").resolve())
    assert fno.artifact.sha256 is None
    # The FNO takes time-of-day forcings after its state channels; persistence none.
    assert fno.forcings == ("cos_local_hour", "sin_local_hour") and pers.forcings == ()
    assert fno.in_channels == len(SIM_FEATURES) + 2 and pers.in_channels == len(SIM_FEATURES)
    assert fno.training.loss_horizon == timedelta(hours=24)


def test_missing_sha256_is_reported_once_not_logged_per_load(tmp_path, caplog):
    path = write(tmp_path, "f.yaml", entry(name="f", architecture="fno", artifact={"uri": "a.zip"}))
    with caplog.at_level(logging.DEBUG):
        spec = load_spec(path, base_dir=tmp_path)
        report = load_registry_report(tmp_path, base_dir=tmp_path)
    assert spec.artifact_location == str(tmp_path / "a.zip")
    assert "sha256" not in caplog.text  # a code location loads many times: no log noise
    assert report.unpinned == ["f"]


@pytest.mark.parametrize(
    ("data", "needles"),
    [
        ("name: [unclosed\n", ["malformed YAML", "line"]),
        ("- a\n- b\n", ["'<entry>'", "mapping"]),
        (entry(colour="red"), ["'colour'", "not a known field", "valid fields are", "timestep"]),
        (
            entry(architecture="gpt"),
            ["'architecture'", "'gpt'", "persistence, fno, sfno, onnx, container"],
        ),
        (entry(members=0), ["'members'", "greater than or equal to 1"]),
        (entry(name="Bad Name"), ["'name'", "lowercase slug"]),
        (entry(timestep="6 hours"), ["'timestep'", "not a duration"]),
        (entry(max_lead_time="25h"), ["not a multiple of timestep 6h"]),
        (entry(architecture="fno"), ["needs an 'artifact'"]),
        (entry(artifact={"uri": "s3://bucket/m.zip"}), ["'artifact'", "sha256 is required"]),
        (entry(artifact={"uri": "a.zip", "sha256": "xyz"}), ["'artifact.sha256'", "64 hex"]),
        (
            entry(input_variables=[{"name": "rain"}]),
            ["'input_variables.0.name'", "unknown variable 'rain'"],
        ),
        (
            entry(input_variables=[{"name": "temperature"}]),
            ["'input_variables.0'", "has pressure levels"],
        ),
        (
            entry(architecture="fno", artifact={"uri": "a.zip"}, forcings=["sunshine"]),
            ["'forcings'", "unknown forcing 'sunshine'", "valid forcings are", "cos_local_hour"],
        ),
        (
            entry(
                architecture="fno",
                artifact={"uri": "a.zip"},
                forcings=["cos_local_hour", "cos_local_hour"],
            ),
            ["'forcings'", "'cos_local_hour' listed more than once"],
        ),
        (
            entry(forcings=["cos_local_hour"]),
            ["'forcings' are network inputs of fno/sfno", "'persistence' takes none"],
        ),
        (entry(runtime={"gpu": -1}), ["'runtime.gpu'"]),
        (entry(runtime={"memory": "lots"}), ["'runtime.memory'", "Kubernetes quantity"]),
        ({k: v for k, v in entry().items() if k != "timestep"}, ["'timestep'", "required"]),
    ],
)
def test_invalid_entries_fail_with_one_sentence(tmp_path, data, needles):
    path = write(tmp_path, "bad.yaml", data)
    with pytest.raises(RegistryError) as err:
        load_registry(tmp_path)
    message = str(err.value)
    assert message.startswith(str(path)) and "\n" not in message
    for needle in needles:
        assert needle in message


def test_forcings_are_optional_and_kept_in_order(tmp_path):
    path = write(
        tmp_path,
        "f.yaml",
        entry(
            name="f",
            architecture="fno",
            artifact={"uri": "a.zip"},
            forcings=["toa_insolation", "sin_day_of_year"],
        ),
    )
    spec = load_spec(path, base_dir=tmp_path)
    assert spec.forcings == ("toa_insolation", "sin_day_of_year") and spec.in_channels == 4
    assert load_spec(write(tmp_path, "g.yaml", entry(name="g")), base_dir=tmp_path).forcings == ()


def test_duplicate_names_are_refused(tmp_path):
    write(tmp_path, "a.yaml", entry())
    write(tmp_path, "b.yaml", entry())
    with pytest.raises(RegistryError, match="duplicates 'pers', already defined in .*a.yaml"):
        load_registry(tmp_path)


def test_missing_directory(tmp_path):
    with pytest.raises(RegistryError, match="does not exist"):
        load_registry(tmp_path / "nope")


def test_specs_are_frozen():
    spec = ModelSpec.model_validate(entry())
    with pytest.raises(ValueError):
        spec.members = 3  # type: ignore[misc]


def test_k8s_config_gpu_model():
    spec = ModelSpec.model_validate(
        entry(
            runtime={
                "gpu": 2,
                "cpu": 8,
                "memory": "32Gi",
                "node_selector": {"nvidia.com/gpu.product": "H100"},
                "tolerations": [
                    {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
                ],
                "image": "ghcr.io/acme/model:1.0",
            }
        )
    )
    cfg = k8s_config(spec)
    resources = cfg["container_config"]["resources"]
    assert resources["limits"] == {"cpu": "8", "memory": "32Gi", "nvidia.com/gpu": "2"}
    assert resources["requests"] == {"cpu": "8", "memory": "32Gi"}
    assert cfg["container_config"]["image"] == "ghcr.io/acme/model:1.0"
    assert cfg["pod_spec_config"] == {
        "node_selector": {"nvidia.com/gpu.product": "H100"},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    }
    assert pool_for(spec) == "gpu"
    # dagster-k8s accepts it as the user-defined config of a step pod (tags travel as JSON).
    from dagster_k8s.job import get_user_defined_k8s_config

    parsed = get_user_defined_k8s_config({"dagster-k8s/config": json.dumps(cfg)})
    assert parsed.container_config["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert parsed.pod_spec_config["node_selector"] == {"nvidia.com/gpu.product": "H100"}


def test_k8s_config_cpu_model():
    spec = ModelSpec.model_validate(entry())
    cfg = k8s_config(spec)
    assert "nvidia.com/gpu" not in cfg["container_config"]["resources"]["limits"]
    assert "pod_spec_config" not in cfg and "image" not in cfg["container_config"]
    assert pool_for(spec) == "cpu"


@given(st.integers(min_value=1, max_value=10**7))
def test_duration_round_trip(seconds):
    td = timedelta(seconds=seconds)
    assert parse_duration(format_duration(td)) == td


def test_cli_registry_list_and_validate(tmp_path, persistence_registry):
    runner = CliRunner()
    result = runner.invoke(app, ["registry", "list", "--registry", str(DEFAULT_REGISTRY_DIR)])
    assert result.exit_code == 0, result.output
    assert "fno-demo" in result.output and "persistence" in result.output
    assert "artifacts/fno-demo.zip" in result.output
    # Without --registry: the deployment's registry (WXPLAT_REGISTRY_DIR), as Dagster loads it.
    result = runner.invoke(app, ["registry", "list"])
    assert result.exit_code == 0 and "persistence" in result.output
    assert "fno-demo" not in result.output
    result = runner.invoke(app, ["registry", "validate", "--registry", str(persistence_registry)])
    assert result.exit_code == 0 and "OK 1 model(s)" in result.output
    bad = tmp_path / "bad"
    bad.mkdir()
    write(bad, "bad.yaml", entry(architecture="gpt"))
    result = runner.invoke(app, ["registry", "validate", "--registry", str(bad)])
    assert result.exit_code == 1
    assert "bad.yaml: field 'architecture'" in result.output


def test_registry_report_skips_bad_entries_and_keeps_the_rest(tmp_path):
    good = write(tmp_path, "a.yaml", entry(name="good"))
    typo = write(tmp_path, "b.yaml", entry(name="typo", timestep="6 hours"))
    broken = write(tmp_path, "c.yml", "name: [unclosed\n")
    dup = write(tmp_path, "d.yaml", entry(name="good", members=3))
    later = write(tmp_path, "e.yaml", entry(name="later"))
    report = load_registry_report(tmp_path)
    assert [s.name for s in report.specs] == ["good", "later"]
    assert report.files == {"good": good, "later": later}
    # The first file of a duplicated name wins; the second is reported, not silently merged.
    assert report.specs[0].members == 1
    assert len(report.problems) == 3
    for problem, path, needle in zip(
        report.problems,
        [typo, broken, dup],
        ["field 'timestep'", "malformed YAML", f"duplicates 'good', already defined in {good}"],
        strict=True,
    ):
        assert problem.startswith(f"{path}: ") and needle in problem and "\n" not in problem
    # The strict loader still refuses the directory, with the first problem.
    with pytest.raises(RegistryError) as err:
        load_registry(tmp_path)
    assert str(err.value) == report.problems[0]
    missing = load_registry_report(tmp_path / "nope")
    assert missing.specs == [] and "registry directory does not exist" in missing.problems[0]


def test_cli_registry_validate_reports_every_bad_entry(tmp_path):
    write(tmp_path, "a.yaml", entry(name="a", architecture="gpt"))
    write(tmp_path, "b.yaml", entry(name="b", members=0))
    write(tmp_path, "c.yaml", entry(name="c"))
    result = CliRunner().invoke(app, ["registry", "validate", "--registry", str(tmp_path)])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(lines) == 3, result.output
    assert lines[0].startswith(f"error: {tmp_path / 'a.yaml'}: field 'architecture'")
    assert lines[1].startswith(f"error: {tmp_path / 'b.yaml'}: field 'members'")
    assert lines[2] == f"error: 2 problem(s) in {tmp_path}"


def test_cli_registry_validate_checks_artifacts(tmp_path):
    artifact = tmp_path / "model.zip"
    artifact.write_bytes(b"weights of the trained model")
    actual = sha256_file(artifact)
    registry = tmp_path / "registry"
    registry.mkdir()

    def validate(uri: str, sha256: str | None):
        ref = {"uri": uri} if sha256 is None else {"uri": uri, "sha256": sha256}
        write(registry, "m.yaml", entry(name="m", architecture="fno", artifact=ref))
        return CliRunner().invoke(app, ["registry", "validate", "--registry", str(registry)])

    result = validate(str(artifact), actual)
    assert result.exit_code == 0 and "OK 1 model(s)" in result.output, result.output
    assert validate(str(artifact), None).exit_code == 0  # unpinned: only its existence
    result = validate(str(artifact), "0" * 64)
    assert result.exit_code == 1
    assert (
        f"error: {registry / 'm.yaml'}: field 'artifact.sha256' pins {'0' * 64}, but "
        f"{artifact} has sha256 {actual}." in result.output
    )
    result = validate(str(tmp_path / "absent.zip"), actual)
    assert result.exit_code == 1
    assert (
        f"error: {registry / 'm.yaml'}: field 'artifact.uri' points to "
        f"{tmp_path / 'absent.zip'}, which does not exist" in result.output
    )
    assert "Traceback" not in result.output
