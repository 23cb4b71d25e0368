"""Schemas of the verification tables (per-cycle scores, their aggregates, the scorecard).

Per-cycle table (:data:`SCORES_TABLE`), one row per score:

| column | type | meaning |
| --- | --- | --- |
| model | str | registry name of the model |
| analysis_time | datetime64[ns] | the forecast's analysis time (UTC, naive) |
| region | str | verification region: global, tropics, northern_extratropics, southern_extratropics or a configured box |
| lead_time | timedelta64[ns] | lead time (>= 0) |
| variable | str | canonical variable name |
| level | int64 | pressure level in hPa, -1 for surface fields |
| metric | str | one of ``scores.METRICS`` |
| value | float64 | the score; NaN when inputs had missing values (never +-inf) |
| n | int64 | grid points where forecast and truth were valid |

Rows are unique per (model, analysis_time, region, lead_time, variable, level, metric); tables
from before regions have no ``region`` column and read as ``global``
(:func:`~weather_assets.verification.scores.with_region`). Units of
``value``: the variable's CF units (squared for MSE-type metrics; ``1`` for acc and
spread_skill). The scorecard (:data:`CARD_TABLE`) has one row per model, artifact version,
region, variable, level and lead time. Every column carries a description (shown in the UI's column
schema).

Each table is declared once, as plain data (:class:`TableSpec` of :class:`ColumnSpec`): the UI's
column schemas (:mod:`weather_assets.verification.report`) read it without pandera, and the
pandera schemas (:func:`scores_schema`, :func:`aggregate_schema`, :func:`card_schema`) are
built from it on first use, so loading the code location never imports pandera
(~65 ms in every step process and pod).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from types import MappingProxyType
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from weather_assets.canonical import VARIABLES
from weather_assets.verification.scores import KEY_COLUMNS, METRICS

if TYPE_CHECKING:
    import pandera.pandas as pa

NON_NEGATIVE_METRICS = ("rmse", "mae", "crps_fair", "spread", "spread_skill")

# A column check as plain data: (kind, argument), kind one of CHECK_KINDS, each the pandera
# ``Check`` of that name (``str_matches`` a regex, ``isin`` a tuple of values, ``ge`` a bound).
ColumnCheck = tuple[str, object]
CHECK_KINDS = ("str_matches", "isin", "ge")


@dataclass(frozen=True)
class ColumnSpec:
    """One column: its dtype (a pandas dtype name, ``str`` for strings), meaning and checks."""

    dtype: str
    description: str
    nullable: bool = False
    checks: tuple[ColumnCheck, ...] = ()


@dataclass(frozen=True)
class RowCheck:
    """A check across columns: ``test`` is True for every good row; ``error`` names it."""

    test: Callable[[pd.DataFrame], pd.Series]
    error: str


@dataclass(frozen=True)
class TableSpec:
    """A table's columns (in order) and its table-level facts."""

    name: str
    description: str
    columns: Mapping[str, ColumnSpec]
    unique: tuple[str, ...]
    strict: bool = True
    ordered: bool = False
    row_checks: tuple[RowCheck, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "columns", MappingProxyType(dict(self.columns)))


def _not_infinite(df: pd.DataFrame) -> pd.Series:
    return pd.Series(~np.isinf(df["value"].to_numpy(dtype=np.float64)), index=df.index)


def _non_negative(df: pd.DataFrame) -> pd.Series:
    return ~df["metric"].isin(NON_NEGATIVE_METRICS) | ~(df["value"] < 0)


def _correlation_range(df: pd.DataFrame) -> pd.Series:
    # A little slack above 1 for float32 rounding of a perfect forecast.
    return (df["metric"] != "acc") | ~(df["value"].abs() > 1 + 1e-6)


def _value_needs_points(df: pd.DataFrame) -> pd.Series:
    return df["value"].isna() | (df["n"] > 0)


_ROW_CHECKS = (
    RowCheck(_not_infinite, "value is infinite"),
    RowCheck(_non_negative, "rmse, mae, crps_fair, spread and spread_skill are >= 0"),
    RowCheck(_correlation_range, "acc is within [-1, 1]"),
    RowCheck(_value_needs_points, "a finite score needs at least one valid point (n > 0)"),
)

VALUE_UNITS = (
    "in the variable's units (canonical CF units: K, m s-1, Pa, m2 s-2, kg kg-1), squared for "
    "MSE-type metrics; dimensionless (1) for acc and spread_skill"
)

_COMMON = {
    "model": ColumnSpec(
        "str",
        "Registry name of the model.",
        checks=(("str_matches", r"^[a-z][a-z0-9_-]{0,62}$"),),
    ),
    "region": ColumnSpec(
        "str",
        "Verification region: global (the whole domain; on a limited-area grid "
        "without its boundary zone), tropics (20S-20N), northern_extratropics (20N-90N), "
        "southern_extratropics (90S-20S), or a bounding box of WXPLAT_VERIFICATION_REGIONS.",
        checks=(("str_matches", r"^[a-z][a-z0-9_-]{0,39}$"),),
    ),
    "lead_time": ColumnSpec(
        "timedelta64[ns]",
        "Lead time after the analysis time (valid time = analysis_time + lead_time).",
        checks=(("ge", pd.Timedelta(0)),),
    ),
    "variable": ColumnSpec(
        "str",
        "Canonical (WeatherBench) variable name.",
        checks=(("isin", tuple(VARIABLES)),),
    ),
    "level": ColumnSpec(
        "int64", "Pressure level in hPa; -1 for surface fields.", checks=(("ge", -1),)
    ),
    "metric": ColumnSpec(
        "str",
        "Score: rmse, bias, mae, acc (against the climatology); for ensembles also "
        "crps_fair, spread and spread_skill (ensemble-mean scores otherwise).",
        checks=(("isin", tuple(METRICS)),),
    ),
    "value": ColumnSpec(
        "float64",
        f"The score, {VALUE_UNITS}. NaN when inputs had missing values.",
        nullable=True,
    ),
    "n": ColumnSpec(
        "int64",
        "Grid points (summed over cycles when aggregated) where forecast and truth "
        "were both valid.",
        checks=(("ge", 0),),
    ),
}

SCORES_TABLE = TableSpec(
    name="verification scores",
    description="Scores of forecasts against analyses, one row per score.",
    columns={
        **_COMMON,
        "analysis_time": ColumnSpec(
            "datetime64[ns]", "Analysis time of the forecast (UTC, naive)."
        ),
    },
    unique=tuple(KEY_COLUMNS),
    row_checks=_ROW_CHECKS,
)

AGGREGATE_TABLE = TableSpec(
    name="aggregated verification scores",
    description="Scores over a period of cycles (RMSE from the mean MSE).",
    columns={
        **_COMMON,
        "cycles": ColumnSpec(
            "int64", "Number of cycles (analysis times) aggregated.", checks=(("ge", 1),)
        ),
    },
    unique=("model", "region", "lead_time", "variable", "level", "metric"),
    row_checks=_ROW_CHECKS,
)

CARD_TABLE = TableSpec(
    name="scorecard",
    description="Every model (per artifact version) against the baseline over a period.",
    columns={
        "model": _COMMON["model"],
        "artifact_version": ColumnSpec(
            "str",
            "Artifact version the model's forecasts of these cycles were made with "
            "(the model_config path component; 'default' for models without an artifact).",
        ),
        "current": ColumnSpec(
            "bool",
            "Whether this artifact version is the one the registry runs now "
            "(False: a superseded artifact, kept as its own rows).",
        ),
        "baseline": ColumnSpec("str", "Registry name of the baseline model."),
        "baseline_version": ColumnSpec("str", "Artifact version(s) of the baseline's scores used."),
        "metric": _COMMON["metric"],
        "region": _COMMON["region"],
        "variable": _COMMON["variable"],
        "level": _COMMON["level"],
        "lead_time": _COMMON["lead_time"],
        "units": ColumnSpec("str", "CF units of value and baseline_value (1: dimensionless)."),
        "value": ColumnSpec(
            "float64",
            "The model's score over the period's paired cycles, in units (RMSE: "
            "root of the mean MSE).",
            nullable=True,
        ),
        "baseline_value": ColumnSpec(
            "float64",
            "The baseline's score over the same cycles and leads, in units.",
            nullable=True,
        ),
        "pct_diff": ColumnSpec(
            "float64",
            "100 * (value - baseline_value) / baseline_value, in %: negative is "
            "better for errors, positive for acc. NaN where undefined.",
            nullable=True,
        ),
        "cycles": ColumnSpec(
            "int64",
            "Cycles where both the model (this artifact version) and the baseline "
            "were scored at this lead.",
            checks=(("ge", 1),),
        ),
        "first_cycle": ColumnSpec("datetime64[ns]", "First paired analysis time (UTC, naive)."),
        "last_cycle": ColumnSpec("datetime64[ns]", "Last paired analysis time (UTC, naive)."),
        "ci_low": ColumnSpec(
            "float64",
            "Lower end of the 95 % confidence interval of the mean per-cycle "
            "difference (model - baseline) of the score, in % of baseline_value: a t-test with "
            "the AR(1) effective sample size n (1 - r1) / (1 + r1) (Wilks). NaN with < 3 cycles.",
            nullable=True,
        ),
        "ci_high": ColumnSpec(
            "float64",
            "Upper end of that 95 % confidence interval, in % of baseline_value.",
            nullable=True,
        ),
        "p_value": ColumnSpec(
            "float64",
            "Two-sided p-value of that autocorrelation-corrected paired t-test.",
            nullable=True,
        ),
        "significant": ColumnSpec(
            "bool",
            "Whether the difference from the baseline is significant at 95 % "
            "(p_value < 0.05); False with fewer than 3 paired cycles.",
        ),
    },
    unique=("model", "artifact_version", "region", "variable", "level", "lead_time", "metric"),
    ordered=True,
)


def _pandera_check(check: ColumnCheck) -> pa.Check:
    """The pandera ``Check`` of a column check."""
    import pandera.pandas as pa

    kind, arg = check
    if kind == "str_matches":
        return pa.Check.str_matches(arg)
    if kind == "isin":
        return pa.Check.isin(list(arg))
    if kind == "ge":
        return pa.Check.ge(arg)
    raise ValueError(f"unknown column check {kind!r}; known: {', '.join(CHECK_KINDS)}")


def pandera_schema(table: TableSpec) -> pa.DataFrameSchema:
    """The pandera schema of a table spec (imports pandera; prefer the cached builders)."""
    import pandera.pandas as pa

    return pa.DataFrameSchema(
        {
            name: pa.Column(
                col.dtype,
                [_pandera_check(c) for c in col.checks],
                nullable=col.nullable,
                description=col.description,
            )
            for name, col in table.columns.items()
        },
        checks=[pa.Check(rc.test, error=rc.error) for rc in table.row_checks],
        unique=list(table.unique),
        strict=table.strict,
        ordered=table.ordered,
        name=table.name,
        description=table.description,
    )


@cache
def scores_schema() -> pa.DataFrameSchema:
    """Pandera schema of the per-cycle scores table (:data:`SCORES_TABLE`), built once."""
    return pandera_schema(SCORES_TABLE)


@cache
def aggregate_schema() -> pa.DataFrameSchema:
    """Pandera schema of the aggregated scores (:data:`AGGREGATE_TABLE`), built once."""
    return pandera_schema(AGGREGATE_TABLE)


@cache
def card_schema() -> pa.DataFrameSchema:
    """Pandera schema of the scorecard (:data:`CARD_TABLE`), built once."""
    return pandera_schema(CARD_TABLE)


def validate_scores(table: pd.DataFrame) -> pd.DataFrame:
    """The table (re-indexed 0..n-1) if it satisfies :func:`scores_schema`.

    ``SchemaErrors`` listing every failure otherwise.
    """
    return scores_schema().validate(table.reset_index(drop=True), lazy=True)


def validate_card(card: pd.DataFrame) -> pd.DataFrame:
    """The scorecard (re-indexed 0..n-1) if it satisfies :func:`card_schema`."""
    return card_schema().validate(card.reset_index(drop=True), lazy=True)
