"""Blocking checks on ``raw_inputs``: schema, missing values, physical ranges."""

import dagster as dg
import numpy as np
import pandas as pd
import xarray as xr

from resources.storage import StorageResource
from weather_assets.canonical import VARIABLES
from weather_assets.ingest.layout import open_raw_inputs
from weather_assets.ingest.schemas import (
    MISSING_SCHEMA,
    RANGE_SCHEMA,
    schema_failures,
    summary_table,
)
from weather_assets.partitions import partition_key_to_time
from weather_assets.settings import PlatformSettings


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


def build_ingest_checks(*, settings: PlatformSettings, asset_key: dg.AssetKey) -> list:
    """Blocking asset checks on the raw inputs asset of the configured source."""

    @dg.multi_asset_check(
        specs=[
            dg.AssetCheckSpec(
                "schema",
                asset=asset_key,
                blocking=True,
                description="Canonical variables, units, dim order, ascending "
                "coordinates, time equal to the partition.",
            ),
            dg.AssetCheckSpec(
                "no_missing_values",
                asset=asset_key,
                blocking=True,
                description="No NaN in any variable and level.",
            ),
            dg.AssetCheckSpec(
                "physical_ranges",
                asset=asset_key,
                blocking=True,
                description="Min and max of every variable within its "
                "physical range (pandera schema on the summary table).",
            ),
        ],
        can_subset=True,
    )
    def raw_inputs_checks(context: dg.AssetCheckExecutionContext, storage: StorageResource):
        t = partition_key_to_time(context.partition_key)
        ds = open_raw_inputs(storage.storage(), settings, t).load()
        selected = {key.name for key in context.selected_asset_check_keys}
        table = _summary(ds)
        summary_md = dg.MetadataValue.md(_md(table))
        if "schema" in selected:
            problems = schema_problems(ds, np.datetime64(t.replace(tzinfo=None), "ns"))
            yield dg.AssetCheckResult(
                check_name="schema",
                passed=not problems,
                metadata={"problems": "; ".join(problems) or "none"},
                description="; ".join(problems) or None,
            )
        if "no_missing_values" in selected:
            bad = schema_failures(MISSING_SCHEMA, table)
            yield dg.AssetCheckResult(
                check_name="no_missing_values",
                passed=bad.empty,
                metadata={"summary": summary_md, "failing_rows": len(bad)},
                description=None
                if bad.empty
                else "NaNs in: " + ", ".join(f"{r.variable}@{r.level}" for r in bad.itertuples()),
            )
        if "physical_ranges" in selected:
            bad = schema_failures(RANGE_SCHEMA, table)
            yield dg.AssetCheckResult(
                check_name="physical_ranges",
                passed=bad.empty,
                metadata={"summary": summary_md, "failing_rows": len(bad)},
                description=None
                if bad.empty
                else "out of range: "
                + ", ".join(
                    f"{r.variable}@{r.level} [{r.min:.6g}, {r.max:.6g}]" for r in bad.itertuples()
                ),
            )

    return [raw_inputs_checks]
