"""MLflow glue: training runs, model versions and ``models:/`` artifact URIs.

``wxplat train`` logs its parameters, losses, held-out scores and artifact zip to the
tracking store of ``WXPLAT_MLFLOW_TRACKING_URI`` (a server in production); unset, a local
SQLite store under the platform's home (``$WXPLAT_HOME/mlflow``), no server needed.
``wxplat artifact register`` makes an artifact zip a version of a registered model, and a
registry entry's ``artifact.uri`` may then be ``models:/<name>/<version>`` or
``models:/<name>@<alias>``: :func:`download_model_artifact` resolves it through the MLflow
client (``model_registry.artifact.fetch_artifact`` caches it and checks the pinned sha256).

``mlflow`` is imported only inside the functions that talk to a store (an optional extra:
``pip install -e '.[mlflow]'``); parsing URIs needs nothing.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from weather_assets.settings import PlatformSettings

MODELS_SCHEME = "models:/"
DEFAULT_EXPERIMENT = "wxplat-training"
ARTIFACT_DIR = "artifact"  # the zip's folder in a run's artifacts (a model version's source)
MAX_LOSS_POINTS = 500  # loss metric points per run: every step up to this, then every N-th
# A registered model name as MLflow takes it in a URI; a version is digits, an alias a word.
_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]*"
_MODELS_URI = re.compile(
    rf"^models:/(?P<name>{_NAME})(?:/(?P<version>[0-9]+)|@(?P<alias>\w[\w-]*))$"
)


class TrackingError(ValueError):
    """A ``models:/`` URI is malformed, MLflow is missing, or the store refused a request."""


@dataclass(frozen=True)
class ModelsUri:
    """A parsed ``models:/<name>/<version>`` or ``models:/<name>@<alias>``."""

    name: str
    version: str | None = None
    alias: str | None = None

    def __str__(self) -> str:
        tail = f"/{self.version}" if self.version is not None else f"@{self.alias}"
        return f"{MODELS_SCHEME}{self.name}{tail}"


def is_models_uri(uri: str) -> bool:
    """True for URIs of the MLflow model registry (``models:/...``)."""
    return uri.startswith(MODELS_SCHEME)


def parse_models_uri(uri: str) -> ModelsUri:
    """``models:/<name>/<version>`` or ``models:/<name>@<alias>``; ``TrackingError`` else."""
    m = _MODELS_URI.match(uri)
    if m is None:
        raise TrackingError(
            f"artifact uri {uri!r} is not models:/<name>/<version> or models:/<name>@<alias> "
            "(a version is a number; stages are not supported, use an alias)"
        )
    return ModelsUri(m["name"], m["version"], m["alias"])


def tracking_uri(settings: PlatformSettings) -> str:
    """``WXPLAT_MLFLOW_TRACKING_URI``, else the local SQLite store under the home."""
    if settings.mlflow_tracking_uri:
        return settings.mlflow_tracking_uri
    return f"sqlite:///{local_store_dir(settings) / 'mlflow.db'}"


def local_store_dir(settings: PlatformSettings) -> Path:
    """Folder of the default local store: ``mlflow.db`` and ``artifacts/``."""
    return settings.home / "mlflow"


def _is_local_store(uri: str) -> bool:
    return uri.startswith(("sqlite:", "file:")) or "://" not in uri


def mlflow_installed() -> bool:
    """True when the ``mlflow`` package can be imported (without importing it)."""
    import importlib.util

    return importlib.util.find_spec("mlflow") is not None


def _mlflow():
    try:
        import mlflow
    except ImportError:
        raise TrackingError(
            "MLflow is not installed; install the extra: pip install -e '.[mlflow]'"
        ) from None
    return mlflow


def client(settings: PlatformSettings) -> MlflowClient:
    """An MLflow client on the tracking store (which is also the model registry)."""
    mlflow = _mlflow()
    uri = tracking_uri(settings)
    if uri.startswith("sqlite:"):
        local_store_dir(settings).mkdir(parents=True, exist_ok=True)
    return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)


def experiment_id(settings: PlatformSettings, name: str = DEFAULT_EXPERIMENT) -> str:
    """The experiment's id, created when missing (local stores keep artifacts under home)."""
    c = client(settings)
    found = c.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    location = None
    if _is_local_store(tracking_uri(settings)):
        location = (local_store_dir(settings) / "artifacts").as_uri()
    return c.create_experiment(name, artifact_location=location)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _flat_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flat_params(value, f"{name}."))
        else:
            out[name] = str(value)[:6000]
    return out


def loss_points(losses: list[float], max_points: int = MAX_LOSS_POINTS) -> list[tuple[int, float]]:
    """(step, loss) pairs to log: every step, or every N-th (and the last) for long runs."""
    if not losses:
        return []
    every = max(1, -(-len(losses) // max_points))
    points = [(i, float(v)) for i, v in enumerate(losses) if i % every == 0]
    if points[-1][0] != len(losses) - 1:
        points.append((len(losses) - 1, float(losses[-1])))
    return points


def log_training(
    settings: PlatformSettings,
    *,
    model_name: str,
    params: Mapping[str, Any],
    losses: list[float],
    artifact: Path,
    scores: Mapping[str, tuple[float, float]] | None = None,
    seconds: float | None = None,
    experiment: str = DEFAULT_EXPERIMENT,
) -> str:
    """Log one training run (params, losses, RMSE vs persistence, the zip); its run id."""
    from mlflow.entities import Metric, Param

    c = client(settings)
    exp = experiment_id(settings, experiment)
    sha = _sha256(Path(artifact))
    run = c.create_run(
        exp,
        run_name=f"train-{model_name}",
        tags={"wxplat.model": model_name, "wxplat.artifact_sha256": sha},
    )
    run_id = run.info.run_id
    try:
        now = _now_ms()
        metrics = [Metric("loss", v, now, step) for step, v in loss_points(losses)]
        if seconds is not None:
            metrics.append(Metric("train_seconds", float(seconds), now, 0))
        for feature, (model_rmse, pers_rmse) in (scores or {}).items():
            metrics += [
                Metric(f"rmse_24h.{feature}", model_rmse, now, 0),
                Metric(f"rmse_24h_persistence.{feature}", pers_rmse, now, 0),
                Metric(f"rmse_24h_ratio.{feature}", model_rmse / pers_rmse, now, 0),
            ]
        plist = [Param(k, v) for k, v in _flat_params(params).items()]
        for i in range(0, max(len(metrics), len(plist), 1), 100):  # the REST API's batch limit
            c.log_batch(run_id, metrics=metrics[i : i + 100], params=plist[i : i + 100])
        if scores:
            c.log_text(run_id, rmse_table(scores), "rmse_vs_persistence.md")
        c.log_artifact(run_id, str(artifact), ARTIFACT_DIR)
        c.set_terminated(run_id, "FINISHED")
    except BaseException:
        c.set_terminated(run_id, "FAILED")
        raise
    return run_id


def _now_ms() -> int:
    import time

    return int(time.time() * 1000)


def rmse_table(scores: Mapping[str, tuple[float, float]]) -> str:
    """The held-out RMSE table (markdown), as ``wxplat train`` prints it."""
    lines = ["| feature | model | persistence | ratio |", "|---|---:|---:|---:|"]
    for feature, (m, p) in scores.items():
        lines.append(f"| {feature} | {m:.4g} | {p:.4g} | {m / p:.3f} |")
    return "\n".join(lines) + "\n"


def register_artifact(
    settings: PlatformSettings,
    artifact: Path,
    name: str,
    *,
    run_id: str | None = None,
    aliases: Iterable[str] = (),
    experiment: str = DEFAULT_EXPERIMENT,
) -> tuple[str, str]:
    """Register an artifact zip as a new version of model ``name``: (version, sha256).

    With ``run_id`` (a ``log_training`` run) the version's source is that run's copy of the
    zip; otherwise a run holding only the zip is logged first.
    """
    artifact = Path(artifact)
    if not artifact.is_file():
        raise TrackingError(f"artifact file not found: {artifact}")
    sha = _sha256(artifact)
    c = client(settings)
    if run_id is None:
        run = c.create_run(
            experiment_id(settings, experiment),
            run_name=f"register-{name}",
            tags={"wxplat.model": name, "wxplat.artifact_sha256": sha},
        )
        run_id = run.info.run_id
        c.log_artifact(run_id, str(artifact), ARTIFACT_DIR)
        c.set_terminated(run_id, "FINISHED")
    run = c.get_run(run_id)
    if c.search_registered_models(filter_string=f"name='{name}'") == []:
        c.create_registered_model(name)
    mv = c.create_model_version(
        name,
        source=f"{run.info.artifact_uri.rstrip('/')}/{ARTIFACT_DIR}",
        run_id=run_id,
        tags={"sha256": sha, "zip": artifact.name},
    )
    for alias in aliases:
        c.set_registered_model_alias(name, alias, mv.version)
    return str(mv.version), sha


def download_model_artifact(uri: str, dest: Path, settings: PlatformSettings | None = None) -> Path:
    """Download the zip of ``models:/<name>/<version>`` (or ``@alias``) to the file ``dest``.

    Resolved through the MLflow client: the version's source folder holds one ``.zip``.
    The caller checks the digest.
    """
    ref = parse_models_uri(uri)
    if settings is None:
        from weather_assets.settings import load_settings

        settings = load_settings()
    mlflow = _mlflow()
    c = client(settings)
    try:
        mv = (
            c.get_model_version(ref.name, ref.version)
            if ref.version is not None
            else c.get_model_version_by_alias(ref.name, ref.alias)
        )
    except mlflow.exceptions.MlflowException as exc:
        raise TrackingError(f"cannot resolve {uri} at {tracking_uri(settings)}: {exc}") from None
    with tempfile.TemporaryDirectory(prefix="wxplat-mlflow-") as tmp:
        local = Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=mv.source, dst_path=tmp, tracking_uri=tracking_uri(settings)
            )
        )
        zips = [local] if local.is_file() else sorted(local.rglob("*.zip"))
        if len(zips) != 1:
            raise TrackingError(
                f"{uri} (version {mv.version}, source {mv.source}) holds {len(zips)} zip files, "
                "not one artifact"
            )
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(zips[0], dest)
    return dest


def mlflow_configured(settings: PlatformSettings) -> bool:
    """MLflow is in use here: installed, and a tracking URI set or the local store made
    (``wxplat train --register`` or ``wxplat artifact register`` ran against it)."""
    if not mlflow_installed():
        return False
    return bool(settings.mlflow_tracking_uri) or (local_store_dir(settings) / "mlflow.db").is_file()


def champion_alias(product: str) -> str:
    """The MLflow alias that marks a product's champion: ``champion-<product>``."""
    return f"champion-{product}"


def set_champion_alias(
    settings: PlatformSettings,
    product: str,
    champion: tuple[str, str | None],
    others: Iterable[str],
) -> str | None:
    """Point ``champion-<product>`` at the champion's model version; take it off the others.

    ``champion`` is (registered model name, sha256 of the artifact the platform runs); the
    version is the one of that model whose ``sha256`` tag is the artifact's (the newest if
    several), so ``models:/<name>@champion-<product>`` serves exactly what the product
    publishes. ``others`` are the product's other registered model names. Returns
    ``"<name>/<version>"``, or None when the champion's artifact is not registered (then no
    model of the product keeps the alias: a stale alias would name the wrong model).
    """
    mlflow = _mlflow()
    c = client(settings)
    alias = champion_alias(product)
    name, sha256 = champion
    version = None
    if sha256 is not None:
        try:
            found = c.search_model_versions(f"name='{name}'")
        except mlflow.exceptions.MlflowException:
            found = []
        matching = [int(mv.version) for mv in found if mv.tags.get("sha256") == sha256]
        version = str(max(matching)) if matching else None
    if version is not None:  # set first: some model holds the alias at every moment
        c.set_registered_model_alias(name, alias, version)
    for model in {*others, name}:
        if model == name and version is not None:
            continue
        try:
            c.delete_registered_model_alias(model, alias)
        except mlflow.exceptions.MlflowException:  # not registered, or no such alias
            pass
    return f"{name}/{version}" if version is not None else None


def registered_name(model: str, artifact_uri: str | None) -> str:
    """The MLflow registered model of a registry entry: the one its ``models:/`` URI names,
    else the entry's own name (what ``wxplat artifact register`` uses by default)."""
    if artifact_uri and is_models_uri(artifact_uri):
        return parse_models_uri(artifact_uri).name
    return model
