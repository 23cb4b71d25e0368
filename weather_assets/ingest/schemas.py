"""Per-variable summary of a canonical dataset, and the pandera schema it must satisfy."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandera.pandas as pa
import xarray as xr

from weather_assets.canonical import VARIABLES


def summary_table(ds: xr.Dataset) -> pd.DataFrame:
    """One row per variable and level: min, max, mean and NaN fraction."""
    rows = []
    for name, da in ds.data_vars.items():
        levels = da["level"].values if "level" in da.dims else [None]
        for level in levels:
            sub = da.sel(level=level) if level is not None else da
            values = np.asarray(sub.values, dtype=np.float64)
            finite = values[np.isfinite(values)]
            rows.append(
                {
                    "variable": str(name),
                    "level": -1 if level is None else int(level),
                    "min": float(finite.min()) if finite.size else np.nan,
                    "max": float(finite.max()) if finite.size else np.nan,
                    "mean": float(finite.mean()) if finite.size else np.nan,
                    "nan_fraction": float(1.0 - finite.size / values.size) if values.size else 1.0,
                }
            )
    return pd.DataFrame(rows, columns=["variable", "level", "min", "max", "mean", "nan_fraction"])


def _within(bound: str):
    def check(df: pd.DataFrame) -> pd.Series:
        lo = df["variable"].map(lambda v: VARIABLES[v].valid_min)
        hi = df["variable"].map(lambda v: VARIABLES[v].valid_max)
        return (df[bound] >= lo) & (df[bound] <= hi)

    return check


MISSING_SCHEMA = pa.DataFrameSchema(
    {
        "variable": pa.Column(str, pa.Check.isin(list(VARIABLES))),
        "level": pa.Column(int),
        "nan_fraction": pa.Column(float, pa.Check.eq(0.0), nullable=False),
    },
    name="no missing values",
)

RANGE_SCHEMA = pa.DataFrameSchema(
    {
        "variable": pa.Column(str, pa.Check.isin(list(VARIABLES))),
        "level": pa.Column(int),
        "min": pa.Column(float, nullable=False),
        "max": pa.Column(float, nullable=False),
    },
    checks=[
        pa.Check(_within("min"), error="minimum outside the variable's physical range"),
        pa.Check(_within("max"), error="maximum outside the variable's physical range"),
    ],
    name="physical ranges",
)


def schema_failures(schema: pa.DataFrameSchema, table: pd.DataFrame) -> pd.DataFrame:
    """Rows of ``table`` that break ``schema`` (empty when it passes)."""
    try:
        schema.validate(table, lazy=True)
    except pa.errors.SchemaErrors as err:
        bad = err.failure_cases["index"].dropna().astype(int).unique()
        return table.loc[table.index.isin(bad)]
    return table.iloc[0:0]
