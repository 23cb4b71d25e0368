"""Blocking checks on ``raw_inputs``: schema, missing values, physical ranges.

The checks run inside the ``raw_inputs`` asset on the *staged* stores, before the commit
(write-audit-publish): a cycle that fails one never replaces the stored version. The asset
declares these specs and reports the results, so they show in the UI like any asset check.
Missing values and physical ranges are :mod:`weather_assets.quality`'s, the same as the
forecast's checks; the layout check is the canonical dataset's own.
"""

import dagster as dg
import numpy as np
import xarray as xr

from weather_assets.audit import check_specs
from weather_assets.canonical import VARIABLES
from weather_assets.quality import assess, summary_markdown

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


def raw_inputs_check_specs(
    asset_key: dg.AssetKey, partitions_def: dg.PartitionsDefinition | None = None
) -> list[dg.AssetCheckSpec]:
    """The blocking checks the ``raw_inputs`` asset reports on every cycle it writes."""
    return check_specs(
        asset_key, partitions_def, {name: (True, text) for name, text in CHECK_DESCRIPTIONS.items()}
    )


def raw_inputs_check_results(
    ds: xr.Dataset, analysis_time: np.datetime64, source: str
) -> list[dg.AssetCheckResult]:
    """Every raw-inputs check on one cycle's (staged) dataset; ``source`` names the input."""
    quality = assess(ds)  # one row per variable and level, over members and time
    summary_md = dg.MetadataValue.md(summary_markdown(quality.table))
    problems = schema_problems(ds, analysis_time)
    return [
        dg.AssetCheckResult(
            check_name="schema",
            passed=not problems,
            metadata={"problems": "; ".join(problems) or "none", "source": source},
            description="; ".join(problems) or None,
        ),
        dg.AssetCheckResult(
            check_name="no_missing_values",
            passed=quality.missing.empty,
            metadata={
                "summary": summary_md,
                "failing_rows": len(quality.missing),
                "source": source,
            },
            description=quality.missing_description,
        ),
        dg.AssetCheckResult(
            check_name="physical_ranges",
            passed=quality.out_of_range.empty,
            metadata={
                "summary": summary_md,
                "failing_rows": len(quality.out_of_range),
                "source": source,
            },
            description=quality.range_description,
        ),
    ]
