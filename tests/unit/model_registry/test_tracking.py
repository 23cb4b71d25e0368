"""MLflow glue: ``models:/`` URIs, the default local store, training runs and versions."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from model_registry.spec import ArtifactRef
from model_registry.tracking import (
    ModelsUri,
    TrackingError,
    is_models_uri,
    loss_points,
    parse_models_uri,
    rmse_table,
    tracking_uri,
)
from weather_assets.settings import load_settings

SHA = "ab" * 32


@pytest.mark.parametrize(
    ("uri", "parsed"),
    [
        ("models:/fno-demo/1", ModelsUri("fno-demo", version="1")),
        ("models:/fno-demo/12", ModelsUri("fno-demo", version="12")),
        ("models:/fno-demo@champion", ModelsUri("fno-demo", alias="champion")),
        ("models:/team.fno_v2@candidate-1", ModelsUri("team.fno_v2", alias="candidate-1")),
    ],
)
def test_models_uris_parse_and_print_back(uri, parsed):
    assert is_models_uri(uri)
    assert parse_models_uri(uri) == parsed
    assert str(parsed) == uri


@pytest.mark.parametrize(
    "uri",
    [
        "models:/fno-demo",  # neither version nor alias
        "models:/fno-demo/latest",
        "models:/fno-demo/Production",  # stages: use an alias
        "models:/fno-demo/1/extra",
        "models:/fno-demo@",
        "models:fno-demo/1",
        "models:/@champion",
    ],
)
def test_malformed_models_uris_are_refused(uri):
    with pytest.raises(TrackingError, match="models:/<name>/<version>"):
        parse_models_uri(uri)


def test_registry_entries_take_models_uris_only_with_a_sha256():
    ref = ArtifactRef(uri="models:/fno-demo@champion", sha256=SHA.upper())
    assert ref.is_remote and ref.sha256 == SHA
    assert ref.resolve(Path("/registry")) == "models:/fno-demo@champion"
    with pytest.raises(ValueError, match="sha256 is required"):
        ArtifactRef(uri="models:/fno-demo/1")
    with pytest.raises(ValueError, match="not models:/<name>/<version>"):
        ArtifactRef(uri="models:/fno-demo/latest", sha256=SHA)


def test_the_default_store_is_sqlite_under_the_home_and_the_setting_overrides_it(tmp_path):
    home = tmp_path / "home"
    settings = load_settings({"WXPLAT_HOME": str(home)})
    assert settings.mlflow_tracking_uri is None
    assert tracking_uri(settings) == f"sqlite:///{home.resolve()}/mlflow/mlflow.db"
    server = load_settings(
        {"WXPLAT_HOME": str(home), "WXPLAT_MLFLOW_TRACKING_URI": "http://mlflow:5000"}
    )
    assert tracking_uri(server) == "http://mlflow:5000"


def test_loss_points_keep_every_step_of_short_runs_and_thin_long_ones():
    assert loss_points([]) == []
    assert loss_points([3.0, 2.0, 1.0]) == [(0, 3.0), (1, 2.0), (2, 1.0)]
    points = loss_points([float(i) for i in range(1001)], max_points=100)
    assert len(points) <= 102 and points[0] == (0, 0.0) and points[-1] == (1000, 1000.0)


def test_rmse_table_is_the_printed_one():
    table = rmse_table({"2m_temperature": (1.0, 2.0)})
    assert "| 2m_temperature | 1 | 2 | 0.500 |" in table


def test_a_run_and_a_version_in_the_default_local_store(tmp_path):
    """No server: the store is a SQLite file under the home; the zip comes back by alias."""
    pytest.importorskip("mlflow")
    from model_registry import tracking
    from model_registry.artifact import ArtifactError, fetch_artifact

    settings = load_settings({"WXPLAT_HOME": str(tmp_path / "home")})
    zip_path = tmp_path / "model.zip"
    zip_path.write_bytes(b"not really a zip, bytes are all the store sees")
    sha = hashlib.sha256(zip_path.read_bytes()).hexdigest()
    run_id = tracking.log_training(
        settings,
        model_name="fno-unit",
        params={"steps": 3, "grid": {"step": 30.0}},
        losses=[1.0, 0.5, 0.25],
        artifact=zip_path,
        scores={"2m_temperature": (1.0, 2.0)},
    )
    version, digest = tracking.register_artifact(
        settings, zip_path, "fno-unit", run_id=run_id, aliases=["champion"]
    )
    assert (version, digest) == ("1", sha)
    assert (tmp_path / "home" / "mlflow" / "mlflow.db").is_file()
    assert any((tmp_path / "home" / "mlflow" / "artifacts").rglob("model.zip"))

    client = tracking.client(settings)
    run = client.get_run(run_id)
    assert run.data.params["grid.step"] == "30.0" and run.data.params["steps"] == "3"
    assert run.data.metrics["rmse_24h_ratio.2m_temperature"] == 0.5
    history = client.get_metric_history(run_id, "loss")
    assert [(m.step, m.value) for m in history] == [(0, 1.0), (1, 0.5), (2, 0.25)]
    assert run.data.tags["wxplat.artifact_sha256"] == sha

    cache = tmp_path / "cache"
    path, got = fetch_artifact("models:/fno-unit@champion", sha, cache, settings)
    assert got == sha and path.read_bytes() == zip_path.read_bytes()
    # Cached by digest: a second fetch reads the cache, not the store.
    assert fetch_artifact("models:/fno-unit/1", sha, cache, settings)[0] == path
    with pytest.raises(ArtifactError, match=f"sha256 {sha}, the registry expects {'0' * 64}"):
        fetch_artifact("models:/fno-unit/1", "0" * 64, cache, settings)
    with pytest.raises(TrackingError, match="cannot resolve models:/fno-unit/7"):
        fetch_artifact("models:/fno-unit/7", "1" * 64, cache, settings)
    # Registering the zip on its own logs a run holding only the zip: version 2.
    assert tracking.register_artifact(settings, zip_path, "fno-unit")[0] == "2"
    json.dumps(run.data.params)  # plain strings
