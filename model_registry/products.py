"""Products: one YAML file per product in ``model_registry/products/`` (beside ``models/``).

A product is what the platform publishes per cycle: the forecast of its **champion**, with
**challengers** running in shadow and a **baseline** to fall back to. Its declaration names
the models (registered ones), the headline scores a challenger must beat the champion on,
the guard scores it must not be worse on, and the thresholds of promotion and rollback
(:mod:`weather_assets.products.promotion` holds the rules themselves)::

    name: demo-medium-range
    champion: fno-demo
    challengers: [fno-challenger]
    baseline: persistence
    headline_scores:
      - {metric: rmse, variable: geopotential, level: 500, lead_time: 24h}
    guard_scores:
      - {metric: rmse, lead_time: 24h}      # every variable and level at +24 h
    window: 8            # rolling window of verified cycles
    min_cycles: 4        # at least this many paired cycles before any promotion
    rollback_after: 2    # K consecutive cycles worse than the baseline: roll back

Errors name the file and the field, like the model registry's.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from model_registry.registry import RegistryError, explain, read_yaml_mapping
from model_registry.spec import NAME_PATTERN, Duration
from weather_assets.canonical import VARIABLES
from weather_assets.products.promotion import Rules, ScoreSelector
from weather_assets.verification.scores import METRICS
from weather_assets.verification.significance import MIN_CYCLES

# The scores a decision may rank models by: lower is better, or higher (acc). Not bias (best at
# zero), spread or spread_skill (best at the error's size, or at 1).
DECISION_METRICS = tuple(m for m in METRICS if m in ("rmse", "mae", "acc", "crps_fair"))


class ScoreSpec(BaseModel):
    """One score (or a family of scores: leave a field out for every value of it)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    metric: str = "rmse"
    variable: str | None = None
    level: int | None = None  # hPa; -1 for surface fields
    lead_time: Duration | None = None

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, v: str) -> str:
        if v not in DECISION_METRICS:
            raise ValueError(
                f"metric {v!r} cannot rank models (better is neither lower nor higher); valid "
                f"metrics are: {', '.join(DECISION_METRICS)}"
            )
        return v

    @field_validator("variable")
    @classmethod
    def _known_variable(cls, v: str | None) -> str | None:
        if v is not None and v not in VARIABLES:
            raise ValueError(
                f"unknown variable {v!r}; canonical variables are: {', '.join(VARIABLES)}"
            )
        return v

    def selector(self) -> ScoreSelector:
        return ScoreSelector(self.metric, self.variable, self.level, self.lead_time)


class ProductSpec(BaseModel):
    """A product's declaration (one YAML file)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    description: str = ""
    champion: str
    challengers: tuple[str, ...] = ()
    baseline: str = "persistence"
    headline_scores: tuple[ScoreSpec, ...] = Field(min_length=1)
    guard_scores: tuple[ScoreSpec, ...] = ()
    window: int = Field(default=8, ge=MIN_CYCLES)
    min_cycles: int = Field(default=4, ge=MIN_CYCLES)
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    rollback_after: int = Field(default=2, ge=1)
    degrade_margin: float = Field(default=0.0, ge=0)
    regions: tuple[str, ...] = ("global",)
    grib_bits_per_value: int = Field(default=16, ge=1, le=32)
    enabled: bool = True

    @field_validator("name", "champion", "baseline")
    @classmethod
    def _slug(cls, v: str) -> str:
        if not NAME_PATTERN.match(v):
            raise ValueError(f"{v!r} is not a name: lowercase letters, digits, '-' and '_'")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> ProductSpec:
        if self.champion in self.challengers:
            raise ValueError(f"the champion {self.champion!r} is also listed as a challenger")
        if len(set(self.challengers)) != len(self.challengers):
            raise ValueError("challengers are listed twice")
        if self.min_cycles > self.window:
            raise ValueError(f"min_cycles {self.min_cycles} exceeds the window {self.window}")
        return self

    @property
    def models(self) -> tuple[str, ...]:
        """Champion, challengers and baseline, each once."""
        return tuple(dict.fromkeys((self.champion, *self.challengers, self.baseline)))

    @property
    def lag(self) -> timedelta:
        """When a cycle counts as verified: its longest lead among the scores the rules use
        (24 h when they name none)."""
        leads = [s.lead_time for s in (*self.headline_scores, *self.guard_scores) if s.lead_time]
        return max(leads, default=timedelta(hours=24))

    def rules(self, lag: timedelta | None = None) -> Rules:
        """The decision rules (:mod:`weather_assets.products.promotion`)."""
        return Rules(
            product=self.name,
            champion=self.champion,
            challengers=tuple(self.challengers),
            baseline=self.baseline,
            headline=tuple(s.selector() for s in self.headline_scores),
            guard=tuple(s.selector() for s in self.guard_scores),
            window=self.window,
            min_cycles=self.min_cycles,
            alpha=self.alpha,
            rollback_after=self.rollback_after,
            degrade_margin=self.degrade_margin,
            regions=tuple(self.regions),
            lag=lag or self.lag,
        )


def products_dir(registry_dir: Path | str) -> Path:
    """Where the products of a registry live: ``products/`` beside its ``models/`` folder."""
    return Path(registry_dir).parent / "products"


def load_product(path: Path, registered: Iterable[str] | None = None) -> ProductSpec:
    """Parse one product file; ``RegistryError`` naming the file and field when invalid
    (``registered``: the model names its champion, challengers and baseline must be among)."""
    path = Path(path)
    data = read_yaml_mapping(path)
    try:
        spec = ProductSpec.model_validate(data)
    except ValidationError as exc:
        raise RegistryError(explain(path, exc, ProductSpec.model_fields)) from None
    if registered is not None:
        known = set(registered)
        for name in ("champion", "challengers", "baseline"):
            value = getattr(spec, name)
            for model in value if isinstance(value, tuple) else (value,):
                if model not in known:
                    raise RegistryError(
                        f"{path}: field '{name}' names {model!r}, not an enabled registered "
                        f"model; registered: {', '.join(sorted(known)) or 'none'}."
                    )
    return spec


@dataclass(frozen=True)
class ProductReport:
    """The valid products of a folder, and one sentence per bad file."""

    products: list[ProductSpec]  # sorted by name
    problems: list[str]


def load_products_report(directory: Path | str, registered: Iterable[str]) -> ProductReport:
    """Every valid, enabled product of a folder (none when the folder does not exist)."""
    directory = Path(directory)
    registered = set(registered)
    products: dict[str, ProductSpec] = {}
    problems: list[str] = []
    if not directory.is_dir():
        return ProductReport([], [])
    for path in sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")]):
        try:
            spec = load_product(path, registered)
        except RegistryError as exc:
            problems.append(str(exc))
            continue
        if spec.name in products:
            problems.append(f"{path}: field 'name' duplicates product {spec.name!r}.")
            continue
        if spec.enabled:
            products[spec.name] = spec
    return ProductReport([products[n] for n in sorted(products)], problems)


def get_product(name: str, directory: Path | str, registered: Iterable[str]) -> ProductSpec:
    """One product by name; ``KeyError`` listing the declared ones."""
    report = load_products_report(directory, registered)
    found = {p.name: p for p in report.products}
    if name not in found:
        problems = f" ({'; '.join(report.problems)})" if report.problems else ""
        raise KeyError(
            f"no product {name!r} in {directory}; declared: {', '.join(found) or 'none'}{problems}"
        )
    return found[name]
