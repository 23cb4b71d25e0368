"""What the verification assets report: headline numbers, markdown tables, data versions.

Plain functions of a scores table (see :mod:`weather_assets.verification.scores`); the asset
modules put their results into Dagster metadata.
"""

import hashlib
from datetime import timedelta
from typing import Any

import dagster as dg
import pandas as pd
import xarray as xr

from weather_assets.verification.schemas import SCORES_SCHEMA
from weather_assets.verification.scores import Verification, feature_label, format_lead

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


def table_version(table: pd.DataFrame) -> str:
    """Content hash of a table (independent of its file encoding): its data version."""
    hashes = pd.util.hash_pandas_object(table, index=False).to_numpy()
    return hashlib.sha256(hashes.tobytes()).hexdigest()[:16]


def column_schema() -> dg.TableSchema:
    """The scores table's columns, for the UI (``dagster/column_schema``)."""
    return dg.TableSchema(
        columns=[
            dg.TableColumn(name, str(col.dtype)) for name, col in SCORES_SCHEMA.columns.items()
        ]
    )


def verification_metadata(
    result: Verification,
    table: pd.DataFrame,
    *,
    url: str,
    partition_key: str,
    climatology: xr.Dataset | None,
) -> dict[str, Any]:
    """A verification's materialization metadata: completeness, markdown, headline numbers."""
    metadata: dict[str, Any] = {
        "path": dg.MetadataValue.path(url),
        "analysis_time": partition_key,
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
    return metadata
