"""Typed, frozen schema of one model registry entry (one YAML file per model).

A relative local artifact URI is resolved against the entry's ``base_dir`` (set by the
loader to the project root, i.e. the nearest ancestor of the registry directory holding a
``pyproject.toml``). The ``sha256`` is required for remote URIs (``s3://``...). For a local
path it may be omitted: the file's actual digest is then used as the artifact's data version
and a warning is logged, so a retrained local artifact still marks forecasts stale, but
nothing pins *which* weights ran. Pin it for anything operational.

``forcings`` lists extra network inputs computed from time and position (names from
``weather_assets.forecast.normalize.FORCINGS``: time of day, time of year, TOA insolation);
they are network inputs of the architectures that take them (``takes_forcings`` in
``model_registry.architectures``) and are never predicted.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    field_validator,
    model_validator,
)

from model_registry.architectures import get_architecture, names_where
from weather_assets.canonical import VARIABLES, feature_name
from weather_assets.forecast.normalize import check_forcings
from weather_assets.settings import check_owner

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
SHA256_PATTERN = re.compile(r"^[0-9a-f]{64}$")
_DURATION = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: Any) -> timedelta:
    """``6h``, ``30m``, ``1d``, ``90s`` (or a timedelta) as a positive timedelta."""
    if isinstance(value, timedelta):
        td = value
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ValueError(
                f"{value!r} is not a duration; write an integer and a unit s, m, h or d "
                "(e.g. '6h', '72h')"
            )
        td = timedelta(seconds=int(match.group(1)) * _UNIT_SECONDS[match.group(2)])
    if td <= timedelta(0):
        raise ValueError(f"duration must be positive, got {value!r}")
    return td


def format_duration(td: timedelta) -> str:
    """Shortest exact ``<n><unit>`` spelling of a timedelta (inverse of ``parse_duration``)."""
    seconds = int(td.total_seconds())
    for unit in ("d", "h", "m"):
        if seconds % _UNIT_SECONDS[unit] == 0:
            return f"{seconds // _UNIT_SECONDS[unit]}{unit}"
    return f"{seconds}s"


Duration = Annotated[
    timedelta, BeforeValidator(parse_duration), PlainSerializer(format_duration, return_type=str)
]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ArtifactRef(_Frozen):
    """Where the inference artifact lives and the digest it must have."""

    uri: str
    sha256: str | None = None

    @field_validator("sha256")
    @classmethod
    def _hex_digest(cls, v: str | None) -> str | None:
        if v is not None and not SHA256_PATTERN.match(v.lower()):
            raise ValueError("must be 64 hexadecimal characters (a sha256 digest)")
        return None if v is None else v.lower()

    @field_validator("uri")
    @classmethod
    def _models_uri(cls, v: str) -> str:
        if v.startswith("models:"):
            from model_registry.tracking import parse_models_uri  # pure parsing, no mlflow

            parse_models_uri(v)
        return v

    @property
    def is_remote(self) -> bool:
        """True for URIs with a scheme other than ``file://`` (fsspec) and ``models:/`` URIs
        of the MLflow model registry."""
        return self.uri.startswith("models:/") or (
            "://" in self.uri and not self.uri.startswith("file://")
        )

    @model_validator(mode="after")
    def _remote_needs_digest(self) -> ArtifactRef:
        if self.is_remote and self.sha256 is None:
            raise ValueError(f"sha256 is required for the remote artifact uri {self.uri!r}")
        return self

    def resolve(self, base_dir: Path | None) -> str:
        """The URI as an absolute local path, or unchanged when remote."""
        if self.is_remote:
            return self.uri
        path = Path(self.uri.removeprefix("file://")).expanduser()
        if not path.is_absolute() and base_dir is not None:
            path = Path(base_dir) / path
        return str(path.resolve())


class VariableSpec(_Frozen):
    """One canonical variable and, for 3-D variables, its pressure levels (hPa)."""

    name: str
    levels: tuple[int, ...] = ()

    @field_validator("name")
    @classmethod
    def _canonical(cls, v: str) -> str:
        if v not in VARIABLES:
            raise ValueError(
                f"unknown variable {v!r}; canonical variables are: {', '.join(sorted(VARIABLES))}"
            )
        return v

    @model_validator(mode="after")
    def _levels_match(self) -> VariableSpec:
        has_levels = VARIABLES[self.name].has_levels
        if has_levels and not self.levels:
            raise ValueError(f"variable {self.name!r} has pressure levels; list them in 'levels'")
        if not has_levels and self.levels:
            raise ValueError(f"variable {self.name!r} is a surface field; remove 'levels'")
        return self

    @property
    def features(self) -> list[str]:
        """Channel names (``temperature_500hPa``...) of this variable."""
        if not self.levels:
            return [feature_name(self.name)]
        return [feature_name(self.name, lev) for lev in self.levels]


class Toleration(_Frozen):
    """A Kubernetes toleration (same field names as the pod spec)."""

    key: str | None = None
    operator: Literal["Equal", "Exists"] = "Equal"
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None


class RuntimeSpec(_Frozen):
    """Compute resources of the forecast step (Kubernetes quantities for cpu/memory).

    ``backfill_partitions`` is K of the model's ``BackfillPolicy.multi_run(K)``: a backfill
    of N cycles runs as ceil(N / K) runs of at most K cycles, each loading the artifact and
    building the network once. ``batch_cycles`` is how many of a run's cycles go through
    the network together (a leading batch dim, each cycle with its own forcing times); 1
    rolls them out one after the other. Batch where ``benchmarks/bench_backfill.py`` shows a
    gain (small networks on a GPU); on the 2-core CPU the demo FNO gains nothing from it.
    Neither changes the numbers a forecast holds beyond float rounding.
    """

    gpu: int = Field(0, ge=0)
    cpu: str = "1"
    memory: str = "4Gi"
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: tuple[Toleration, ...] = ()
    image: str | None = None
    backfill_partitions: int = Field(16, ge=1)
    batch_cycles: int = Field(1, ge=1)

    @field_validator("cpu", "memory", mode="before")
    @classmethod
    def _quantity(cls, v: Any) -> str:
        # YAML gives `cpu: 2` as an int; Kubernetes quantities are strings.
        if not re.match(r"^\d+(\.\d+)?(m|Ki|Mi|Gi|Ti|k|M|G|T)?$", str(v)):
            raise ValueError(f"{v!r} is not a Kubernetes quantity (e.g. '2', '500m', '8Gi')")
        return str(v)


class ContainerSpec(_Frozen):
    """Entry point of an external model image: argv, called with input/output/time args."""

    command: tuple[str, ...] = Field(min_length=1)
    env: dict[str, str] = Field(default_factory=dict)


class TrainingSpec(_Frozen):
    """Defaults for ``train`` (FNO/SFNO): network size, optimisation length, loss weighting.

    ``loss_horizon`` weights each feature's one-step loss by how its one-step change compares
    with its change over that horizon (``model_registry.training.horizon_loss_weights``);
    ``null`` trains with equal weights.
    """

    hidden_channels: int = Field(16, ge=1)
    n_modes: tuple[int, int] = (16, 32)
    n_layers: int = Field(3, ge=1)
    steps: int = Field(300, ge=1)
    batch_size: int = Field(4, ge=1)
    learning_rate: float = Field(1e-2, gt=0)
    loss_horizon: Duration | None = timedelta(hours=24)
    grid_step: float = Field(2.0, gt=0)


class ModelSpec(_Frozen):
    """One registered model: what it is, where its weights are, what it needs to run."""

    name: str
    description: str = ""
    architecture: str
    artifact: ArtifactRef | None = None
    input_variables: tuple[VariableSpec, ...] = Field(min_length=1)
    output_variables: tuple[VariableSpec, ...] = Field(min_length=1)
    forcings: tuple[str, ...] = ()
    timestep: Duration
    max_lead_time: Duration
    members: int = Field(1, ge=1)
    runtime: RuntimeSpec = Field(default_factory=RuntimeSpec)
    container: ContainerSpec | None = None
    training: TrainingSpec | None = None
    enabled: bool = True
    # Who answers for the model's assets in the UI: e-mail addresses or ``team:<name>``
    # (empty: the platform's owner, WXPLAT_OWNER).
    owners: tuple[str, ...] = ()
    # Set by the loader, not written in YAML: where relative artifact paths are rooted.
    base_dir: Path | None = Field(default=None, exclude=True, repr=False)

    @field_validator("name")
    @classmethod
    def _slug(cls, v: str) -> str:
        if not NAME_PATTERN.match(v):
            raise ValueError(
                f"{v!r} is not a lowercase slug (letters, digits, '-' or '_', starting with "
                "a letter, at most 63 characters)"
            )
        return v

    @field_validator("owners")
    @classmethod
    def _owner_form(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for owner in v:
            check_owner(owner)
        return v

    @field_validator("architecture")
    @classmethod
    def _known_architecture(cls, v: str) -> str:
        get_architecture(v)  # the table's error lists the valid names
        return v

    @field_validator("forcings")
    @classmethod
    def _known_forcings(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(check_forcings(v))

    @model_validator(mode="after")
    def _consistent(self) -> ModelSpec:
        if self.max_lead_time % self.timestep:
            raise ValueError(
                f"max_lead_time {format_duration(self.max_lead_time)} is not a multiple of "
                f"timestep {format_duration(self.timestep)}"
            )
        arch = get_architecture(self.architecture)
        if arch.needs_artifact and self.artifact is None:
            raise ValueError(f"architecture {arch.name!r} needs an 'artifact'")
        if arch.needs_container and self.container is None:
            raise ValueError(f"architecture {arch.name!r} needs a 'container' entry with a command")
        if not arch.needs_container and self.container is not None:
            valid = " or ".join(repr(n) for n in names_where(lambda a: a.needs_container))
            raise ValueError(f"'container' is only valid with architecture {valid}")
        if arch.identical_io and self.input_features != self.output_features:
            raise ValueError(f"{arch.name} needs identical input and output variables")
        if self.forcings and not arch.takes_forcings:
            forced = "/".join(names_where(lambda a: a.takes_forcings))
            raise ValueError(
                f"'forcings' are network inputs of {forced} models; architecture "
                f"{arch.name!r} takes none"
            )
        return self

    @property
    def input_features(self) -> list[str]:
        """Input channel names in registry order."""
        return [f for v in self.input_variables for f in v.features]

    @property
    def in_channels(self) -> int:
        """Network input channels: the state features, then the forcings."""
        return len(self.input_features) + len(self.forcings)

    @property
    def output_features(self) -> list[str]:
        """Output channel names in registry order."""
        return [f for v in self.output_variables for f in v.features]

    @property
    def steps(self) -> int:
        """Number of autoregressive steps to reach ``max_lead_time``."""
        return self.max_lead_time // self.timestep

    @property
    def artifact_location(self) -> str | None:
        """Resolved artifact URI (absolute path for local files), None without artifact."""
        return None if self.artifact is None else self.artifact.resolve(self.base_dir)
