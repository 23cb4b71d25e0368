"""Scorecard: every model against a baseline, as a table and a picture.

Cells are the percentage difference of a model's score from the baseline's,
``100 * (model - baseline) / baseline``, per variable and level (rows) and lead time
(columns): negative is better for errors (RMSE). Scores are paired: a (cycle, lead) counts
only where both the model and the baseline were scored, and each side's RMSE over the period
is the root of its mean MSE (:func:`weather_assets.verification.scores.aggregate_scores`).
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence

import numpy as np
import pandas as pd

from weather_assets.verification.scores import (
    aggregate_scores,
    feature_label,
    format_lead,
)

CARD_COLUMNS = (
    "model",
    "baseline",
    "metric",
    "variable",
    "level",
    "lead_time",
    "value",
    "baseline_value",
    "pct_diff",
    "cycles",
)
# Metrics where larger is better: the colour scale is flipped for them.
HIGHER_IS_BETTER = ("acc",)


def last_period(
    table: pd.DataFrame, period_days: float
) -> tuple[pd.DataFrame, pd.Timestamp, pd.Timestamp]:
    """The rows of the ``period_days`` ending at the table's latest cycle, start and end.

    The period is ``(end - period_days, end]``: ``period_days`` of cycles, the latest included.
    """
    end = table["analysis_time"].max()
    start = end - pd.Timedelta(days=period_days)
    return table[table["analysis_time"] > start], start, end


def scorecard_table(
    table: pd.DataFrame,
    *,
    baseline: str = "persistence",
    metric: str = "rmse",
    start: object = None,
    end: object = None,
) -> pd.DataFrame:
    """Tidy scorecard: one row per model (not the baseline), variable, level and lead time.

    ValueError when the baseline has no scores of ``metric`` in the table.
    """
    df = table[table["metric"] == metric]
    base = df[df["model"] == baseline]
    if base.empty:
        models = sorted(df["model"].unique())
        raise ValueError(
            f"the baseline {baseline!r} has no {metric} scores in the period; models with "
            f"scores: {', '.join(models) or 'none'}"
        )
    keys = ["analysis_time", "lead_time", "variable", "level"]
    cards = []
    for model in sorted(set(df["model"]) - {baseline}):
        own = df[df["model"] == model]
        # Pair cycles and leads: both sides scored on the same cases.
        common = own[keys].merge(base[keys], on=keys)
        pair = pd.concat(
            [own.merge(common, on=keys), base.merge(common, on=keys)], ignore_index=True
        )
        if pair.empty:
            continue
        agg = aggregate_scores(pair, start, end)
        wide = agg.set_index(["variable", "level", "lead_time", "model"])["value"].unstack("model")
        cycles = agg[agg["model"] == model].set_index(["variable", "level", "lead_time"])["cycles"]
        out = pd.DataFrame(
            {
                "value": wide[model],
                "baseline_value": wide[baseline],
            }
        )
        with np.errstate(divide="ignore", invalid="ignore"):
            out["pct_diff"] = 100.0 * (out["value"] - out["baseline_value"]) / out["baseline_value"]
        out["cycles"] = cycles.reindex(out.index).astype("int64")
        out = out.reset_index()
        out.insert(0, "metric", metric)
        out.insert(0, "baseline", baseline)
        out.insert(0, "model", model)
        cards.append(out)
    if not cards:
        return pd.DataFrame(columns=list(CARD_COLUMNS))
    card = pd.concat(cards, ignore_index=True)
    card = card.replace([np.inf, -np.inf], np.nan)
    return card[list(CARD_COLUMNS)].sort_values(["model", "variable", "level", "lead_time"])


def scorecard_grid(card: pd.DataFrame, model: str) -> pd.DataFrame:
    """One model's percentage differences: rows ``variable level``, columns ``+<h>h``."""
    sub = card[card["model"] == model]
    grid = sub.set_index(["variable", "level", "lead_time"])["pct_diff"].unstack("lead_time")
    grid.index = [feature_label(v, int(lev)) for v, lev in grid.index]
    grid.columns = [format_lead(c) for c in grid.columns]
    return grid


def _cell(value: float) -> str:
    return "n/a" if not np.isfinite(value) else f"{value:+.1f}%"


def scorecard_markdown(card: pd.DataFrame) -> str:
    """Markdown: per model, a table of percentage differences against the baseline."""
    if card.empty:
        return "_no model has scores paired with the baseline in this period_"
    parts = []
    for model in sorted(card["model"].unique()):
        sub = card[card["model"] == model]
        grid = scorecard_grid(card, model)
        baseline, metric = sub["baseline"].iloc[0], sub["metric"].iloc[0]
        parts.append(
            f"**{model}** vs **{baseline}**: {metric} difference in % "
            f"(negative = better), {int(sub['cycles'].max())} cycle(s)\n"
        )
        header = "| variable | " + " | ".join(grid.columns) + " |"
        parts.append(header)
        parts.append("|---" * (len(grid.columns) + 1) + "|")
        for label, row in grid.iterrows():
            parts.append(f"| {label} | " + " | ".join(_cell(v) for v in row.to_numpy()) + " |")
        parts.append("")
    return "\n".join(parts)


def scorecard_png(card: pd.DataFrame, *, title: str = "", limit: float | None = None) -> bytes:
    """The scorecard as a PNG: one heat map per model, blue where the model beats the baseline."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    models: Sequence[str] = sorted(card["model"].unique()) if not card.empty else []
    grids = [scorecard_grid(card, model) for model in models]
    finite = [np.abs(g.to_numpy(dtype=np.float64)) for g in grids]
    finite_values = np.concatenate([f[np.isfinite(f)] for f in finite]) if finite else np.array([])
    vmax = limit or (float(np.nanmax(finite_values)) if finite_values.size else 1.0) or 1.0
    metric = card["metric"].iloc[0] if not card.empty else "rmse"
    cmap = "RdBu" if metric in HIGHER_IS_BETTER else "RdBu_r"
    height = sum(max(len(g), 1) * 0.45 + 1.2 for g in grids) if grids else 2.0
    width = max((len(g.columns) for g in grids), default=4) * 0.75 + 3.5
    fig, axes = plt.subplots(len(grids) or 1, 1, figsize=(width, height), squeeze=False)
    for ax, model, grid in zip(axes[:, 0], models, grids, strict=False):
        values = grid.to_numpy(dtype=np.float64)
        image = ax.imshow(values, cmap=cmap, vmin=-vmax, vmax=vmax, aspect="auto")
        ax.set_xticks(range(len(grid.columns)), grid.columns, rotation=45, ha="right")
        ax.set_yticks(range(len(grid.index)), grid.index)
        ax.set_title(f"{model} vs {card['baseline'].iloc[0]}: {metric} difference (%)")
        for (i, j), v in np.ndenumerate(values):
            colour = "white" if np.isfinite(v) and abs(v) > 0.6 * vmax else "black"
            ax.text(j, i, _cell(v).rstrip("%"), ha="center", va="center", fontsize=7, color=colour)
        fig.colorbar(image, ax=ax, shrink=0.8)
    if not grids:
        axes[0, 0].text(0.5, 0.5, "no paired scores", ha="center", va="center")
        axes[0, 0].set_axis_off()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()


def png_markdown(png: bytes, alt: str = "scorecard") -> str:
    """Markdown embedding a PNG inline (a base64 data URI), for ``dg.MetadataValue.md``."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode('ascii')})"
