"""Training on simulator history: the FNO beats persistence at 24 h; the train CLI."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from model_registry.artifact import load_artifact, sha256_file
from model_registry.cli import app
from model_registry.registry import DEFAULT_REGISTRY_DIR
from model_registry.training import evaluate_vs_persistence, simulate_history, train_fno
from weather_assets.simulator import Grid

GRID = Grid(-90.0, 90.0, 0.0, 350.0, 10.0)  # 19 x 36: trains in a few seconds
START = pd.Timestamp("2026-01-01")
END = START + pd.Timedelta(days=20)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("train") / "small.zip"
    return train_fno(
        START,
        END,
        out=out,
        name="small",
        steps=300,
        hidden_channels=8,
        n_modes=(4, 8),
        n_layers=2,
        grid=GRID,
        progress=False,
        version="test",
    )


def test_artifact_is_valid_and_describes_training(trained):
    loaded = load_artifact(trained.path)
    assert loaded.sha256 == trained.sha256 == sha256_file(trained.path)
    m = loaded.manifest
    assert m.name == "small" and m.version == "test" and m.architecture.name == "fno"
    assert m.grid.latitude.size == 19 and m.grid.longitude.size == 36
    assert m.provenance["training_data"]["samples"] == 20 * 4 - 1
    assert m.provenance["training_data"]["source"].endswith("simulate_state")
    assert trained.losses[-1] < 0.5 * trained.losses[0]


def test_beats_persistence_at_24h_on_held_out_cycles(trained):
    held_out = simulate_history(END + pd.Timedelta(days=3), END + pd.Timedelta(days=6), grid=GRID)
    scores = evaluate_vs_persistence(trained.model, trained.stats, held_out, trained.features)
    wins = [f for f, (model, persistence) in scores.items() if model < persistence]
    assert len(wins) > len(scores) / 2, scores
    # Geopotential moves with the waves: the model must beat persistence clearly there.
    assert scores["geopotential_500hPa"][0] < 0.7 * scores["geopotential_500hPa"][1]


def test_train_cli_uses_registry_defaults(tmp_path):
    entry = yaml.safe_load((DEFAULT_REGISTRY_DIR / "fno-demo.yaml").read_text())
    entry["training"].update(grid_step=30.0, hidden_channels=4, n_modes=[2, 4], n_layers=1)
    entry["artifact"]["uri"] = "artifacts/fno-demo.zip"
    (tmp_path / "pyproject.toml").write_text("")
    registry = tmp_path / "models"
    registry.mkdir()
    (registry / "fno-demo.yaml").write_text(yaml.safe_dump(entry))
    result = CliRunner().invoke(
        app,
        [
            "train",
            "fno-demo",
            "--start",
            "2026-01-01",
            "--end",
            "2026-01-03",
            "--steps",
            "3",
            "--registry",
            str(registry),
        ],
    )
    assert result.exit_code == 0, result.output
    zip_path = tmp_path / "artifacts" / "fno-demo.zip"
    assert str(zip_path) in result.output
    assert f"sha256 {sha256_file(zip_path)}" in result.output
    manifest = load_artifact(zip_path).manifest
    assert manifest.grid.latitude.size == 7 and manifest.provenance["training_data"]["samples"] == 7
    assert Path(zip_path).stat().st_size > 0


def test_train_cli_rejects_persistence():
    result = CliRunner().invoke(
        app, ["train", "persistence", "--start", "2026-01-01", "--end", "2026-01-02"]
    )
    assert result.exit_code == 1 and "only fno/sfno train" in result.output
