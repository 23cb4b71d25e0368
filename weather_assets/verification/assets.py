"""``verification/<model>`` (partitioned like the forecasts): a forecast's scores.

Scores of ``forecast/<model>`` at analysis time t against ``raw_inputs/<source>`` at t,
t+cadence, ..., t+L (L the model's max lead); which analyses and when it runs are in
:mod:`weather_assets.verification.automation`. The scores table goes to ``scores.parquet``
beside the forecast's control member (:func:`resources.layout.scores_relpath`); the climatology
(when materialized) adds ACC. Every score is computed per region (global, tropics, the
extratropics and the boxes of ``WXPLAT_VERIFICATION_REGIONS``; on a limited-area grid without
its boundary zone of ``WXPLAT_VERIFICATION_BOUNDARY_POINTS``), a ``region`` column of the
table. The scoring itself is :func:`weather_assets.verification.scores.verify_forecast`.
"""

from collections.abc import Sequence
from datetime import UTC, timedelta

import dagster as dg
import pandas as pd
import xarray as xr
from pydantic import Field

from model_registry.resolve import resolve_model_config
from model_registry.spec import ModelSpec
from resources.layout import (
    climatology_relpath,
    open_forecast,
    open_raw_inputs,
    scores_relpath,
    write_table,
)
from resources.storage import Storage, StorageResource
from weather_assets.keys import forecast_key, verification_key
from weather_assets.lineage import made_with_version
from weather_assets.partitions import partition_key_to_time
from weather_assets.retries import IO_RETRY
from weather_assets.settings import PlatformSettings
from weather_assets.verification.automation import truth_mapping, verification_condition
from weather_assets.verification.regions import DEFAULT_REGIONS, Region, bbox
from weather_assets.verification.report import column_schema, table_version, verification_metadata
from weather_assets.verification.schemas import validate_scores
from weather_assets.verification.scores import (
    select_truth_member,
    valid_times,
    verify_forecast,
)

GROUP = "verification"  # the UI group of the verification, climatology and scorecard assets
VERIFICATION_CODE_VERSION = "2"  # 2: scores per region


class VerificationConfig(dg.Config):
    """Options for running a verification by hand (automation uses the defaults)."""

    truth_member: int = Field(default=0, description="Analysis member used as truth (0: control).")
    skipna: bool = Field(
        default=False,
        description="Score the valid points only when inputs have NaNs (n says how many); "
        "default: such scores are NaN.",
    )


def open_truth(
    storage: Storage,
    settings: PlatformSettings,
    times: Sequence[pd.Timestamp],
    member: int | str = 0,
) -> tuple[xr.Dataset | None, list[pd.Timestamp]]:
    """The analyses at ``times`` that are in storage (one member each), and the missing times."""
    found, missing = [], []
    for t in times:
        try:
            ds = open_raw_inputs(storage, settings, t.to_pydatetime().replace(tzinfo=UTC))
        except FileNotFoundError:
            missing.append(t)
            continue
        found.append(select_truth_member(ds, member))
    if not found:
        return None, missing
    return xr.concat(found, dim="time", data_vars="all", join="exact"), missing


def verification_regions(settings: PlatformSettings) -> list[str | Region]:
    """The regions every forecast is scored over: the named ones, then the configured boxes
    (``WXPLAT_VERIFICATION_REGIONS``)."""
    boxes = [bbox(box.name, *box.bbox) for box in settings.verification_regions]
    return [*DEFAULT_REGIONS, *boxes]


def verification_asset(
    spec: ModelSpec,
    *,
    settings: PlatformSettings,
    partitions_def: dg.TimeWindowPartitionsDefinition,
    raw_inputs_key: dg.AssetKey,
    clim_key: dg.AssetKey,
    cadence: timedelta,
) -> dg.AssetsDefinition:
    """``verification/<spec.name>``: the model's forecasts against the analyses."""

    @dg.asset(
        key=verification_key(spec.name),
        retry_policy=IO_RETRY,
        deps=[
            dg.AssetDep(forecast_key(spec.name)),
            dg.AssetDep(
                raw_inputs_key, partition_mapping=truth_mapping(spec.max_lead_time, cadence)
            ),
            dg.AssetDep(clim_key),
        ],
        partitions_def=partitions_def,
        group_name=GROUP,
        code_version=VERIFICATION_CODE_VERSION,
        owners=settings.owners(spec.owners),
        kinds={"pandas", "parquet"},
        automation_condition=verification_condition(spec.max_lead_time, cadence, ignore=[clim_key]),
        metadata={
            "model": spec.name,
            "max_lead_time": str(spec.max_lead_time),
            "truth": raw_inputs_key.to_user_string(),
            "dagster/column_schema": column_schema(),
        },
        description=f"Scores of forecast/{spec.name} against the analyses at its valid times. "
        "Headline scores (e.g. 'rmse geopotential_500hPa +24h [m2 s-2]') are numeric metadata, "
        "4 significant digits with their units, plotted per partition (analysis time) in the "
        "UI's Plots tab.",
        # Before the first lead's analysis exists there is nothing to score: no
        # materialization (and no scorecard rerun) until the truth arrives.
        output_required=False,
    )
    def verification(
        context: dg.AssetExecutionContext, config: VerificationConfig, storage: StorageResource
    ):
        """Scores of the model's forecast against the analyses at its valid times."""
        t = partition_key_to_time(context.partition_key)
        store = storage.storage()
        # The forecast this cycle has (made with the artifact recorded on it): a cycle made
        # before a retrain is still scored, as the version it is.
        model_config = made_with_version(
            context.instance, forecast_key(spec.name), context.partition_key
        ) or resolve_model_config(spec, settings)
        forecast = open_forecast(store, spec, settings, t, model_config=model_config)
        truth, _ = open_truth(store, settings, list(valid_times(forecast)), config.truth_member)
        if truth is None:
            context.log.info(
                f"{spec.name} {context.partition_key}: no analysis at any valid time yet; "
                "verification waits for the first lead's truth (nothing materialized)"
            )
            return
        clim_path = climatology_relpath(settings)
        climatology = store.open_zarr(clim_path) if store.exists(clim_path) else None
        result = verify_forecast(
            forecast,
            truth,
            model=spec.name,
            climatology=climatology,
            truth_member=config.truth_member,
            skipna=config.skipna,
            regions=verification_regions(settings),
            boundary_points=settings.verification_boundary_points,
        )
        table = validate_scores(result.table)
        relpath = scores_relpath(spec, settings, t, model_config=model_config)
        url = write_table(store, table, relpath)
        for note in result.notes:
            context.log.warning(note)
        metadata = verification_metadata(
            result, table, url=url, partition_key=context.partition_key, climatology=climatology
        )
        metadata["artifact_version"] = model_config
        metadata["regions"] = ", ".join(dict.fromkeys(table["region"])) or "none"
        metadata["bytes"] = store.nbytes(relpath)  # the scores table as written
        yield dg.MaterializeResult(
            data_version=dg.DataVersion(table_version(table)), metadata=metadata
        )

    return verification
