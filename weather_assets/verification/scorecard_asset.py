"""``scorecard`` (unpartitioned): all models against the baseline over a period of cycles.

Unpartitioned because a scorecard is a period aggregate (MSE averaged over cycles, default the
last 7 days); single-cycle scores stay on the verification assets, whose headline numbers are
numeric metadata the UI plots over partitions, and the scorecard's trend picture shows them
against analysis time.

Every artifact version a model has scores for is read (:func:`resources.layout.scores_versions`):
after a retrain the card keeps the cycles scored with the superseded artifact as their own
rows, next to the current artifact's. The table and its pictures are written under the storage
root, one path per period and model set (:func:`resources.layout.scorecard_relpath`), so a
scorecard never overwrites another period's. A period without paired scores is an honest
"no data" materialization (``no_data``, the reason, ``dagster/row_count`` 0) whose picture says
so, at its own path. See :mod:`weather_assets.verification.scorecard` for the table itself.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg
import pandas as pd
from pydantic import Field

from model_registry.resolve import resolve_model_config
from model_registry.spec import ModelSpec
from resources.layout import (
    model_configs,
    read_table,
    scorecard_relpath,
    scores_relpath,
    scores_versions,
    write_table,
)
from resources.storage import Storage, StorageResource
from weather_assets import paths
from weather_assets.keys import SCORECARD_KEY, forecast_key, verification_key
from weather_assets.partitions import partition_key_to_time, time_to_partition_key
from weather_assets.pictures import png_markdown
from weather_assets.retries import IO_RETRY
from weather_assets.settings import PlatformSettings
from weather_assets.verification.assets import GROUP
from weather_assets.verification.automation import scorecard_condition
from weather_assets.verification.report import card_column_schema
from weather_assets.verification.schemas import validate_card
from weather_assets.verification.scorecard import (
    VERSION_COLUMN,
    cost_markdown,
    cost_table,
    empty_card,
    model_set,
    paired_cycles,
    scorecard_markdown,
    scorecard_png,
    scorecard_regions_markdown,
    scorecard_table,
    trend_png,
    versions_summary,
)

SCORECARD_CODE_VERSION = "3"  # 3: regions and skill per GPU-hour


class ScorecardConfig(dg.Config):
    """The period a scorecard covers."""

    period_days: float = Field(default=7.0, description="Length of the period (days).")
    end: str | None = Field(
        default=None, description="Last analysis time (YYYY-MM-DDThhmmZ); default the latest."
    )
    metric: str = Field(default="rmse", description="Score compared to the baseline.")


@dataclass(frozen=True)
class PeriodScores:
    """The scores of a period: the cycles it spans and the tables found (all versions)."""

    cycles: list[datetime]  # the partitions' cycles in the period, ascending
    table: pd.DataFrame | None  # with an ``artifact_version`` column; None: no scores

    @property
    def first(self) -> datetime:
        """The period's first cycle."""
        return self.cycles[0]

    @property
    def last(self) -> datetime:
        """The period's last cycle."""
        return self.cycles[-1]


def cycle_scores(
    storage: Storage,
    settings: PlatformSettings,
    spec: ModelSpec,
    t: datetime,
    configs: Sequence[str] | None = None,
) -> list[pd.DataFrame]:
    """A model's scores of cycle ``t``, one table per artifact version present (non-empty),
    each with an ``artifact_version`` column (``configs``: see :func:`scores_versions`)."""
    tables = []
    for version in scores_versions(storage, spec, settings, t, configs):
        table = read_table(storage, scores_relpath(spec, settings, t, model_config=version))
        if table is not None and len(table):
            tables.append(table.assign(**{VERSION_COLUMN: version}))
    return tables


def recent_scores(
    storage: Storage,
    settings: PlatformSettings,
    specs: Sequence[ModelSpec],
    times: Sequence[datetime],
    period_days: float,
) -> PeriodScores:
    """The scores of ``specs`` (every artifact version) over the latest period with scores.

    Walks back from the latest of ``times`` (ascending): the period ends at the latest cycle
    with scores (verification lags the forecasts by their max lead) and spans ``period_days``:
    the cycles in ``(end - period_days, end]``. Without scores the period ends at the latest
    of ``times`` and the table is None.
    """
    tables: list[pd.DataFrame] = []
    latest: datetime | None = None
    configs = {spec.name: model_configs(storage, spec) for spec in specs}  # listed once
    for t in reversed(times):
        if latest is not None and t <= latest - timedelta(days=period_days):
            break
        for spec in specs:
            found = cycle_scores(storage, settings, spec, t, configs[spec.name])
            tables.extend(found)
            if found and latest is None:
                latest = t
    end = latest if latest is not None else (times[-1] if times else None)
    if end is None:
        return PeriodScores([], None)
    cycles = [t for t in times if end - timedelta(days=period_days) < t <= end]
    return PeriodScores(cycles, pd.concat(tables, ignore_index=True) if tables else None)


def _number(value: object) -> float | None:
    value = getattr(value, "value", value)  # a MetadataValue or a plain number
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def forecast_costs(
    instance: dg.DagsterInstance, specs: Sequence[ModelSpec], partition_keys: Sequence[str]
) -> pd.DataFrame:
    """One row per forecast of ``specs`` in ``partition_keys`` that recorded its cost:
    model, artifact_version, gpu_seconds, cpu_seconds (NaN where not recorded; forecasts
    kept because the same inputs were already forecast ran nothing and are left out)."""
    rows = []
    for spec in specs:
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(
                asset_key=forecast_key(spec.name), asset_partitions=list(partition_keys)
            ),
            limit=max(1, 4 * len(partition_keys)),
        ).records
        for record in records:
            md = record.asset_materialization.metadata
            gpu, cpu = _number(md.get("gpu_seconds")), _number(md.get("cpu_seconds"))
            if gpu is None and cpu is None:
                continue
            version = md.get("artifact_version")
            rows.append(
                {
                    "model": spec.name,
                    VERSION_COLUMN: str(getattr(version, "value", version) or "default"),
                    "partition": record.partition_key,
                    "gpu_seconds": float("nan") if gpu is None else gpu,
                    "cpu_seconds": float("nan") if cpu is None else cpu,
                }
            )
    columns = ["model", VERSION_COLUMN, "partition", "gpu_seconds", "cpu_seconds"]
    return pd.DataFrame(rows, columns=columns)


def _key(t: datetime | pd.Timestamp) -> str:
    stamp = pd.Timestamp(t)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp
    return time_to_partition_key(stamp.to_pydatetime())


def _aware(t: pd.Timestamp) -> datetime:
    return pd.Timestamp(t).to_pydatetime().replace(tzinfo=UTC)


def no_data_reason(
    table: pd.DataFrame | None, baseline: str, metric: str, skipped: Sequence[str]
) -> str:
    """Why a period has no scorecard rows, in one sentence."""
    if table is None:
        reason = (
            "no verification scores in storage for the period: materialize verification "
            "partitions first"
        )
    else:
        with_metric = table[table["metric"] == metric]
        models = sorted(set(with_metric["model"]))
        if baseline not in models:
            reason = (
                f"the baseline {baseline!r} has no {metric} scores in the period; models with "
                f"scores: {', '.join(models) or 'none'}"
            )
        elif models == [baseline]:
            reason = (
                f"no model other than the baseline {baseline!r} has {metric} scores in the period"
            )
        else:
            others = ", ".join(m for m in models if m != baseline)
            reason = (
                f"no cycle and lead of {others} was scored together with the baseline "
                f"{baseline!r} in the period"
            )
    if skipped:
        reason += f" (left out: {', '.join(skipped)})"
    return reason


@dataclass(frozen=True)
class Scorecard:
    """A period's scorecard, ready to write: the card, its pictures and what to report."""

    card: pd.DataFrame
    markdown: str
    png: bytes
    trend: bytes | None  # None without any scores
    start: datetime  # the cycles used (the period's cycles when there is no data)
    end: datetime
    cycles: int  # cycles paired with the baseline (0: no data)
    requested: str  # the period's cycles, ``first .. last``
    models_text: str
    models_hash: str
    reason: str | None  # why there is no data; None when the card has rows
    regions_markdown: str = ""  # significance per region (empty: global only)
    cost: pd.DataFrame | None = None  # skill per GPU-hour per model (scorecard.cost_table)


def build_scorecard(
    period: PeriodScores,
    *,
    baseline: str,
    metric: str,
    current: dict[str, str],
    skipped: Sequence[str] = (),
    costs: pd.DataFrame | None = None,
) -> Scorecard:
    """The scorecard of a period's scores (no Dagster, no storage); ``costs``: the
    forecasts' cost metadata (:func:`forecast_costs`) for the skill per GPU-hour."""
    requested = f"{_key(period.first)} .. {_key(period.last)}"
    scores = period.table
    card = empty_card()
    if scores is not None:
        try:
            card = scorecard_table(scores, baseline=baseline, metric=metric, current=current)
        except ValueError:  # no baseline scores: reported by no_data_reason
            card = empty_card()
    pairs = set(current.items())
    if scores is not None:
        pairs |= set(zip(scores["model"], scores[VERSION_COLUMN], strict=True))
    models_text, models_hash = model_set(pairs)
    trend = None
    if scores is not None:
        trend = trend_png(
            scores,
            metric=metric,
            current=current,
            title=f"headline {metric} against analysis time, cycles {requested}",
        )
    if card.empty:
        reason = no_data_reason(scores, baseline, metric, skipped)
        return Scorecard(
            card=card,
            markdown=scorecard_markdown(card, empty=f"no data for cycles {requested}: {reason}"),
            png=scorecard_png(
                card, title=f"{metric} vs {baseline}, cycles {requested}: no data", empty=reason
            ),
            trend=trend,
            start=period.first,
            end=period.last,
            cycles=0,
            requested=requested,
            models_text=models_text,
            models_hash=models_hash,
            reason=reason,
        )
    card = validate_card(card)
    used = paired_cycles(scores, baseline=baseline, metric=metric, current=current)
    start, end = _aware(used[0]), _aware(used[-1])
    return Scorecard(
        card=card,
        markdown=scorecard_markdown(card),
        png=scorecard_png(
            card, title=f"{metric} vs {baseline}, cycles {_key(start)} .. {_key(end)}"
        ),
        trend=trend,
        start=start,
        end=end,
        cycles=len(used),
        requested=requested,
        models_text=models_text,
        models_hash=models_hash,
        reason=None,
        regions_markdown=scorecard_regions_markdown(card),
        cost=cost_table(card, costs),
    )


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
        owners=settings.owners(),
        kinds={"pandas", "parquet", "matplotlib"},
        automation_condition=scorecard_condition(),
        metadata={
            "baseline": baseline,
            "models": ", ".join(s.name for s in specs),
            "dagster/column_schema": card_column_schema(),
        },
        description=f"Every model (per artifact version) against {baseline!r} over a period of "
        "cycles: percentage difference in RMSE per region, variable, level and lead time with "
        "its 95 % significance, skill per GPU-hour per model, and the headline scores against "
        "analysis time.",
    )
    def scorecard(
        context: dg.AssetExecutionContext, config: ScorecardConfig, storage: StorageResource
    ) -> dg.MaterializeResult:
        """All models against the baseline over a period: table, markdown and PNGs."""
        store = storage.storage()
        times = [partition_key_to_time(k) for k in partitions_def.get_partition_keys()]
        if config.end is not None:
            end = paths.parse_analysis_time(config.end)
            times = [t for t in times if t <= end]
        current, skipped = {}, []
        for spec in specs:
            try:
                current[spec.name] = resolve_model_config(spec, settings)
            except (OSError, ValueError) as err:  # e.g. an artifact not built or fetched yet
                skipped.append(spec.name)
                context.log.warning(f"{spec.name} left out of the scorecard: {err}")
        used = [s for s in specs if s.name in current]
        period = recent_scores(store, settings, used, times, config.period_days)
        if not period.cycles:
            raise ValueError(
                f"no cycle in the partitions up to {config.end or 'now'}: nothing to score"
            )
        costs = forecast_costs(
            context.instance, used, [time_to_partition_key(t) for t in period.cycles]
        )
        result = build_scorecard(
            period,
            baseline=baseline,
            metric=config.metric,
            current=current,
            skipped=skipped,
            costs=costs,
        )
        relpath = scorecard_relpath(
            settings, baseline, result.start, result.end, result.models_hash, ""
        )
        png_url = store.write_bytes(result.png, relpath + ".png")
        table_url = write_table(store, result.card, relpath + ".parquet")
        period_text = f"{_key(result.start)} .. {_key(result.end)}"
        metadata: dict[str, Any] = {
            "scorecard": dg.MetadataValue.md(
                f"{png_markdown(result.png, f'scorecard vs {baseline}')}\n\n{result.markdown}"
            ),
            "table": dg.MetadataValue.md(result.markdown),
            "png_path": dg.MetadataValue.path(png_url),
            "path": dg.MetadataValue.path(table_url),
            "period": period_text,
            "requested_period": f"{result.requested} ({config.period_days:g} days up to the "
            "latest cycle with scores)",
            "cycles": result.cycles,
            "no_data": result.reason is not None,
            "reason": result.reason or "none",
            "models": ", ".join(sorted(result.card["model"].unique())) or "none",
            "artifact_versions": versions_summary(result.card),
            "model_set": result.models_text,
            "left_out": ", ".join(skipped) or "none",
            "dagster/row_count": len(result.card),
            "dagster/column_schema": card_column_schema(),
        }
        if result.regions_markdown:
            metadata["regions"] = dg.MetadataValue.md(result.regions_markdown)
        if result.cost is not None:
            cost_url = write_table(store, result.cost, relpath + "_cost.parquet")
            metadata["skill_per_gpu_hour"] = dg.MetadataValue.md(cost_markdown(result.cost))
            metadata["cost_path"] = dg.MetadataValue.path(cost_url)
        if result.trend is not None:
            trend_url = store.write_bytes(result.trend, relpath + "_trend.png")
            metadata["trend"] = dg.MetadataValue.md(png_markdown(result.trend, "trend"))
            metadata["trend_path"] = dg.MetadataValue.path(trend_url)
        if result.reason is not None:
            context.log.warning(f"scorecard over {period_text}: no data ({result.reason})")
        context.log.info(f"scorecard over {period_text} written to {table_url}")
        return dg.MaterializeResult(metadata=metadata)

    return scorecard
