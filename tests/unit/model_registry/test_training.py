"""Training on simulator history: the FNO beats persistence at 24 h everywhere; the train CLI."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from model_registry.artifact import load_artifact, sha256_file
from model_registry.registry import DEFAULT_REGISTRY_DIR
from model_registry.training import (
    evaluate_vs_persistence,
    horizon_loss_weights,
    lat_weighted_rmse,
    simulate_history,
    train_fno,
)
from tests.unit.weather_assets.verification.test_scores import persistence_forecast
from weather_assets.canonical import features_of
from weather_assets.cli import app
from weather_assets.forecast.normalize import compute_stats, stack_features
from weather_assets.simulator import Grid
from weather_assets.verification.scores import aggregate_scores, feature_label, verify_forecast

GRID = Grid(-90.0, 90.0, 0.0, 350.0, 10.0)  # 19 x 36: trains in a few seconds
START = pd.Timestamp("2026-01-01")
END = START + pd.Timedelta(days=20)
FORCINGS = ["cos_local_hour", "sin_local_hour"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("train") / "small.zip"
    return train_fno(
        START,
        END,
        out=out,
        name="small",
        # The smallest setting found to beat persistence on all 8 features with a margin
        # (24 h RMSE ratios 0.42 at most, also for other training windows): ~5 s on 2 cores.
        steps=400,
        hidden_channels=16,
        n_modes=(8, 16),
        n_layers=2,
        learning_rate=1e-2,
        forcings=FORCINGS,
        grid=GRID,
        progress=False,
        version="test",
    )


def test_artifact_is_valid_and_describes_training(trained):
    loaded = load_artifact(trained.path)
    assert loaded.sha256 == trained.sha256 == sha256_file(trained.path)
    m = loaded.manifest
    assert m.name == "small" and m.version == "test" and m.architecture.name == "fno"
    assert list(m.forcings) == FORCINGS == trained.forcings and m.in_channels == 8 + 2
    assert m.grid.latitude.size == 19 and m.grid.longitude.size == 36
    assert m.provenance["training_data"]["samples"] == 20 * 4 - 1
    assert m.provenance["training_data"]["source"].endswith("simulate_state")
    weights = m.provenance["training_data"]["loss_weights"]
    assert list(weights) == trained.features and weights["2m_temperature"] == max(weights.values())
    assert trained.losses[-1] < 0.5 * trained.losses[0]


def test_beats_persistence_at_24h_on_held_out_cycles(trained):
    held_out = simulate_history(END + pd.Timedelta(days=3), END + pd.Timedelta(days=6), grid=GRID)
    scores = evaluate_vs_persistence(
        trained.model, trained.stats, held_out, trained.features, forcings=trained.forcings
    )
    assert len(scores) == 8
    losses = {f: (model, pers) for f, (model, pers) in scores.items() if not model < pers}
    assert not losses, f"persistence wins on {losses}; all scores {scores}"
    # Geopotential moves with the waves: the model must beat persistence clearly there.
    assert scores["geopotential_500hPa"][0] < 0.7 * scores["geopotential_500hPa"][1]
    # 24 h persistence repeats the diurnal cycle exactly; with the local-hour forcings the
    # model follows the sun too and wins clearly on 2 m temperature.
    assert scores["2m_temperature"][0] < 0.7 * scores["2m_temperature"][1], scores


def test_held_out_rmse_is_the_verification_rmse(trained):
    """Training's evaluation and the verification score the same forecasts the same way."""
    held_out = simulate_history(END, END + pd.Timedelta(days=2), grid=GRID)
    scores = evaluate_vs_persistence(
        trained.model, trained.stats, held_out, trained.features, forcings=trained.forcings
    )
    lead = pd.to_timedelta([24], unit="h")
    steps = 4  # 24 h in 6 h steps
    tables = [
        verify_forecast(
            persistence_forecast(held_out.isel(time=[i]), lead),
            held_out.isel(time=[i + steps]),
            model="persistence",
        ).table
        for i in range(held_out.sizes["time"] - steps)
    ]
    agg = aggregate_scores(pd.concat(tables, ignore_index=True))
    rmse = agg[agg["metric"] == "rmse"]
    verified = {
        feature_label(v, lev): x
        for v, lev, x in zip(rmse["variable"], rmse["level"], rmse["value"], strict=True)
    }
    assert set(verified) == set(scores)
    for feature, (_, persistence) in scores.items():
        assert persistence == pytest.approx(verified[feature], rel=1e-5), feature
    # One cycle: the table's RMSE is lat_weighted_rmse of that cycle alone.
    states = stack_features(held_out, trained.features)
    one = lat_weighted_rmse(
        states.values[:1], states.values[steps : steps + 1], states["latitude"].values
    )
    first = tables[0][tables[0]["metric"] == "rmse"]
    first = {
        feature_label(v, lev): x
        for v, lev, x in zip(first["variable"], first["level"], first["value"], strict=True)
    }
    for feature, value in zip(trained.features, one, strict=True):
        assert first[feature] == pytest.approx(value, rel=1e-5), feature


def test_horizon_loss_weights_raise_2m_temperature():
    hist = simulate_history(START, START + pd.Timedelta(days=4), grid=GRID)
    states = stack_features(hist, features_of(hist))
    stats = compute_stats(states)
    six, day = timedelta(hours=6), timedelta(hours=24)
    w = dict(zip(features_of(hist), horizon_loss_weights(states, stats, six, day), strict=True))
    assert np.isclose(np.mean(list(w.values())), 1.0)
    # Its 6 h change is mostly the diurnal wave, which cancels over 24 h.
    assert w["2m_temperature"] > 5 * max(v for k, v in w.items() if k != "2m_temperature")
    short = states.isel(time=slice(0, 3))  # shorter than the horizon: equal weights
    np.testing.assert_array_equal(horizon_loss_weights(short, stats, six, day), np.ones(8))


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
            "--evaluate-days",
            "1",
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
    assert list(manifest.forcings) == entry["forcings"] == FORCINGS
    assert "| 2m_temperature |" in result.output  # the evaluation ran with the forcings
    assert Path(zip_path).stat().st_size > 0


def test_train_cli_rejects_persistence():
    result = CliRunner().invoke(
        app, ["train", "persistence", "--start", "2026-01-01", "--end", "2026-01-02"]
    )
    assert result.exit_code == 1 and "only fno/sfno train" in result.output
