"""Blocking checks on ``raw_inputs``: schema, missing values, physical ranges.

The checks run inside the ``raw_inputs`` asset on the *staged* stores, before the commit
(write-audit-publish): a cycle that fails one never replaces the stored version. The asset
declares these specs and reports the results, so they show in the UI like any asset check.
"""

import dagster as dg
import numpy as np
import pandas as pd
import xarray as xr

from weather_assets.canonical import VARIABLES
from weather_assets.ingest.schemas import (
    MISSING_SCHEMA,
    RANGE_SCHEMA,
    schema_failures,
    summary_table,
)

CHECK_DESCRIPTIONS = {
    "schema": "Canonical variables, units, dim order, ascending coordinates, time equal to "
    "the partition.",
    "no_missing_values": "No NaN in any variable and level.",
    "physical_ranges": "Min and max of every variable within its physical range (pandera "
    "schema on the summary table).",
}


def schema_problems(ds: xr.Dataset, analysis_time: np.datetime64) -> list[str]:
    """What is wrong with a canonical dataset's layout (empty when nothing is)."""
    problems = []
    for name, da in ds.data_vars.items():
        if name not in VARIABLES:
            problems.append(f"unknown variable {name!r}")
            continue
        if da.attrs.get("units") != VARIABLES[name].units:
            problems.append(
                f"{name} has units {da.attrs.get('units')!r}, expected {VARIABLES[name].units!r}"
            )
        expected = [d for d in ("member", "time", "level", "latitude", "longitude") if d in da.dims]
        if list(da.dims) != expected:
            problems.append(f"{name} has dims {da.dims}, expected {tuple(expected)}")
    for coord in ("latitude", "longitude", "level"):
        if coord in ds.coords and ds[coord].size > 1 and not np.all(np.diff(ds[coord].values) > 0):
            problems.append(f"coordinate {coord} is not strictly ascending")
    times = ds["time"].values.astype("datetime64[ns]") if "time" in ds.coords else []
    if len(times) != 1 or times[0] != np.datetime64(analysis_time, "ns"):
        problems.append(f"time is {list(map(str, times))}, expected [{analysis_time}]")
    return problems


def _md(table: pd.DataFrame) -> str:
    cols = list(table.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in table.itertuples(index=False):
        lines.append(
            "| " + " | ".join(f"{v:.6g}" if isinstance(v, float) else str(v) for v in row) + " |"
        )
    return "\n".join(lines)


def _summary(ds: xr.Dataset) -> pd.DataFrame:
    if "member" in ds.dims:
        # Ranges and NaNs over all members at once: one row per variable and level.
        ds = ds.stack(sample=("member", "time")).transpose("sample", ...)
        ds = ds.drop_vars(["sample", "member", "time"]).rename(sample="time")
    return summary_table(ds)


def _where(row) -> str:
    return row.variable if row.level < 0 else f"{row.variable}@{row.level}"


def raw_inputs_check_specs(asset_key: dg.AssetKey) -> list[dg.AssetCheckSpec]:
    """The blocking checks the ``raw_inputs`` asset reports on every cycle it writes."""
    return [
        dg.AssetCheckSpec(name, asset=asset_key, blocking=True, description=text)
        for name, text in CHECK_DESCRIPTIONS.items()
    ]


def raw_inputs_check_results(
    ds: xr.Dataset, analysis_time: np.datetime64, source: str
) -> list[dg.AssetCheckResult]:
    """Every raw-inputs check on one cycle's (staged) dataset; ``source`` names the input."""
    table = _summary(ds)
    summary_md = dg.MetadataValue.md(_md(table))
    problems = schema_problems(ds, analysis_time)
    missing = schema_failures(MISSING_SCHEMA, table)
    ranges = schema_failures(RANGE_SCHEMA, table)
    missing_text = "NaNs in: " + ", ".join(_where(r) for r in missing.itertuples())
    range_text = "out of range: " + ", ".join(
        f"{_where(r)} [{r.min:.6g}, {r.max:.6g}]" for r in ranges.itertuples()
    )
    return [
        dg.AssetCheckResult(
            check_name="schema",
            passed=not problems,
            metadata={"problems": "; ".join(problems) or "none", "source": source},
            description="; ".join(problems) or None,
        ),
        dg.AssetCheckResult(
            check_name="no_missing_values",
            passed=missing.empty,
            metadata={"summary": summary_md, "failing_rows": len(missing), "source": source},
            description=None if missing.empty else missing_text,
        ),
        dg.AssetCheckResult(
            check_name="physical_ranges",
            passed=ranges.empty,
            metadata={"summary": summary_md, "failing_rows": len(ranges), "source": source},
            description=None if ranges.empty else range_text,
        ),
    ]
