"""Pandera schemas of the verification tables (per-cycle scores and their aggregates).

Per-cycle table (:data:`SCORES_SCHEMA`), one row per score:

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
spread_skill). The scorecard (:data:`CARD_SCHEMA`) has one row per model, artifact version,
region, variable, level and lead time. Every column carries a description (shown in the UI's column
schema).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandera.pandas as pa

from weather_assets.canonical import VARIABLES
from weather_assets.verification.scores import KEY_COLUMNS, METRICS

NON_NEGATIVE_METRICS = ("rmse", "mae", "crps_fair", "spread", "spread_skill")


def _not_infinite(df: pd.DataFrame) -> pd.Series:
    return pd.Series(~np.isinf(df["value"].to_numpy(dtype=np.float64)), index=df.index)


def _non_negative(df: pd.DataFrame) -> pd.Series:
    return ~df["metric"].isin(NON_NEGATIVE_METRICS) | ~(df["value"] < 0)


def _correlation_range(df: pd.DataFrame) -> pd.Series:
    # A little slack above 1 for float32 rounding of a perfect forecast.
    return (df["metric"] != "acc") | ~(df["value"].abs() > 1 + 1e-6)


def _value_needs_points(df: pd.DataFrame) -> pd.Series:
    return df["value"].isna() | (df["n"] > 0)


_ROW_CHECKS = [
    pa.Check(_not_infinite, error="value is infinite"),
    pa.Check(_non_negative, error="rmse, mae, crps_fair, spread and spread_skill are >= 0"),
    pa.Check(_correlation_range, error="acc is within [-1, 1]"),
    pa.Check(_value_needs_points, error="a finite score needs at least one valid point (n > 0)"),
]

VALUE_UNITS = (
    "in the variable's units (canonical CF units: K, m s-1, Pa, m2 s-2, kg kg-1), squared for "
    "MSE-type metrics; dimensionless (1) for acc and spread_skill"
)

_COMMON = {
    "model": pa.Column(
        str,
        pa.Check.str_matches(r"^[a-z][a-z0-9_-]{0,62}$"),
        description="Registry name of the model.",
    ),
    "region": pa.Column(
        str,
        pa.Check.str_matches(r"^[a-z][a-z0-9_-]{0,39}$"),
        description="Verification region: global (the whole domain; on a limited-area grid "
        "without its boundary zone), tropics (20S-20N), northern_extratropics (20N-90N), "
        "southern_extratropics (90S-20S), or a bounding box of WXPLAT_VERIFICATION_REGIONS.",
    ),
    "lead_time": pa.Column(
        "timedelta64[ns]",
        pa.Check.ge(pd.Timedelta(0)),
        description="Lead time after the analysis time (valid time = analysis_time + lead_time).",
    ),
    "variable": pa.Column(
        str, pa.Check.isin(list(VARIABLES)), description="Canonical (WeatherBench) variable name."
    ),
    "level": pa.Column(
        "int64", pa.Check.ge(-1), description="Pressure level in hPa; -1 for surface fields."
    ),
    "metric": pa.Column(
        str,
        pa.Check.isin(list(METRICS)),
        description="Score: rmse, bias, mae, acc (against the climatology); for ensembles also "
        "crps_fair, spread and spread_skill (ensemble-mean scores otherwise).",
    ),
    "value": pa.Column(
        "float64",
        nullable=True,
        description=f"The score, {VALUE_UNITS}. NaN when inputs had missing values.",
    ),
    "n": pa.Column(
        "int64",
        pa.Check.ge(0),
        description="Grid points (summed over cycles when aggregated) where forecast and truth "
        "were both valid.",
    ),
}

SCORES_SCHEMA = pa.DataFrameSchema(
    {
        **_COMMON,
        "analysis_time": pa.Column(
            "datetime64[ns]", description="Analysis time of the forecast (UTC, naive)."
        ),
    },
    checks=_ROW_CHECKS,
    unique=list(KEY_COLUMNS),
    strict=True,
    name="verification scores",
    description="Scores of forecasts against analyses, one row per score.",
)

AGGREGATE_SCHEMA = pa.DataFrameSchema(
    {
        **_COMMON,
        "cycles": pa.Column(
            "int64", pa.Check.ge(1), description="Number of cycles (analysis times) aggregated."
        ),
    },
    checks=_ROW_CHECKS,
    unique=["model", "region", "lead_time", "variable", "level", "metric"],
    strict=True,
    name="aggregated verification scores",
    description="Scores over a period of cycles (RMSE from the mean MSE).",
)

CARD_SCHEMA = pa.DataFrameSchema(
    {
        "model": _COMMON["model"],
        "artifact_version": pa.Column(
            str,
            description="Artifact version the model's forecasts of these cycles were made with "
            "(the model_config path component; 'default' for models without an artifact).",
        ),
        "current": pa.Column(
            bool,
            description="Whether this artifact version is the one the registry runs now "
            "(False: a superseded artifact, kept as its own rows).",
        ),
        "baseline": pa.Column(str, description="Registry name of the baseline model."),
        "baseline_version": pa.Column(
            str, description="Artifact version(s) of the baseline's scores used."
        ),
        "metric": _COMMON["metric"],
        "region": _COMMON["region"],
        "variable": _COMMON["variable"],
        "level": _COMMON["level"],
        "lead_time": _COMMON["lead_time"],
        "units": pa.Column(
            str, description="CF units of value and baseline_value (1: dimensionless)."
        ),
        "value": pa.Column(
            "float64",
            nullable=True,
            description="The model's score over the period's paired cycles, in units (RMSE: "
            "root of the mean MSE).",
        ),
        "baseline_value": pa.Column(
            "float64",
            nullable=True,
            description="The baseline's score over the same cycles and leads, in units.",
        ),
        "pct_diff": pa.Column(
            "float64",
            nullable=True,
            description="100 * (value - baseline_value) / baseline_value, in %: negative is "
            "better for errors, positive for acc. NaN where undefined.",
        ),
        "cycles": pa.Column(
            "int64",
            pa.Check.ge(1),
            description="Cycles where both the model (this artifact version) and the baseline "
            "were scored at this lead.",
        ),
        "first_cycle": pa.Column(
            "datetime64[ns]", description="First paired analysis time (UTC, naive)."
        ),
        "last_cycle": pa.Column(
            "datetime64[ns]", description="Last paired analysis time (UTC, naive)."
        ),
        "ci_low": pa.Column(
            "float64",
            nullable=True,
            description="Lower end of the 95 % confidence interval of the mean per-cycle "
            "difference (model - baseline) of the score, in % of baseline_value: a t-test with "
            "the AR(1) effective sample size n (1 - r1) / (1 + r1) (Wilks). NaN with < 3 cycles.",
        ),
        "ci_high": pa.Column(
            "float64",
            nullable=True,
            description="Upper end of that 95 % confidence interval, in % of baseline_value.",
        ),
        "p_value": pa.Column(
            "float64",
            nullable=True,
            description="Two-sided p-value of that autocorrelation-corrected paired t-test.",
        ),
        "significant": pa.Column(
            bool,
            description="Whether the difference from the baseline is significant at 95 % "
            "(p_value < 0.05); False with fewer than 3 paired cycles.",
        ),
    },
    unique=["model", "artifact_version", "region", "variable", "level", "lead_time", "metric"],
    strict=True,
    ordered=True,
    name="scorecard",
    description="Every model (per artifact version) against the baseline over a period.",
)


def validate_scores(table: pd.DataFrame) -> pd.DataFrame:
    """The table (re-indexed 0..n-1) if it satisfies :data:`SCORES_SCHEMA`.

    ``SchemaErrors`` listing every failure otherwise.
    """
    return SCORES_SCHEMA.validate(table.reset_index(drop=True), lazy=True)


def validate_card(card: pd.DataFrame) -> pd.DataFrame:
    """The scorecard (re-indexed 0..n-1) if it satisfies :data:`CARD_SCHEMA`."""
    return CARD_SCHEMA.validate(card.reset_index(drop=True), lazy=True)
