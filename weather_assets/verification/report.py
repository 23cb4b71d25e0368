"""What the verification assets report: headline numbers, markdown tables, data versions.

Plain functions of a scores table (see :mod:`weather_assets.verification.scores`); the asset
modules put their results into Dagster metadata.

The UI's "Plots" tab, by partition, asks for the latest 120 partition keys of the asset's
partitions definition (``partitionKeyConnection(limit: 120, ascending: false)``) and the
latest materialization of each (``latestMaterializationByPartition``), then plots every
``FloatMetadataEntry``/``IntMetadataEntry`` label found among those (dagster-webserver 1.13,
``AssetEventMetadataPlots.tsx``, ``AssetMaterializationGraphs.tsx``). So the headline scores
are ``FloatMetadataValue``s, finite, with one type per label, units in the label and
4 significant digits; the plot is only empty when none of the latest 120 partitions is
materialized (partitions running on to today while the verified cycles lie further back).
"""

import hashlib
import math
from typing import Any

import dagster as dg
import pandas as pd
import xarray as xr

from weather_assets.verification.schemas import CARD_TABLE, SCORES_TABLE, TableSpec
from weather_assets.verification.scores import (
    COLUMNS,
    HEADLINE_LEADS,
    HEADLINES,
    Verification,
    feature_label,
    format_lead,
    global_rows,
    score_units,
)

# Significant digits of the numbers in metadata: scores are estimates over a grid of a few
# thousand points, 4 digits say all they can (the parquet tables keep full precision).
SIGNIFICANT_DIGITS = 4


def significant(value: float, digits: int = SIGNIFICANT_DIGITS) -> float:
    """``value`` rounded to ``digits`` significant digits (non-finite values unchanged)."""
    if not math.isfinite(value) or value == 0:
        return value
    return float(f"{value:.{digits}g}")


def headline_label(metric: str, variable: str, level: int, lead: object) -> str:
    """``rmse geopotential_500hPa +24h [m2 s-2]``: the score, the lead and its CF units."""
    units = score_units(metric, variable)
    return f"{metric} {feature_label(variable, level)} {format_lead(lead)} [{units}]"


def headline_metadata(table: pd.DataFrame) -> dict[str, dg.FloatMetadataValue]:
    """Numeric headline scores, e.g. ``rmse geopotential_500hPa +24h [m2 s-2]``, where present.

    Every value is a ``FloatMetadataValue`` (the UI plots Float/Int entries per partition),
    finite (a NaN score leaves its entry out: a gap in the plot, not a null point) and rounded
    to :data:`SIGNIFICANT_DIGITS`; the units are in the label, the one text the plot shows.
    Global scores only (the regions are in the table).
    """
    table = global_rows(table)
    out: dict[str, dg.FloatMetadataValue] = {}
    for metric, variable, level in HEADLINES:
        rows = table[
            (table["metric"] == metric)
            & (table["variable"] == variable)
            & (table["level"] == level)
        ]
        for lead in HEADLINE_LEADS:
            hit = rows[rows["lead_time"] == pd.Timedelta(lead)]
            if not len(hit):
                continue
            value = float(hit["value"].iloc[0])
            if math.isfinite(value):
                label = headline_label(metric, variable, level, lead)
                out[label] = dg.MetadataValue.float(significant(value))
    return out


def scores_markdown(table: pd.DataFrame, metric: str = "rmse") -> str:
    """One metric as markdown: rows variable and level (with units), columns lead time; values
    to 4 significant digits. Global scores only."""
    sub = global_rows(table)
    sub = sub[sub["metric"] == metric]
    if sub.empty:
        return f"_no {metric} scores_"
    grid = sub.set_index(["variable", "level", "lead_time"])["value"].unstack("lead_time")
    lines = [
        "| variable | units | " + " | ".join(format_lead(c) for c in grid.columns) + " |",
        "|---" * (len(grid.columns) + 2) + "|",
    ]
    for (variable, level), row in grid.iterrows():
        cells = " | ".join(
            "NaN" if pd.isna(v) else f"{v:.{SIGNIFICANT_DIGITS}g}" for v in row.to_numpy()
        )
        units = score_units(metric, variable)
        lines.append(f"| {feature_label(variable, int(level))} | {units} | {cells} |")
    return "\n".join(lines)


def table_version(table: pd.DataFrame) -> str:
    """Content hash of a table (independent of its file encoding): its data version."""
    hashes = pd.util.hash_pandas_object(table, index=False).to_numpy()
    return hashlib.sha256(hashes.tobytes()).hexdigest()[:16]


def table_schema(table: TableSpec, order: tuple[str, ...] | None = None) -> dg.TableSchema:
    """A table spec as the UI's column schema: every column with its type and description."""
    names = list(order) if order is not None else list(table.columns)
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                name,
                table.columns[name].dtype,
                description=table.columns[name].description,
                constraints=dg.TableColumnConstraints(nullable=table.columns[name].nullable),
            )
            for name in names
        ]
    )


def column_schema() -> dg.TableSchema:
    """The scores table's columns, for the UI (``dagster/column_schema``)."""
    return table_schema(SCORES_TABLE, COLUMNS)


def card_column_schema() -> dg.TableSchema:
    """The scorecard table's columns, for the UI (``dagster/column_schema``)."""
    return table_schema(CARD_TABLE)


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
