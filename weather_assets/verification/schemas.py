"""Pandera schemas of the verification tables (per-cycle scores and their aggregates).

Per-cycle table (:data:`SCORES_SCHEMA`), one row per score:

| column | type | meaning |
| --- | --- | --- |
| model | str | registry name of the model |
| analysis_time | datetime64[ns] | the forecast's analysis time (UTC, naive) |
| lead_time | timedelta64[ns] | lead time (>= 0) |
| variable | str | canonical variable name |
| level | int64 | pressure level in hPa, -1 for surface fields |
| metric | str | one of ``scores.METRICS`` |
| value | float64 | the score; NaN when inputs had missing values (never +-inf) |
| n | int64 | grid points where forecast and truth were valid |

Rows are unique per (model, analysis_time, lead_time, variable, level, metric).
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

_COMMON = {
    "model": pa.Column(str, pa.Check.str_matches(r"^[a-z][a-z0-9_-]{0,62}$")),
    "lead_time": pa.Column("timedelta64[ns]", pa.Check.ge(pd.Timedelta(0))),
    "variable": pa.Column(str, pa.Check.isin(list(VARIABLES))),
    "level": pa.Column("int64", pa.Check.ge(-1)),
    "metric": pa.Column(str, pa.Check.isin(list(METRICS))),
    "value": pa.Column("float64", nullable=True),
    "n": pa.Column("int64", pa.Check.ge(0)),
}

SCORES_SCHEMA = pa.DataFrameSchema(
    {**_COMMON, "analysis_time": pa.Column("datetime64[ns]")},
    checks=_ROW_CHECKS,
    unique=list(KEY_COLUMNS),
    strict=True,
    name="verification scores",
    description="Scores of forecasts against analyses, one row per score.",
)

AGGREGATE_SCHEMA = pa.DataFrameSchema(
    {**_COMMON, "cycles": pa.Column("int64", pa.Check.ge(1))},
    checks=_ROW_CHECKS,
    unique=["model", "lead_time", "variable", "level", "metric"],
    strict=True,
    name="aggregated verification scores",
    description="Scores over a period of cycles (RMSE from the mean MSE).",
)


def validate_scores(table: pd.DataFrame) -> pd.DataFrame:
    """The table (re-indexed 0..n-1) if it satisfies :data:`SCORES_SCHEMA`.

    ``SchemaErrors`` listing every failure otherwise.
    """
    return SCORES_SCHEMA.validate(table.reset_index(drop=True), lazy=True)
