"""A registry entry's artifact at run time: fetched, cached, validated against the entry.

Where the forecast assets, their sensors and the verification find a model's weights and
statistics, and the ``model_config`` path component of its stores (the artifact version,
``default`` for models without an artifact).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from model_registry.artifact import LoadedArtifact, fetch_artifact, load_artifact
from model_registry.spec import ModelSpec, format_duration

if TYPE_CHECKING:
    from weather_assets.settings import PlatformSettings

DEFAULT_MODEL_CONFIG = "default"  # path component of models without an artifact


def artifact_cache_dir(settings: PlatformSettings) -> Path:
    """Where remote artifacts are downloaded (named by sha256)."""
    return settings.home / "artifacts"


@lru_cache(maxsize=4)
def _load_cached(path: str, size: int, mtime_ns: int, sha256: str | None) -> LoadedArtifact:
    # Keyed on the file's size and mtime too, so a retrained local artifact is reloaded.
    return load_artifact(path, expected_sha256=sha256)


def load_model_artifact(spec: ModelSpec, settings: PlatformSettings) -> LoadedArtifact | None:
    """The spec's validated artifact (fetched and cached), or None when it has none."""
    if spec.artifact is None or spec.artifact_location is None:
        return None
    path, _ = fetch_artifact(
        spec.artifact_location, spec.artifact.sha256, artifact_cache_dir(settings), settings
    )
    st = path.stat()
    loaded = _load_cached(str(path), st.st_size, st.st_mtime_ns, spec.artifact.sha256)
    problems = []
    if list(loaded.manifest.input_features) != spec.input_features:
        problems.append(
            f"input features {list(loaded.manifest.input_features)} != registry "
            f"{spec.input_features}"
        )
    if list(loaded.manifest.output_features) != spec.output_features:
        problems.append("output features differ from the registry's")
    if list(loaded.manifest.forcings) != list(spec.forcings):
        problems.append(
            f"forcings {list(loaded.manifest.forcings)} != registry {list(spec.forcings)} "
            "(retrain the artifact for this entry)"
        )
    if loaded.manifest.timestep != spec.timestep:
        problems.append(
            f"timestep {format_duration(loaded.manifest.timestep)} != registry "
            f"{format_duration(spec.timestep)}"
        )
    if loaded.manifest.architecture.name != spec.architecture:
        problems.append(
            f"architecture {loaded.manifest.architecture.name!r} != registry {spec.architecture!r}"
        )
    if problems:
        raise ValueError(f"artifact {path} does not fit model {spec.name!r}: {'; '.join(problems)}")
    return loaded


def model_config_of(loaded: LoadedArtifact | None) -> str:
    """The ``model_config`` path component: the artifact version, else ``default``."""
    return loaded.version if loaded is not None else DEFAULT_MODEL_CONFIG


def resolve_model_config(spec: ModelSpec, settings: PlatformSettings) -> str:
    """The ``model_config`` path component of a model's stores.

    Resolving it fetches and hashes the artifact: resolve once per model and run, then pass
    the result on.
    """
    return model_config_of(load_model_artifact(spec, settings))
