"""Data quality of a dataset in canonical variables: missing values and physical ranges.

One implementation for every store the platform checks before a commit: a cycle's analysis
(``raw_inputs``: dims ``[member], time, [level], latitude, longitude``) and a model's forecast
(``time, lead_time, [member], [level], latitude, longitude``). :func:`summary_table` reduces a
dataset to one row per variable and level (level ``-1`` for a surface variable) over all of
its other dims, whatever they are; two pandera schemas say which rows are wrong:

* :func:`missing_schema`: a NaN anywhere (``nan_fraction`` > 0; 1 for a variable with no
  values at all);
* :func:`range_schema`: the min or max outside the variable's physical range
  (:data:`weather_assets.canonical.VARIABLES`). Infinities count here (they are values, out
  of every range); a row with no values at all (every value NaN) is the missing-values
  schema's failure, not this one's, and a variable unknown to the canonical table has no
  range to check (the layout checks refuse unknown variables).

:func:`assess` gives both sets of failing rows and the words a check reports them with.
Pure (numpy, pandas, xarray, dask, pandera): no Dagster. Every step process imports this
module with the code location, but only the checks use pandas, dask and pandera: they are
imported inside the functions that use them (``tests/test_startup.py``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

import numpy as np

from weather_assets.canonical import VARIABLES

if TYPE_CHECKING:
    import pandas as pd
    import pandera.pandas as pa
    import xarray as xr

SURFACE_LEVEL = -1  # the ``level`` of a variable without levels
LEVEL_DIM = "level"
COLUMNS = {
    "variable": "object",
    "level": "int64",
    "min": "float64",
    "max": "float64",
    "mean": "float64",
    "nan_count": "int64",
    "nan_fraction": "float64",
}


def label(variable: str, level: int) -> str:
    """How a row is named in check descriptions: ``2m_temperature``, ``temperature@850``."""
    return str(variable) if level == SURFACE_LEVEL else f"{variable}@{level}"


def summary_table(ds: xr.Dataset) -> pd.DataFrame:
    """One row per variable and level: min, max, mean (NaNs skipped), NaN count and fraction.

    Each statistic is an xarray reduction over every dim but ``level``: nothing is copied
    into a flat array, and on dask-backed data (a lazily opened store) all the reductions of
    all the variables are computed together, in one pass over the chunks.
    """
    import dask
    import pandas as pd

    lazy: dict[str, tuple[xr.DataArray, ...]] = {}
    for name, da in ds.data_vars.items():
        dims = [d for d in da.dims if d != LEVEL_DIM]
        if all(da.sizes[d] for d in dims):  # an empty variable has no values to reduce
            lazy[str(name)] = (da.min(dims), da.max(dims), da.mean(dims), da.isnull().sum(dims))
    with warnings.catch_warnings():  # an all-NaN row's min/max/mean is NaN, as it should be
        warnings.simplefilter("ignore", RuntimeWarning)
        (stats,) = dask.compute(lazy)
    rows = []
    for name, da in ds.data_vars.items():
        levels = da[LEVEL_DIM].values if LEVEL_DIM in da.dims else [SURFACE_LEVEL]
        per_level = da.size // len(levels) if len(levels) else 0
        for j, level in enumerate(levels):
            if str(name) in stats:
                lo, hi, mean, nans = (
                    s.isel({LEVEL_DIM: j}) if LEVEL_DIM in s.dims else s for s in stats[str(name)]
                )
                count = int(nans)
                values = {"min": float(lo), "max": float(hi), "mean": float(mean)}
                values.update(nan_count=count, nan_fraction=count / per_level)
            else:  # no values at all: all missing, nothing to range-check
                values = dict.fromkeys(("min", "max", "mean"), np.nan)
                values.update(nan_count=0, nan_fraction=1.0)
            rows.append({"variable": str(name), "level": int(level), **values})
    return pd.DataFrame(rows, columns=list(COLUMNS)).astype(COLUMNS)


def _within(bound: str):
    """Row by row: ``bound`` (min or max) inside the variable's range, or nothing to judge."""

    def check(df: pd.DataFrame) -> pd.Series:
        known = df["variable"].map(lambda v: VARIABLES.get(v))
        lo = known.map(lambda info: np.nan if info is None else info.valid_min)
        hi = known.map(lambda info: np.nan if info is None else info.valid_max)
        value = df[bound]
        return value.isna() | lo.isna() | ((value >= lo) & (value <= hi))

    return check


@cache
def missing_schema() -> pa.DataFrameSchema:
    """Rows with a missing value: ``nan_fraction`` must be 0."""
    import pandera.pandas as pa

    return pa.DataFrameSchema(
        {
            "variable": pa.Column(str),
            "level": pa.Column(int),
            "nan_fraction": pa.Column(float, pa.Check.eq(0.0), nullable=False),
        },
        name="no missing values",
    )


@cache
def range_schema() -> pa.DataFrameSchema:
    """Rows out of range: ``min`` and ``max`` within the variable's physical range."""
    import pandera.pandas as pa

    return pa.DataFrameSchema(
        {
            "variable": pa.Column(str),
            "level": pa.Column(int),
            "min": pa.Column(float, nullable=True),
            "max": pa.Column(float, nullable=True),
        },
        checks=[
            pa.Check(_within("min"), error="minimum outside the variable's physical range"),
            pa.Check(_within("max"), error="maximum outside the variable's physical range"),
        ],
        name="physical ranges",
    )


def failing_rows(schema: pa.DataFrameSchema, table: pd.DataFrame) -> pd.DataFrame:
    """Rows of ``table`` that break ``schema`` (empty when it passes).

    The first validation in a process registers pandera's pandas backend, which imports its
    data-synthesis strategies and, where it is installed (the test extra, not the image),
    hypothesis: 0.4-0.5 s of the first check on the 2-core machine, 0.01 s after that.
    """
    import pandera.pandas as pa

    try:
        schema.validate(table, lazy=True)
    except pa.errors.SchemaErrors as err:
        bad = err.failure_cases["index"].dropna().astype(int).unique()
        return table.loc[table.index.isin(bad)]
    return table.iloc[0:0]


def summary_markdown(table: pd.DataFrame) -> str:
    """The summary table as a markdown table (for a check's metadata)."""
    cols = list(table.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in table.itertuples(index=False):
        cells = (f"{v:.6g}" if isinstance(v, float) else str(v) for v in row)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


@dataclass(frozen=True, eq=False)  # holds DataFrames: compared by identity
class Quality:
    """A dataset's summary table and the rows of it that fail each schema."""

    table: pd.DataFrame
    missing: pd.DataFrame
    out_of_range: pd.DataFrame

    @property
    def nan_counts(self) -> dict[str, int]:
        """NaN count per failing variable and level, by :func:`label`."""
        return {label(r.variable, r.level): int(r.nan_count) for r in self.missing.itertuples()}

    @property
    def ranges(self) -> dict[str, list[float]]:
        """``[min, max]`` per variable and level out of its range, by :func:`label`."""
        return {
            label(r.variable, r.level): [float(r.min), float(r.max)]
            for r in self.out_of_range.itertuples()
        }

    @property
    def missing_description(self) -> str | None:
        """``NaNs in: 2m_temperature, temperature@850``; None when nothing is missing."""
        return "NaNs in: " + ", ".join(self.nan_counts) if not self.missing.empty else None

    @property
    def range_description(self) -> str | None:
        """``out of range: 2m_temperature [150, 400]``; None when everything is in range."""
        if self.out_of_range.empty:
            return None
        return "out of range: " + ", ".join(
            f"{name} [{lo:.6g}, {hi:.6g}]" for name, (lo, hi) in self.ranges.items()
        )


def assess(ds: xr.Dataset) -> Quality:
    """Summarize ``ds`` (one pass) and find its missing values and out-of-range rows."""
    table = summary_table(ds)
    return Quality(
        table=table,
        missing=failing_rows(missing_schema(), table),
        out_of_range=failing_rows(range_schema(), table),
    )
