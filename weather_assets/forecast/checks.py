"""Asset checks on a model's forecast: layout (blocking), NaNs (blocking), physical ranges.

The schema and NaN checks block: verification must not score a malformed forecast.
"""

# No `from __future__ import annotations`: Dagster inspects check annotations at runtime.

from datetime import datetime

import dagster as dg
import numpy as np
import xarray as xr

from model_registry.spec import ModelSpec
from weather_assets.canonical import VARIABLES
from weather_assets.forecast.normalize import parse_feature
from weather_assets.partitions import partition_key_to_time
from weather_assets.settings import PlatformSettings


def _expected_levels(spec: ModelSpec) -> dict[str, list[int]]:
    levels: dict[str, list[int]] = {}
    for feature in spec.output_features:
        var, level = parse_feature(feature)
        levels.setdefault(var, [])
        if level is not None:
            levels[var].append(int(level))
    return levels


def forecast_schema_problems(ds: xr.Dataset, spec: ModelSpec, analysis_time: datetime) -> list[str]:
    """Everything that differs from the forecast layout the registry entry promises."""
    problems: list[str] = []
    expected = _expected_levels(spec)
    missing = sorted(set(expected) - set(map(str, ds.data_vars)))
    if missing:
        problems.append(f"missing variables {missing}")
    for var, levels in expected.items():
        if var not in ds:
            continue
        da = ds[var]
        lead = ["time", "lead_time", *(["member"] if "member" in da.dims else [])]
        dims = (*lead, *(["level"] if levels else []), "latitude", "longitude")
        if da.dims != dims:
            problems.append(f"{var} has dims {da.dims}, expected {dims}")
        if levels and sorted(int(v) for v in da["level"].values) != sorted(levels):
            problems.append(f"{var} has levels {list(da['level'].values)}, expected {levels}")
        units = da.attrs.get("units")
        if var in VARIABLES and units != VARIABLES[var].units:
            problems.append(f"{var} has units {units!r}, expected {VARIABLES[var].units!r}")
    t0 = np.datetime64(analysis_time.replace(tzinfo=None), "ns")
    if "time" not in ds.coords or list(ds["time"].values) != [t0]:
        problems.append(f"time is not [{t0}]")
    leads = [
        np.timedelta64(int((spec.timestep * k).total_seconds()), "s")
        for k in range(1, spec.steps + 1)
    ]
    if "lead_time" not in ds.coords or list(ds["lead_time"].values) != [
        np.timedelta64(v, "ns") for v in leads
    ]:
        problems.append(
            f"lead_time is not {spec.timestep} .. {spec.max_lead_time} every {spec.timestep}"
        )
    elif "valid_time" not in ds.coords or not np.array_equal(
        ds["valid_time"].values, ds["time"].values[:, None] + ds["lead_time"].values[None, :]
    ):
        problems.append("valid_time is not time + lead_time")
    return problems


def build_forecast_checks(
    spec: ModelSpec, *, settings: PlatformSettings, asset_key: dg.AssetKey
) -> list:
    """Schema, NaN and physical-range checks of one model's forecast asset."""
    from weather_assets.forecast.assets import open_forecast

    prefix = spec.name.replace("-", "_")

    @dg.multi_asset_check(
        name=f"{prefix}_forecast_checks",
        specs=[
            dg.AssetCheckSpec(
                "schema",
                asset=asset_key,
                blocking=True,
                description="Variables and levels of the registry entry, dims (time, lead_time, "
                "[member], [level], latitude, longitude), canonical units, lead times from one "
                "timestep to the max lead time, valid_time = time + lead_time.",
            ),
            dg.AssetCheckSpec(
                "no_nans", asset=asset_key, blocking=True, description="No NaN in any variable."
            ),
            dg.AssetCheckSpec(
                "physical_ranges",
                asset=asset_key,
                description="Every variable within its plausible physical range (warns).",
            ),
        ],
        can_subset=True,
        required_resource_keys={"storage"},
    )
    def forecast_checks(context: dg.AssetCheckExecutionContext):
        t = partition_key_to_time(context.partition_key)
        ds = open_forecast(context.resources.storage, spec, settings, t)
        selected = {key.name for key in context.selected_asset_check_keys}
        if "schema" in selected:
            problems = forecast_schema_problems(ds, spec, t)
            yield dg.AssetCheckResult(
                check_name="schema",
                passed=not problems,
                metadata={"problems": "; ".join(problems) or "none"},
                description="; ".join(problems) or None,
            )
        if {"no_nans", "physical_ranges"} & selected:
            stats = {
                str(v): (int(ds[v].isnull().sum()), float(ds[v].min()), float(ds[v].max()))
                for v in ds.data_vars
            }
            if "no_nans" in selected:
                bad = {v: n for v, (n, _, _) in stats.items() if n}
                yield dg.AssetCheckResult(
                    check_name="no_nans",
                    passed=not bad,
                    metadata={"nan_counts": dg.MetadataValue.json(bad)},
                    description=None if not bad else f"NaNs in {sorted(bad)}",
                )
            if "physical_ranges" in selected:
                out = {
                    v: [lo, hi]
                    for v, (_, lo, hi) in stats.items()
                    if v in VARIABLES
                    and (lo < VARIABLES[v].valid_min or hi > VARIABLES[v].valid_max)
                }
                yield dg.AssetCheckResult(
                    check_name="physical_ranges",
                    passed=not out,
                    severity=dg.AssetCheckSeverity.WARN,
                    metadata={"out_of_range": dg.MetadataValue.json(out)},
                    description=None if not out else f"out of range: {sorted(out)}",
                )

    return [forecast_checks]
