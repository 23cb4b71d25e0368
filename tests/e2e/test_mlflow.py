"""MLflow end to end against a real ``mlflow server`` (SQLite backend, local artifact root).

``wxplat train --register`` logs a tiny FNO's run and registers its artifact; a registry
entry at ``models:/<name>/1`` (and ``@champion``) then runs a forecast through the Dagster
assets, the zip fetched once through the MLflow client into the artifact cache; a wrong
pin and a tampered copy in the server's artifact store are refused naming both digests.
"""

# No `from __future__ import annotations`: Dagster inspects annotations at runtime.

import os
import signal
import subprocess
import sys
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from tests.e2e.webserver import ROOT, free_port, platform_env, wait_until

pytestmark = pytest.mark.slow
mlflow = pytest.importorskip("mlflow", reason="MLflow is an extra: pip install -e '.[mlflow]'")

MODEL = "fno-mlflow"
DOMAIN, RESOLUTION = "w0_s-90_e340_n90", "dx20deg_dy20deg"  # the 20 degree grid: 10 x 18
T0 = datetime(2026, 1, 1, 6, tzinfo=UTC)
KEY = "2026-01-01T0600Z"
SERVER_START_TIMEOUT = 120  # seconds; the server creates its SQLite tables first
TRAIN_TIMEOUT = 300


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    """``mlflow server`` on 127.0.0.1 (a free port); its URL and artifact root."""
    tmp = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    log = tmp / "server.log"
    command = [
        str(Path(sys.executable).with_name("mlflow")),
        "server",
        "--backend-store-uri",
        f"sqlite:///{tmp}/mlflow.db",
        "--default-artifact-root",
        str(tmp / "artifacts"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    url = f"http://127.0.0.1:{port}"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            command, cwd=tmp, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:

        def healthy():
            with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
                return resp.status == 200

        wait_until(healthy, SERVER_START_TIMEOUT, "mlflow server /health", proc=proc, log=log)
        yield {"url": url, "artifacts": tmp / "artifacts"}
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # the server and its workers: our own group
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


def _entry(uri: str, sha256=None) -> dict:
    """The shipped fno-demo entry, tiny, on the 20 degree grid, with this artifact."""
    from model_registry.registry import DEFAULT_REGISTRY_DIR

    entry = yaml.safe_load((DEFAULT_REGISTRY_DIR / "fno-demo.yaml").read_text())
    entry.update(
        name=MODEL,
        description="A tiny FNO trained and registered through MLflow.",
        max_lead_time="24h",
        artifact={"uri": uri, **({"sha256": sha256} if sha256 else {})},
    )
    entry["training"].update(steps=4, hidden_channels=4, n_modes=[4, 8], n_layers=1, grid_step=20.0)
    return entry


def _write(registry: Path, entry: dict) -> Path:
    registry.mkdir(parents=True, exist_ok=True)
    path = registry / f"{entry['name']}.yaml"
    path.write_text(yaml.safe_dump(entry, sort_keys=False))
    return path


def _wxplat(env, *args):
    return subprocess.run(
        [sys.executable, "-m", "weather_assets.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=TRAIN_TIMEOUT,
    )


def _forecast(settings, spec):
    """Materialize normalized + forecast of one cycle from the spec (in process)."""
    import dagster as dg
    from dagster._core.definitions.observe import observe

    from resources.layout import raw_inputs_relpath
    from resources.storage import Storage, StorageResource
    from weather_assets.forecast.assets import build_model_assets
    from weather_assets.partitions import analysis_time_partitions
    from weather_assets.simulator import Grid, simulate_state

    storage = Storage(settings.storage_root)
    relpath = raw_inputs_relpath(settings, T0)
    if not storage.exists(relpath):
        storage.write_zarr(simulate_state(T0, Grid(-90.0, 90.0, 0.0, 340.0, 20.0)), relpath)
    assets = build_model_assets(
        spec,
        partitions_def=analysis_time_partitions(),
        raw_inputs_key=dg.AssetKey(["raw_inputs", "simulator"]),
        settings=settings,
    )
    instance = dg.DagsterInstance.ephemeral()
    observe([assets[0]], instance=instance)
    return dg.materialize(
        assets,
        partition_key=KEY,
        instance=instance,
        resources={"storage": StorageResource(root=settings.storage_root)},
        selection=[a.key for a in assets[1:3]],
    )


def test_train_register_and_forecast_from_a_models_uri(tmp_path, mlflow_server, monkeypatch):
    from model_registry.artifact import ArtifactError, fetch_artifact, sha256_file
    from model_registry.registry import load_spec
    from model_registry.resolve import artifact_cache_dir, load_model_artifact
    from weather_assets.settings import load_settings

    url = mlflow_server["url"]
    home = tmp_path / "home"
    env = platform_env(home)
    env.update(WXPLAT_MLFLOW_TRACKING_URI=url, WXPLAT_DOMAIN=DOMAIN, WXPLAT_RESOLUTION=RESOLUTION)
    train_registry = tmp_path / "train-registry"
    _write(train_registry, _entry(f"artifacts/{MODEL}.zip"))

    # 1. Train (logged to the server) and register with an alias.
    trained = _wxplat(
        env,
        "train", MODEL, "--start", "2025-12-01", "--end", "2025-12-03",
        "--evaluate-days", "1", "--registry", str(train_registry),
        "--register", "--alias", "champion",
    )  # fmt: skip
    assert trained.returncode == 0, trained.stdout + trained.stderr
    zip_path = train_registry / "artifacts" / f"{MODEL}.zip"
    sha = sha256_file(zip_path)
    assert f"sha256 {sha}" in trained.stdout
    assert f"registered models:/{MODEL}/1" in trained.stdout
    assert "mlflow run " in trained.stdout and url in trained.stdout

    # 2. The run and the version, as the MLflow client sees them on the server.
    client = mlflow.MlflowClient(tracking_uri=url, registry_uri=url)
    experiment = client.get_experiment_by_name("wxplat-training")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED"
    params = run.data.params
    assert params["model"] == MODEL and params["steps"] == "4" and params["hidden_channels"] == "4"
    assert params["artifact_sha256"] == sha and params["grid.step"] == "20.0"
    losses = client.get_metric_history(run.info.run_id, "loss")
    assert [m.step for m in losses] == [0, 1, 2, 3]
    ratios = {k: v for k, v in run.data.metrics.items() if k.startswith("rmse_24h_ratio.")}
    assert "rmse_24h_ratio.2m_temperature" in ratios and all(v > 0 for v in ratios.values())
    assert run.data.metrics["rmse_24h_persistence.2m_temperature"] > 0
    logged = {a.path for a in client.list_artifacts(run.info.run_id, "artifact")}
    assert logged == {f"artifact/{MODEL}.zip"}
    version = client.get_model_version(MODEL, "1")
    assert version.run_id == run.info.run_id and version.tags["sha256"] == sha
    assert client.get_model_version_by_alias(MODEL, "champion").version == "1"

    # 3. A registry entry at models:/<name>/1 with the pin: a forecast from it.
    # The process's own settings too: code that fetches without a settings object (the
    # artifact observation) reads the environment, as a deployment's processes do.
    for name, value in env.items():
        if name.startswith("WXPLAT_"):
            monkeypatch.setenv(name, value)
    settings = load_settings()
    registry = tmp_path / "registry"
    spec = load_spec(_write(registry, _entry(f"models:/{MODEL}/1", sha)))
    result = _forecast(settings, spec)
    assert result.success
    meta = result.asset_materializations_for_node(f"forecast__{MODEL.replace('-', '_')}")[0]
    assert meta.metadata["artifact_sha256"].value == sha
    cached = artifact_cache_dir(settings) / f"{sha}.zip"
    assert cached.is_file() and sha256_file(cached) == sha  # downloaded once, named by digest
    by_alias = load_spec(_write(registry, _entry(f"models:/{MODEL}@champion", sha)))
    assert load_model_artifact(by_alias, settings).sha256 == sha

    # 4. The guard: a wrong pin is refused naming both digests, before anything loads.
    wrong = "0" * 64
    bad = load_spec(_write(tmp_path / "bad", _entry(f"models:/{MODEL}/1", wrong)))
    with pytest.raises(ArtifactError) as err:
        load_model_artifact(bad, settings)
    assert f"sha256 {sha}" in str(err.value) and f"expects {wrong}" in str(err.value)
    assert not (artifact_cache_dir(settings) / f"{wrong}.zip").exists()

    # ... and so is a copy tampered with in the server's artifact store.
    (stored,) = mlflow_server["artifacts"].rglob(f"{MODEL}.zip")
    stored.write_bytes(stored.read_bytes() + b"tampered")
    tampered = sha256_file(stored)
    with pytest.raises(ArtifactError) as err:
        fetch_artifact(f"models:/{MODEL}@champion", sha, tmp_path / "fresh-cache", settings)
    assert f"sha256 {tampered}" in str(err.value) and f"expects {sha}" in str(err.value)
    assert not any((tmp_path / "fresh-cache").glob("*.zip"))


def test_the_product_champion_alias_follows_the_champion(tmp_path, mlflow_server, monkeypatch):
    """What a promotion does where MLflow is configured: ``champion-<product>`` names the
    version of exactly the artifact the product publishes, on one model at a time."""
    from model_registry import tracking
    from weather_assets.settings import load_settings

    url = mlflow_server["url"]
    monkeypatch.setenv("WXPLAT_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("WXPLAT_MLFLOW_TRACKING_URI", raising=False)
    assert not tracking.mlflow_configured(load_settings())  # nothing registered, no URI
    monkeypatch.setenv("WXPLAT_MLFLOW_TRACKING_URI", url)
    settings = load_settings()
    assert tracking.mlflow_configured(settings)
    shas = {}
    for name, payload in (("prod-a", b"a" * 100), ("prod-b", b"b" * 100)):
        zip_path = tmp_path / f"{name}.zip"
        zip_path.write_bytes(payload)
        version, shas[name] = tracking.register_artifact(settings, zip_path, name)
        assert version == "1"
    client = mlflow.MlflowClient(tracking_uri=url, registry_uri=url)
    alias = tracking.champion_alias("demo-product")

    def holders() -> dict[str, str]:
        out = {}
        for name in ("prod-a", "prod-b"):
            aliases = client.get_registered_model(name).aliases
            if alias in aliases:
                out[name] = str(aliases[alias])
        return out

    target = tracking.set_champion_alias(
        settings, "demo-product", ("prod-a", shas["prod-a"]), ["prod-b"]
    )
    assert target == "prod-a/1" and holders() == {"prod-a": "1"}
    # A promotion of prod-b moves it: one model holds it at a time.
    target = tracking.set_champion_alias(
        settings, "demo-product", ("prod-b", shas["prod-b"]), ["prod-a"]
    )
    assert target == "prod-b/1" and holders() == {"prod-b": "1"}
    assert client.get_model_version_by_alias("prod-b", alias).tags["sha256"] == shas["prod-b"]
    # A champion whose artifact is not a registered version: no model keeps a stale alias.
    assert (
        tracking.set_champion_alias(settings, "demo-product", ("prod-a", "0" * 64), ["prod-b"])
        is None
    )
    assert holders() == {}
