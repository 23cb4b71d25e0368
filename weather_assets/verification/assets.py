"""Verification assets: per-model scores, the climatology and the scorecard.

- ``verification/<model>`` (partitioned like the forecasts): scores of ``forecast/<model>`` at
  analysis time t against ``raw_inputs/<source>`` at t, t+cadence, ..., t+L (L the model's
  max lead). The dependency on the analyses is a ``TimeWindowPartitionMapping`` with
  ``start_offset=0`` and ``end_offset=L/cadence`` (cadence = the partitions' spacing), so
  lineage shows which analyses verified which forecast. The scores table goes to
  ``<forecast dir>/scores.parquet``: the path convention's ``data_kind="scores"`` with a
  ``.parquet`` suffix, beside ``forecast.zarr``.
- ``climatology/<source>`` (unpartitioned): from the raw-inputs history in storage, used for
  ACC when present; see :mod:`weather_assets.verification.climatology`.
- ``scorecard`` (unpartitioned): all models against the baseline over a period of cycles
  (default the last 7 days). Unpartitioned because a scorecard is a period aggregate (MSE
  averaged over cycles); single-cycle scores stay on the verification assets, whose headline
  numbers are numeric metadata the UI plots over partitions.

Automation. ``AutomationCondition.eager()`` only looks at the latest time window, but the
truth for cycle t arrives up to L after t. The verification condition is eager with that
window widened to ``in_latest_time_window(lookback_delta=L + margin)``: when the last
analysis t+L lands (or any of them is re-materialized), cycle t's verification runs; it
waits while an analysis in its window is missing. The climatology is ignored by the
condition (missing climatology only skips ACC; a new one does not re-verify history). The
scorecard runs after any verification partition updates.
"""

import hashlib
import io
import posixpath
import warnings
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg
import pandas as pd
import xarray as xr
from pydantic import Field

from resources.storage import Storage, StorageResource
from weather_assets import paths
from weather_assets.ingest.layout import open_raw_inputs, raw_inputs_relpath
from weather_assets.keys import SCORECARD_KEY, climatology_key, forecast_key, verification_key
from weather_assets.partitions import partition_key_to_time, time_to_partition_key
from weather_assets.retries import IO_RETRY
from weather_assets.settings import PlatformSettings
from weather_assets.verification.climatology import compute_climatology
from weather_assets.verification.schemas import SCORES_SCHEMA, validate_scores
from weather_assets.verification.scorecard import (
    png_markdown,
    scorecard_markdown,
    scorecard_png,
    scorecard_table,
)
from weather_assets.verification.scores import (
    MEMBER_DIM,
    Verification,
    empty_table,
    feature_label,
    format_lead,
    select_truth_member,
    verify_forecast,
)

VERIFICATION_CODE_VERSION = "1"
GROUP = "verification"
DEFAULT_LOOKBACK_MARGIN = timedelta(days=1)
DEFAULT_MODEL_CONFIG = "default"  # the forecast layout's model_config without an artifact
# Numeric metadata on verification assets (plotted over partitions in the UI), when present.
HEADLINES: tuple[tuple[str, str, int], ...] = (
    ("rmse", "geopotential", 500),
    ("rmse", "temperature", 850),
    ("rmse", "2m_temperature", -1),
    ("rmse", "mean_sea_level_pressure", -1),
    ("acc", "geopotential", 500),
    ("crps_fair", "geopotential", 500),
    ("crps_fair", "temperature", 850),
    ("spread_skill", "geopotential", 500),
    ("spread_skill", "temperature", 850),
)
HEADLINE_LEADS = (timedelta(hours=24), timedelta(hours=72), timedelta(hours=120))

# forecast_layout(spec) -> (analysis_time, member) -> relpath of that forecast store. Resolved
# once per spec and run: finding the model_config hashes the model's artifact.
ForecastLayout = Callable[[Any], Callable[[datetime, int], str]]


# ---------------------------------------------------------------------------------------------
# keys and paths


def default_forecast_layout(settings: PlatformSettings) -> ForecastLayout:
    """Where ``forecast/<model>`` stores its cycles, by the forecast package's layout.

    ``model_config`` is the model's artifact version (``default`` without artifact), so the
    artifact is resolved (and hashed) to find it, as the forecast assets do.
    """

    def layout(spec: Any) -> Callable[[datetime, int], str]:
        try:
            from weather_assets.forecast.assets import (
                load_model_artifact,
                model_config_of,
                store_relpath,
            )
        except ImportError:  # ingest/verification-only installs: the same layout, no artifact
            return lambda t, member=0: paths.create_path(
                model_name=spec.name,
                model_config=DEFAULT_MODEL_CONFIG,
                bbox=settings.bbox,
                resolution=settings.grid_resolution,
                analysis_time=t,
                data_kind="forecast",
                member=member,
            )
        config = model_config_of(load_model_artifact(spec, settings))
        return lambda t, member=0: store_relpath(spec, settings, t, config, "forecast", member)

    return layout


def sibling(relpath: str, filename: str) -> str:
    """A file in the same folder as a store (``.../member0/forecast.zarr`` -> ``.../member0/x``)."""
    return posixpath.join(posixpath.dirname(relpath.rstrip("/")), filename)


def climatology_relpath(settings: PlatformSettings) -> str:
    """``climatology/<source>/<bbox>/<resolution>/climatology.zarr`` (no analysis time)."""
    return posixpath.join(
        "climatology",
        settings.upstream_name,
        settings.domain,
        settings.resolution,
        "climatology.zarr",
    )


def scorecard_relpath(settings: PlatformSettings, baseline: str, end: datetime, suffix: str) -> str:
    """Scorecard files, keyed by the period's last cycle: ``scorecard/vs-<baseline>/...``."""
    store = paths.create_path(
        model_name="scorecard",
        model_config=f"vs-{baseline}",
        bbox=settings.bbox,
        resolution=settings.grid_resolution,
        analysis_time=end,
        data_kind="scorecard",
    )
    return store.removesuffix(".zarr") + suffix


# ---------------------------------------------------------------------------------------------
# storage helpers


def write_table(storage: Storage, table: pd.DataFrame, relpath: str) -> str:
    """Write a table as parquet, atomically; returns its URL."""
    return storage.write_bytes(table.to_parquet(index=False), relpath)


def table_version(table: pd.DataFrame) -> str:
    """Content hash of a table (independent of its file encoding): its data version."""
    hashes = pd.util.hash_pandas_object(table, index=False).to_numpy()
    return hashlib.sha256(hashes.tobytes()).hexdigest()[:16]


def read_table(storage: Storage, relpath: str) -> pd.DataFrame | None:
    """A parquet table under the root, None if absent."""
    data = storage.read_bytes(relpath)
    return None if data is None else pd.read_parquet(io.BytesIO(data))


def open_forecast(storage: Storage, relpath: Callable[[int], str]) -> xr.Dataset:
    """A cycle's forecast: one store (with or without ``member``) or one store per member."""
    first = relpath(0)
    if not storage.exists(first):
        raise FileNotFoundError(
            f"no forecast in storage: no complete store at {storage.url(first)}"
        )
    ds = storage.open_zarr(first)
    if MEMBER_DIM in ds.dims:
        return ds
    stores, k = [ds], 1
    while storage.exists(relpath(k)):
        stores.append(storage.open_zarr(relpath(k)))
        k += 1
    if len(stores) == 1:
        return ds
    return xr.concat(stores, dim=pd.Index(range(len(stores)), name=MEMBER_DIM))


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


# ---------------------------------------------------------------------------------------------
# partition arithmetic and metadata


def partition_cadence(partitions_def: dg.TimeWindowPartitionsDefinition) -> timedelta:
    """Spacing of the analysis-time partitions (from the first window)."""
    first = partitions_def.get_first_partition_window()
    if first is None:
        raise ValueError("the partitions definition has no partitions yet")
    return first.end - first.start


def truth_offset(max_lead: timedelta, cadence: timedelta) -> int:
    """Number of partitions after t that hold analyses up to t + max_lead.

    Analyses exist only at partition times, so the last one needed is the latest at or before
    t + max_lead; leads between analyses (a 6-hourly model on 12-hourly analyses) are never
    scored and show as missing.
    """
    if max_lead < timedelta(0):
        raise ValueError(f"max lead time {max_lead} is negative")
    return int(max_lead // cadence)


def truth_mapping(offset: int) -> dg.TimeWindowPartitionMapping:
    """Cycle t depends on the analyses of partitions t .. t + offset.

    Partitions after the latest one do not exist yet; allowing them lets an operator run a
    recent cycle by hand with the leads that have analyses (automation still waits for all).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)  # the allow_... parameter is beta
        return dg.TimeWindowPartitionMapping(
            start_offset=0, end_offset=offset, allow_nonexistent_upstream_partitions=True
        )


def verification_condition(
    max_lead: timedelta, cadence: timedelta, ignore: Sequence[dg.AssetKey] = ()
) -> dg.AutomationCondition:
    """Eager, with the time window widened to cover cycles whose truth is still arriving."""
    lookback = max_lead + cadence + DEFAULT_LOOKBACK_MARGIN
    condition = dg.AutomationCondition.eager().replace(
        "in_latest_time_window", dg.AutomationCondition.in_latest_time_window(lookback)
    )
    if ignore:
        condition = condition.ignore(dg.AssetSelection.assets(*ignore))
    return condition.with_label(f"eager_with_lookback({lookback})")


def headline_metadata(table: pd.DataFrame) -> dict[str, float]:
    """Numeric headline scores, e.g. ``rmse geopotential_500hPa +24h``, where present."""
    out: dict[str, float] = {}
    for metric, variable, level in HEADLINES:
        rows = table[
            (table["metric"] == metric)
            & (table["variable"] == variable)
            & (table["level"] == level)
        ]
        for lead in HEADLINE_LEADS:
            hit = rows[rows["lead_time"] == pd.Timedelta(lead)]
            if len(hit):
                label = f"{metric} {feature_label(variable, level)} {format_lead(lead)}"
                out[label] = float(hit["value"].iloc[0])
    return out


def scores_markdown(table: pd.DataFrame, metric: str = "rmse") -> str:
    """One metric as markdown: rows variable and level, columns lead time."""
    sub = table[table["metric"] == metric]
    if sub.empty:
        return f"_no {metric} scores_"
    grid = sub.set_index(["variable", "level", "lead_time"])["value"].unstack("lead_time")
    lines = [
        "| variable | " + " | ".join(format_lead(c) for c in grid.columns) + " |",
        "|---" * (len(grid.columns) + 1) + "|",
    ]
    for (variable, level), row in grid.iterrows():
        cells = " | ".join("NaN" if pd.isna(v) else f"{v:.4g}" for v in row.to_numpy())
        lines.append(f"| {feature_label(variable, int(level))} | {cells} |")
    return "\n".join(lines)


def _column_schema() -> dg.TableSchema:
    return dg.TableSchema(
        columns=[
            dg.TableColumn(name, str(col.dtype)) for name, col in SCORES_SCHEMA.columns.items()
        ]
    )


# ---------------------------------------------------------------------------------------------
# the assets


class VerificationConfig(dg.Config):
    """Options for running a verification by hand (automation uses the defaults)."""

    truth_member: int = Field(default=0, description="Analysis member used as truth (0: control).")
    skipna: bool = Field(
        default=False,
        description="Score the valid points only when inputs have NaNs (n says how many); "
        "default: such scores are NaN.",
    )


class ClimatologyConfig(dg.Config):
    """How much history the climatology uses and how it is smoothed."""

    window_days: int = Field(default=61, description="Day-of-year smoothing window (days).")
    max_history_days: float | None = Field(
        default=None, description="Use at most this many days of the latest history."
    )


class ScorecardConfig(dg.Config):
    """The period a scorecard covers."""

    period_days: float = Field(default=7.0, description="Length of the period (days).")
    end: str | None = Field(
        default=None, description="Last analysis time (YYYY-MM-DDThhmmZ); default the latest."
    )
    metric: str = Field(default="rmse", description="Score compared to the baseline.")


def _verification_asset(
    spec: Any,
    *,
    settings: PlatformSettings,
    partitions_def: dg.TimeWindowPartitionsDefinition,
    raw_inputs_key: dg.AssetKey,
    clim_key: dg.AssetKey,
    forecast_layout: ForecastLayout,
    cadence: timedelta,
) -> dg.AssetsDefinition:
    offset = truth_offset(spec.max_lead_time, cadence)

    @dg.asset(
        key=verification_key(spec.name),
        retry_policy=IO_RETRY,
        deps=[
            dg.AssetDep(forecast_key(spec.name)),
            dg.AssetDep(raw_inputs_key, partition_mapping=truth_mapping(offset)),
            dg.AssetDep(clim_key),
        ],
        partitions_def=partitions_def,
        group_name=GROUP,
        code_version=VERIFICATION_CODE_VERSION,
        kinds={"pandas", "parquet"},
        automation_condition=verification_condition(spec.max_lead_time, cadence, ignore=[clim_key]),
        metadata={
            "model": spec.name,
            "max_lead_time": str(spec.max_lead_time),
            "truth": raw_inputs_key.to_user_string(),
            "dagster/column_schema": _column_schema(),
        },
        description=f"Scores of forecast/{spec.name} against the analyses at its valid times.",
    )
    def verification(
        context: dg.AssetExecutionContext, config: VerificationConfig, storage: StorageResource
    ) -> dg.MaterializeResult:
        """Scores of the model's forecast against the analyses at its valid times."""
        t = partition_key_to_time(context.partition_key)
        store = storage.storage()
        forecast_path = forecast_layout(spec)
        forecast = open_forecast(store, lambda k: forecast_path(t, k))
        valid = pd.DatetimeIndex(
            pd.Timestamp(forecast["time"].values[0]) + pd.to_timedelta(forecast["lead_time"].values)
        )
        truth, _ = open_truth(store, settings, list(valid), config.truth_member)
        clim_path = climatology_relpath(settings)
        climatology = store.open_zarr(clim_path) if store.exists(clim_path) else None
        if truth is None:
            result = Verification(
                table=empty_table(),
                scored_leads=[],
                missing_leads=[pd.Timedelta(v) for v in forecast["lead_time"].values],
                members=int(forecast.sizes.get(MEMBER_DIM, 1)),
                notes=["no analysis at any valid time yet"],
            )
        else:
            result = verify_forecast(
                forecast,
                truth,
                model=spec.name,
                climatology=climatology,
                truth_member=config.truth_member,
                skipna=config.skipna,
            )
        table = validate_scores(result.table)
        url = write_table(store, table, sibling(forecast_path(t, 0), "scores.parquet"))
        for note in result.notes:
            context.log.warning(note)
        metadata: dict[str, Any] = {
            "path": dg.MetadataValue.path(url),
            "analysis_time": context.partition_key,
            "dagster/row_count": len(table),
            "members": result.members,
            "scored_leads": len(result.scored_leads),
            "missing_leads": ", ".join(format_lead(x) for x in result.missing_leads) or "none",
            "missing_lead_count": len(result.missing_leads),
            "complete": not result.missing_leads and result.nan_rows.empty,
            "nan_scores": len(result.nan_rows),
            "notes": "; ".join(result.notes) or "none",
            "rmse": dg.MetadataValue.md(scores_markdown(table, "rmse")),
        }
        if result.members > 1:
            metadata["crps_fair"] = dg.MetadataValue.md(scores_markdown(table, "crps_fair"))
        if climatology is not None:
            attrs = climatology.attrs
            metadata["climatology_method"] = str(attrs.get("method", "?"))
            metadata["climatology_history"] = (
                f"{attrs.get('history_times', '?')} analyses, "
                f"{attrs.get('history_start', '?')} .. {attrs.get('history_end', '?')}"
            )
        metadata.update(headline_metadata(table))
        return dg.MaterializeResult(
            data_version=dg.DataVersion(table_version(table)), metadata=metadata
        )

    return verification


def _history_times(
    storage: Storage,
    settings: PlatformSettings,
    partitions_def: dg.TimeWindowPartitionsDefinition,
    max_days: float | None,
) -> list[datetime]:
    """Analysis times whose raw inputs are in storage (the latest ``max_days`` if given)."""
    keys = partitions_def.get_partition_keys()
    times = [partition_key_to_time(k) for k in keys]
    if max_days is not None and times:
        first = times[-1] - timedelta(days=max_days)
        times = [t for t in times if t >= first]
    return [t for t in times if storage.exists(raw_inputs_relpath(settings, t, 0))]


def _climatology_asset(
    *,
    settings: PlatformSettings,
    partitions_def: dg.TimeWindowPartitionsDefinition,
    raw_inputs_key: dg.AssetKey,
    clim_key: dg.AssetKey,
) -> dg.AssetsDefinition:
    @dg.asset(
        key=clim_key,
        retry_policy=IO_RETRY,
        deps=[raw_inputs_key],
        group_name=GROUP,
        code_version=VERIFICATION_CODE_VERSION,
        kinds={"xarray", "zarr"},
        description=f"Climatology of {raw_inputs_key.to_user_string()} (per day of year and "
        "hour, smoothed; hourly mean while history is shorter than a year), for ACC.",
    )
    def climatology(
        context: dg.AssetExecutionContext, config: ClimatologyConfig, storage: StorageResource
    ) -> dg.MaterializeResult:
        """Climatology of the analyses in storage, for anomaly correlation."""
        store = storage.storage()
        times = _history_times(store, settings, partitions_def, config.max_history_days)
        if not times:
            raise FileNotFoundError(
                f"no raw inputs of {settings.upstream_name!r} in storage at {store.root}: "
                "materialize raw_inputs partitions before the climatology"
            )
        history = xr.concat(
            [select_truth_member(open_raw_inputs(store, settings, t), 0) for t in times],
            dim="time",
            data_vars="all",
            join="exact",
        )
        # Computed once into memory (it is small next to the history it reads), then written.
        clim = compute_climatology(history, window_days=config.window_days).load()
        clim = clim.chunk({d: 1 for d in ("dayofyear", "hour") if d in clim.dims})
        written = store.write_zarr(clim, climatology_relpath(settings))
        method = clim.attrs["method"]
        if method != "dayofyear_hour":
            context.log.warning(
                f"only {len(times)} analyses over less than a year: the climatology is the "
                "hourly mean of the history (no seasonal cycle); ACC is indicative only"
            )
        return dg.MaterializeResult(
            data_version=dg.DataVersion(written.checksum[:16]),
            metadata={
                "path": dg.MetadataValue.path(written.url),
                "method": method,
                "history_times": len(times),
                "history_start": time_to_partition_key(times[0]),
                "history_end": time_to_partition_key(times[-1]),
                "window_days": config.window_days,
                "bytes": written.nbytes,
            },
        )

    return climatology


def _scorecard_asset(
    specs: Sequence[Any],
    *,
    settings: PlatformSettings,
    partitions_def: dg.TimeWindowPartitionsDefinition,
    baseline: str,
    forecast_layout: ForecastLayout,
) -> dg.AssetsDefinition:
    condition = (
        dg.AutomationCondition.any_deps_match(dg.AutomationCondition.newly_updated())
        .since_last_handled()
        .with_label("verification_updated")
        & ~dg.AutomationCondition.in_progress()
    ).with_label("after_new_scores")

    @dg.asset(
        key=SCORECARD_KEY,
        retry_policy=IO_RETRY,
        deps=[verification_key(s.name) for s in specs],
        group_name=GROUP,
        code_version=VERIFICATION_CODE_VERSION,
        kinds={"pandas", "parquet", "matplotlib"},
        automation_condition=condition,
        metadata={"baseline": baseline, "models": ", ".join(s.name for s in specs)},
        description=f"Every model against {baseline!r} over a period of cycles: percentage "
        "difference in RMSE per variable, level and lead time.",
    )
    def scorecard(
        context: dg.AssetExecutionContext, config: ScorecardConfig, storage: StorageResource
    ) -> dg.MaterializeResult:
        """All models against the baseline over a period: table, markdown and PNG."""
        store = storage.storage()
        keys = partitions_def.get_partition_keys()
        if config.end is not None:
            end = paths.parse_analysis_time(config.end)
            keys = [k for k in keys if partition_key_to_time(k) <= end]
        layouts, skipped = {}, []
        for spec in specs:
            try:
                layouts[spec.name] = forecast_layout(spec)
            except (OSError, ValueError) as err:  # e.g. an artifact not built or fetched yet
                skipped.append(spec.name)
                context.log.warning(f"{spec.name} left out of the scorecard: {err}")
        tables: list[pd.DataFrame] = []
        # Walk back from the latest cycle: the period ends at the latest cycle with scores
        # (verification lags the forecasts by their max lead) and spans period_days.
        latest: datetime | None = None
        for key in reversed(keys):
            t = partition_key_to_time(key)
            if latest is not None and t <= latest - timedelta(days=config.period_days):
                break
            for layout in layouts.values():
                path = sibling(layout(t, 0), "scores.parquet")
                table = read_table(store, path)
                if table is not None and len(table):
                    tables.append(table)
                    latest = latest or t
        if not tables:
            raise FileNotFoundError(
                "no verification scores in storage for the period: materialize verification "
                "partitions first"
            )
        table = pd.concat(tables, ignore_index=True)
        end_time = table["analysis_time"].max()
        start_time = end_time - pd.Timedelta(days=config.period_days)
        table = table[table["analysis_time"] > start_time]
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


def build_verification_assets(
    specs: Sequence[Any],
    *,
    settings: PlatformSettings,
    partitions_def: dg.TimeWindowPartitionsDefinition,
    raw_inputs_key: dg.AssetKey,
    baseline: str | None = "persistence",
    forecast_layout: ForecastLayout | None = None,
) -> list:
    """``verification/<model>`` per spec, ``climatology/<source>`` and the ``scorecard``.

    ``specs`` are registry entries (``name``, ``max_lead_time``); ``baseline`` names one of
    them (None: no scorecard). ``forecast_layout(spec)(t, member)`` locates a forecast store
    (default: the forecast package's layout).
    """
    names = [s.name for s in specs]
    if baseline is not None and specs and baseline not in names:
        raise ValueError(
            f"scorecard baseline {baseline!r} is not a registered model; registered: "
            f"{', '.join(names)}"
        )
    forecast_layout = forecast_layout or default_forecast_layout(settings)
    cadence = partition_cadence(partitions_def)
    clim_key = climatology_key(settings.upstream_name)
    assets: list = [
        _climatology_asset(
            settings=settings,
            partitions_def=partitions_def,
            raw_inputs_key=raw_inputs_key,
            clim_key=clim_key,
        )
    ]
    for spec in specs:
        assets.append(
            _verification_asset(
                spec,
                settings=settings,
                partitions_def=partitions_def,
                raw_inputs_key=raw_inputs_key,
                clim_key=clim_key,
                forecast_layout=forecast_layout,
                cadence=cadence,
            )
        )
    if baseline is not None and specs:
        assets.append(
            _scorecard_asset(
                specs,
                settings=settings,
                partitions_def=partitions_def,
                baseline=baseline,
                forecast_layout=forecast_layout,
            )
        )
    return assets
