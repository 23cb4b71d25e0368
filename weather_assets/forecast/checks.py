"""Checks of a model's forecast: layout (blocking), NaNs (blocking), physical ranges (warn).

The forecast asset runs them on its *staged* stores before the commit: a forecast that fails
a blocking check is never committed (verification must not score a malformed forecast), and
the results show in the UI as the asset's checks. NaNs and physical ranges are
:mod:`weather_assets.quality`'s, the same as the raw inputs' checks: one row per variable and
level, over time, lead times and members.
"""

# No `from __future__ import annotations`: Dagster inspects check annotations at runtime.

from datetime import datetime

import dagster as dg
import numpy as np
import xarray as xr

from model_registry.spec import ModelSpec
from weather_assets.audit import check_specs
from weather_assets.canonical import VARIABLES
from weather_assets.forecast.drift import DEFAULT_THRESHOLDS, DriftThresholds, assess_drift
from weather_assets.forecast.normalize import parse_feature
from weather_assets.quality import assess, summary_markdown
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


CHECKS = {
    # name: (blocking, description)
    "schema": (
        True,
        "Variables and levels of the registry entry, dims (time, lead_time, [member], [level], "
        "latitude, longitude), canonical units, lead times from one timestep to the max lead "
        "time, valid_time = time + lead_time.",
    ),
    "no_nans": (True, "No NaN in any variable."),
    "physical_ranges": (False, "Every variable within its plausible physical range (warns)."),
}


def forecast_check_specs(
    asset_key: dg.AssetKey, partitions_def: dg.PartitionsDefinition | None = None
) -> list[dg.AssetCheckSpec]:
    """The checks the forecast asset reports on every forecast it writes (or keeps)."""
    return check_specs(asset_key, partitions_def, CHECKS)


def forecast_check_results(
    ds: xr.Dataset, spec: ModelSpec, analysis_time: datetime
) -> list[dg.AssetCheckResult]:
    """Every forecast check on one forecast (staged before the commit, or committed)."""
    problems = forecast_schema_problems(ds, spec, analysis_time)
    quality = assess(ds)  # one pass over the (lazily opened) stores
    summary_md = dg.MetadataValue.md(summary_markdown(quality.table))
    return [
        dg.AssetCheckResult(
            check_name="schema",
            passed=not problems,
            metadata={"problems": "; ".join(problems) or "none"},
            description="; ".join(problems) or None,
        ),
        dg.AssetCheckResult(
            check_name="no_nans",
            passed=quality.missing.empty,
            metadata={
                "nan_counts": dg.MetadataValue.json(quality.nan_counts),
                "summary": summary_md,
            },
            description=quality.missing_description,
        ),
        dg.AssetCheckResult(
            check_name="physical_ranges",
            passed=quality.out_of_range.empty,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"out_of_range": dg.MetadataValue.json(quality.ranges), "summary": summary_md},
            description=quality.range_description,
        ),
    ]


# ---------------------------------------------------------------------------------------------
# input drift: a blocking check of normalized/<model>, run on the cycle before it is committed

DRIFT_CHECK = "input_drift"


def drift_checks(thresholds: DriftThresholds = DEFAULT_THRESHOLDS) -> dict[str, tuple[bool, str]]:
    """``{name: (blocking, description)}`` of the input-drift check with these thresholds."""
    return {
        DRIFT_CHECK: (
            True,
            "The cycle's standardized inputs against the artifact's training statistics, per "
            f"feature: {thresholds.describe()}. Refuses (ERROR) inputs far outside before they "
            "are committed (so no forecast runs on them), naming the features and a "
            "recognizable units mistake (Pa vs hPa, K vs degC).",
        ),
    }


DRIFT_CHECKS = drift_checks()


def drift_thresholds(settings: PlatformSettings) -> DriftThresholds:
    """The input-drift thresholds of a deployment (``WXPLAT_DRIFT_*``)."""
    return DriftThresholds(
        max_abs_mean_z=settings.drift_max_abs_mean_z,
        min_std_z=settings.drift_min_std_z,
        max_std_z=settings.drift_max_std_z,
        k=settings.drift_k,
        max_frac_beyond_k=settings.drift_max_frac_beyond_k,
    )


def drift_check_specs(
    asset_key: dg.AssetKey,
    partitions_def: dg.PartitionsDefinition | None = None,
    thresholds: DriftThresholds = DEFAULT_THRESHOLDS,
) -> list[dg.AssetCheckSpec]:
    """The input-drift check the normalized asset reports on every cycle it writes."""
    return check_specs(asset_key, partitions_def, drift_checks(thresholds))


def drift_check_result(
    state: xr.DataArray,
    stats: xr.Dataset | None,
    thresholds: DriftThresholds = DEFAULT_THRESHOLDS,
) -> dg.AssetCheckResult:
    """The input-drift check of a standardized cycle ``state`` (blocking, severity ERROR).

    ``stats``: the artifact's statistics ``state`` was standardized with; ``None`` for a
    model without an artifact (no training statistics: the check passes, saying so).
    """
    if stats is None:
        return dg.AssetCheckResult(
            check_name=DRIFT_CHECK,
            passed=True,
            severity=dg.AssetCheckSeverity.ERROR,
            description="No training statistics (the model has no artifact): not assessed.",
            metadata={"assessed": False},
        )
    fields = assess_drift(state, stats, thresholds).check_fields()
    md = fields["metadata"]
    return dg.AssetCheckResult(
        check_name=DRIFT_CHECK,
        passed=fields["passed"],
        severity=dg.AssetCheckSeverity.ERROR,
        description=fields["description"],
        metadata={
            "assessed": True,
            "max_abs_mean_z": dg.MetadataValue.float(md["max_abs_mean_z"]),
            "failing_features": md["failing_features"],
            "thresholds": md["thresholds"],
            "table": dg.MetadataValue.md(md["table"]),
        },
    )
