"""Load and validate the model registry: one YAML file per model in a directory.

Errors are one sentence naming the file, the field and the reason, so that an operator
can fix a broken entry without reading a traceback.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from model_registry.spec import ModelSpec

DEFAULT_REGISTRY_DIR = Path(__file__).resolve().parent / "models"


class RegistryError(ValueError):
    """A registry entry is malformed, invalid or duplicated."""


def project_root_for(directory: Path) -> Path:
    """Nearest ancestor holding ``pyproject.toml`` (where relative artifact paths start)."""
    directory = Path(directory).resolve()
    for candidate in (directory, *directory.parents):
        if (candidate / "pyproject.toml").is_file():
            return candidate
    return directory


def _field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if not str(p).startswith("function-")]
    return ".".join(parts) or "<entry>"


def explain(path: Path, err: ValidationError, fields: Iterable[str]) -> str:
    """One sentence naming the file, the first invalid field and why (``fields``: the valid
    top-level fields, listed when an unknown one is given)."""
    first = err.errors()[0]
    field = _field(first["loc"])
    if first["type"] == "extra_forbidden":
        reason = "is not a known field"
        if len(first["loc"]) == 1:
            reason += f"; valid fields are: {', '.join(sorted(fields))}"
    elif first["type"] == "missing":
        reason = "is required but missing"
    else:
        reason = first["msg"].removeprefix("Value error, ")
        if "input" in first and first["type"] not in ("value_error", "assertion_error"):
            reason += f" (got {first['input']!r})"
    more = len(err.errors()) - 1
    extra = f" ({more} more problem{'s' if more > 1 else ''} after fixing this)" if more else ""
    return f"{path}: field '{field}' {reason}{extra}."


# libyaml's parser where PyYAML was built with it: the same safe subset, ten times faster
# (every process that loads the code location parses the registry).
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(text: str | bytes) -> Any:
    """``yaml.safe_load`` of ``text``, with libyaml's parser where there is one."""
    return yaml.load(text, Loader=_SAFE_LOADER)


def read_yaml_mapping(path: Path) -> dict[str, Any]:
    """The YAML mapping in ``path``; ``RegistryError`` naming the file (unreadable,
    malformed at line/column, or not a mapping of fields)."""
    try:
        data = load_yaml(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RegistryError(f"{path}: cannot read the file ({exc.strerror}).") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise RegistryError(f"{path}: malformed YAML{where}: {problem}.") from exc
    if not isinstance(data, dict):
        raise RegistryError(
            f"{path}: field '<entry>' must be a mapping of fields, got {type(data).__name__}."
        )
    return data


def load_spec(path: Path, base_dir: Path | None = None) -> ModelSpec:
    """Parse one registry YAML file into a ``ModelSpec``; raise ``RegistryError`` if invalid."""
    path = Path(path)
    data = read_yaml_mapping(path)
    base = base_dir if base_dir is not None else project_root_for(path.parent)
    try:
        spec = ModelSpec.model_validate({**data, "base_dir": base})
    except ValidationError as exc:
        fields = (k for k in ModelSpec.model_fields if k != "base_dir")
        raise RegistryError(explain(path, exc, fields)) from None
    # An artifact without a pinned sha256 is legal (its file digest is the data version); it
    # is reported once, by the registry report (UI check, `registry validate`), not per load.
    return spec


@dataclass(frozen=True)
class RegistryReport:
    """What a registry directory holds: the valid entries and one sentence per bad file."""

    specs: list[ModelSpec]  # sorted by name
    files: dict[str, Path]  # model name -> the entry file it came from
    problems: list[str]  # one sentence each, naming the file (and field)

    @property
    def unpinned(self) -> list[str]:
        """Models whose artifact pins no sha256 (its actual file digest is the data version)."""
        return [s.name for s in self.specs if s.artifact is not None and s.artifact.sha256 is None]


def load_registry_report(
    directory: Path | str = DEFAULT_REGISTRY_DIR, *, base_dir: Path | None = None
) -> RegistryReport:
    """Every valid entry of a registry directory, and a problem for each invalid file.

    Tolerant: a bad file is reported and skipped, so one typo cannot take down the models
    beside it. Of two entries with the same name the first file (by file name) wins.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return RegistryReport([], {}, [f"{directory}: registry directory does not exist."])
    paths = sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])
    specs: dict[str, ModelSpec] = {}
    files: dict[str, Path] = {}
    problems: list[str] = []
    for path in paths:
        try:
            spec = load_spec(path, base_dir=base_dir)
        except RegistryError as exc:
            problems.append(str(exc))
            continue
        if spec.name in specs:
            problems.append(
                f"{path}: field 'name' duplicates {spec.name!r}, already defined in "
                f"{files[spec.name]}."
            )
            continue
        specs[spec.name], files[spec.name] = spec, path
    return RegistryReport([specs[name] for name in sorted(specs)], files, problems)


def load_registry(
    directory: Path | str = DEFAULT_REGISTRY_DIR, *, base_dir: Path | None = None
) -> list[ModelSpec]:
    """All entries (``*.yaml``/``*.yml``) of a registry directory, sorted by name.

    Strict: raises ``RegistryError`` with the first problem (see ``load_registry_report``
    for the tolerant loader the code location uses).
    """
    report = load_registry_report(directory, base_dir=base_dir)
    if report.problems:
        raise RegistryError(report.problems[0])
    return report.specs


def get_spec(name: str, directory: Path | str = DEFAULT_REGISTRY_DIR) -> ModelSpec:
    """One entry by name; ``KeyError`` listing the registered names when absent."""
    specs = {s.name: s for s in load_registry(directory)}
    if name not in specs:
        raise KeyError(f"no model {name!r} in the registry; registered: {', '.join(specs)}")
    return specs[name]


def pool_for(spec: ModelSpec) -> str:
    """Dagster concurrency pool of the model's forecast step."""
    return "gpu" if spec.runtime.gpu > 0 else "cpu"


def k8s_config(spec: ModelSpec) -> dict[str, Any]:
    """Value of the ``dagster-k8s/config`` tag: resources, scheduling and image of the pod."""
    rt = spec.runtime
    requests: dict[str, str] = {"cpu": rt.cpu, "memory": rt.memory}
    limits: dict[str, str] = {"cpu": rt.cpu, "memory": rt.memory}
    if rt.gpu > 0:
        # Extended resources must have requests == limits; Kubernetes defaults the request.
        limits["nvidia.com/gpu"] = str(rt.gpu)
    container: dict[str, Any] = {"resources": {"requests": requests, "limits": limits}}
    if rt.image:
        container["image"] = rt.image
    pod_spec: dict[str, Any] = {}
    if rt.node_selector:
        pod_spec["node_selector"] = dict(rt.node_selector)
    if rt.tolerations:
        pod_spec["tolerations"] = [t.model_dump(exclude_none=True) for t in rt.tolerations]
    config: dict[str, Any] = {"container_config": container}
    if pod_spec:
        config["pod_spec_config"] = pod_spec
    return config
