"""``scorecard`` (unpartitioned): all models against the baseline over a period of cycles.

Unpartitioned because a scorecard is a period aggregate (MSE averaged over cycles, default the
last 7 days); single-cycle scores stay on the verification assets, whose headline numbers are
numeric metadata the UI plots over partitions. The table and its picture are written under
the storage root, keyed by the period's last cycle; see
:mod:`weather_assets.verification.scorecard` for the table itself.
"""

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import dagster as dg
import pandas as pd
from pydantic import Field

from model_registry.resolve import resolve_model_config
from model_registry.spec import ModelSpec
from resources.layout import read_table, scorecard_relpath, scores_relpath, write_table
from resources.storage import Storage, StorageResource
from weather_assets import paths
from weather_assets.keys import SCORECARD_KEY, verification_key
from weather_assets.partitions import partition_key_to_time, time_to_partition_key
from weather_assets.retries import IO_RETRY
from weather_assets.settings import PlatformSettings
from weather_assets.verification.assets import GROUP
from weather_assets.verification.automation import scorecard_condition
from weather_assets.verification.scorecard import (
    last_period,
    png_markdown,
    scorecard_markdown,
    scorecard_png,
    scorecard_table,
)

SCORECARD_CODE_VERSION = "1"


class ScorecardConfig(dg.Config):
    """The period a scorecard covers."""

    period_days: float = Field(default=7.0, description="Length of the period (days).")
    end: str | None = Field(
        default=None, description="Last analysis time (YYYY-MM-DDThhmmZ); default the latest."
    )
    metric: str = Field(default="rmse", description="Score compared to the baseline.")


def recent_scores(
    storage: Storage,
    settings: PlatformSettings,
    models: Sequence[tuple[ModelSpec, str]],
    times: Sequence[datetime],
    period_days: float,
) -> pd.DataFrame | None:
    """The scores tables of ``models`` (spec, model_config) over the latest period with scores.

    Walks back from the latest of ``times`` (ascending): the period ends at the latest cycle
    with scores (verification lags the forecasts by their max lead) and spans ``period_days``.
    None when no cycle has scores.
    """
    tables: list[pd.DataFrame] = []
    latest: datetime | None = None
    for t in reversed(times):
        if latest is not None and t <= latest - timedelta(days=period_days):
            break
        for spec, model_config in models:
            table = read_table(
                storage, scores_relpath(spec, settings, t, model_config=model_config)
            )
            if table is not None and len(table):
                tables.append(table)
                latest = latest or t
    return pd.concat(tables, ignore_index=True) if tables else None


def scorecard_asset(
    specs: Sequence[ModelSpec],
    *,
    settings: PlatformSettings,
    partitions_def: dg.TimeWindowPartitionsDefinition,
    baseline: str,
) -> dg.AssetsDefinition:
    """The scorecard of ``specs`` against ``baseline`` (one of them)."""

    @dg.asset(
        key=SCORECARD_KEY,
        retry_policy=IO_RETRY,
        deps=[verification_key(s.name) for s in specs],
        group_name=GROUP,
        code_version=SCORECARD_CODE_VERSION,
        kinds={"pandas", "parquet", "matplotlib"},
        automation_condition=scorecard_condition(),
        metadata={"baseline": baseline, "models": ", ".join(s.name for s in specs)},
        description=f"Every model against {baseline!r} over a period of cycles: percentage "
        "difference in RMSE per variable, level and lead time.",
    )
    def scorecard(
        context: dg.AssetExecutionContext, config: ScorecardConfig, storage: StorageResource
    ) -> dg.MaterializeResult:
        """All models against the baseline over a period: table, markdown and PNG."""
        store = storage.storage()
        times = [partition_key_to_time(k) for k in partitions_def.get_partition_keys()]
        if config.end is not None:
            end = paths.parse_analysis_time(config.end)
            times = [t for t in times if t <= end]
        resolved, skipped = [], []
        for spec in specs:
            try:
                resolved.append((spec, resolve_model_config(spec, settings)))
            except (OSError, ValueError) as err:  # e.g. an artifact not built or fetched yet
                skipped.append(spec.name)
                context.log.warning(f"{spec.name} left out of the scorecard: {err}")
        scores = recent_scores(store, settings, resolved, times, config.period_days)
        if scores is None:
            raise FileNotFoundError(
                "no verification scores in storage for the period: materialize verification "
                "partitions first"
            )
        table, start_time, end_time = last_period(scores, config.period_days)
        card = scorecard_table(table, baseline=baseline, metric=config.metric)
        end_dt = end_time.to_pydatetime().replace(tzinfo=UTC)
        period = f"{time_to_partition_key(start_time.to_pydatetime())} .. {time_to_partition_key(end_dt)}"
        png = scorecard_png(card, title=f"{config.metric} vs {baseline}, cycles {period}")
        png_url = store.write_bytes(png, scorecard_relpath(settings, baseline, end_dt, ".png"))
        table_url = write_table(
            store, card, scorecard_relpath(settings, baseline, end_dt, ".parquet")
        )
        markdown = scorecard_markdown(card)
        context.log.info(f"scorecard over {period} written to {table_url}")
        return dg.MaterializeResult(
            metadata={
                "scorecard": dg.MetadataValue.md(
                    f"{png_markdown(png, f'scorecard vs {baseline}')}\n\n{markdown}"
                ),
                "table": dg.MetadataValue.md(markdown),
                "png_path": dg.MetadataValue.path(png_url),
                "path": dg.MetadataValue.path(table_url),
                "period": period,
                "cycles": int(table["analysis_time"].nunique()),
                "models": ", ".join(sorted(card["model"].unique())) if len(card) else "none",
                "left_out": ", ".join(skipped) or "none",
                "dagster/row_count": len(card),
            }
        )

    return scorecard
