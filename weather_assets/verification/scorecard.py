"""Scorecard: every model, per artifact version, against a baseline, as a table and pictures.

Cells are the percentage difference of a model's score from the baseline's,
``100 * (model - baseline) / baseline``, per variable and level (rows) and lead time
(columns): negative is better for errors (RMSE). Scores are paired: a (cycle, lead) counts
only where both the model and the baseline were scored, and each side's RMSE over the period
is the root of its mean MSE (:func:`weather_assets.verification.scores.aggregate_scores`).

A model retrained during the period has cycles scored with each artifact: the scores tables
carry an ``artifact_version`` column (where the scores were found, see
:func:`resources.layout.scores_versions`) and the card has one set of rows per (model,
artifact version), the version the registry runs now marked ``current``; superseded versions
keep their own rows, so a retrain never blanks the card.

Each cell also says whether the difference is significant at 95 %: the per-cycle differences
``d_t = score(model, t) - score(baseline, t)`` get a paired t-test whose variance uses the
effective sample size ``n (1 - r1) / (1 + r1)`` of their lag-1 autocorrelation ``r1`` (Wilks;
:func:`weather_assets.verification.significance.ttest`). The card holds its ``p_value``, the
``significant`` flag and the 95 % interval of the mean difference as ``ci_low``/``ci_high`` in %
of the baseline's score (so on the ``pct_diff`` scale; for RMSE the per-cycle RMSEs are
differenced, while ``pct_diff`` compares roots of mean MSEs, so the two agree closely but not
exactly). Markdown and PNG mark significant cells with ``*``.

Regions: the scores tables hold every region (``region`` column, see
:mod:`weather_assets.verification.scores`; a table without it is ``global``), and so does the
card: one row per region too, each with its own significance test. The PNG and
:func:`scorecard_markdown` show the global cells (the headline); :func:`scorecard_regions_markdown`
is the table of every region.

Skill per GPU-hour (:func:`cost_table`): per model and artifact version, its mean improvement
over the baseline in % (``-pct_diff`` of its global cells, averaged over variables, levels and
lead times; ``+pct_diff`` for acc) divided by the mean device-hours of one of its forecasts
(``gpu_seconds / 3600`` from the forecasts' metadata, ``resources.cost``; CPU-hours from
``cpu_seconds`` for a model run on the CPU, said by ``hour_unit``). A model 20 % better than
the baseline at 0.1 GPU-hour per forecast scores 200 (% per GPU-hour).

The trend picture (:func:`trend_png`) shows a headline score per lead against analysis time,
one line per model and artifact version: the UI's own plots of the verification metadata are
against partition or run time.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from weather_assets.verification.regions import DEFAULT_REGIONS
from weather_assets.verification.schemas import CARD_TABLE
from weather_assets.verification.scores import (
    GLOBAL_REGION,
    HEADLINE_LEADS,
    HEADLINES,
    HIGHER_IS_BETTER,
    aggregate_scores,
    feature_label,
    format_lead,
    global_rows,
    in_window,
    score_units,
    with_region,
)
from weather_assets.verification.significance import ttest

VERSION_COLUMN = "artifact_version"
# The version of scores without one (models without an artifact; the same string as
# model_registry.resolve.DEFAULT_MODEL_CONFIG, which this pure module does not import).
UNVERSIONED = "default"
CARD_COLUMNS = tuple(CARD_TABLE.columns)
# Metrics where larger is better: the colour scale is flipped for them.
_PAIR_KEYS = ["analysis_time", "region", "lead_time", "variable", "level"]
_CELL_KEYS = ["region", "variable", "level", "lead_time"]
SIGNIFICANT_MARK = "*"
SIGNIFICANCE_NOTE = (
    f"{SIGNIFICANT_MARK} significant at 95 % (paired per-cycle t-test, effective sample size "
    "corrected for lag-1 autocorrelation); ci_low/ci_high in the table."
)


def last_period(
    table: pd.DataFrame, period_days: float
) -> tuple[pd.DataFrame, pd.Timestamp, pd.Timestamp]:
    """The rows of the ``period_days`` ending at the table's latest cycle, start and end.

    The period is ``(end - period_days, end]``: ``period_days`` of cycles, the latest included.
    """
    end = table["analysis_time"].max()
    start = end - pd.Timedelta(days=period_days)
    return table[table["analysis_time"] > start], start, end


def with_version(table: pd.DataFrame) -> pd.DataFrame:
    """The table with an ``artifact_version`` column (``default`` where it has none)."""
    if VERSION_COLUMN in table.columns:
        return table
    return table.assign(**{VERSION_COLUMN: UNVERSIONED})


def is_current(model: str, version: str, current: Mapping[str, str] | None) -> bool:
    """Whether ``version`` is what the registry runs now for ``model`` (True without a map)."""
    return current is None or current.get(model) == version


def version_label(model: str, version: str, current: Mapping[str, str] | None) -> str:
    """``fno-demo @ 20260101-ab12 (current)``, or ``(superseded)``; the bare name when the
    model has no artifact."""
    if version == UNVERSIONED:
        return model
    state = "current" if is_current(model, version, current) else "superseded"
    return f"{model} @ {version} ({state})"


def empty_card() -> pd.DataFrame:
    """A scorecard without rows, with the schema's dtypes."""
    dtypes = {name: col.dtype for name, col in CARD_TABLE.columns.items()}
    return pd.DataFrame(
        {
            name: pd.Series(dtype=object if dtype == "str" else dtype)
            for name, dtype in dtypes.items()
        }
    )


def _baseline_rows(
    df: pd.DataFrame, baseline: str, current: Mapping[str, str] | None
) -> pd.DataFrame:
    """The baseline's rows, one per case: its current version where it has several."""
    base = df[df["model"] == baseline]
    if base[VERSION_COLUMN].nunique() > 1:
        preferred = base[VERSION_COLUMN].map(lambda v: is_current(baseline, v, current))
        base = base.assign(_pref=preferred.to_numpy()).sort_values(
            ["_pref", VERSION_COLUMN], kind="stable"
        )
        base = base.drop_duplicates(_PAIR_KEYS, keep="last").drop(columns="_pref")
    return base


def _model_versions(
    df: pd.DataFrame, baseline: str, current: Mapping[str, str] | None
) -> list[tuple[str, str]]:
    """(model, version) pairs other than the baseline: per model the current first, then the
    superseded ones, latest cycle first."""
    own = df[df["model"] != baseline]
    latest = own.groupby(["model", VERSION_COLUMN])["analysis_time"].max()
    return sorted(
        latest.index,
        key=lambda mv: (mv[0], not is_current(mv[0], mv[1], current), -latest[mv].value, mv[1]),
    )


def _pairs(
    df: pd.DataFrame, baseline: str, current: Mapping[str, str] | None
) -> Iterator[tuple[str, str, pd.DataFrame, pd.DataFrame]]:
    """Per (model, version): its rows and the baseline's, on the cases both scored."""
    base = _baseline_rows(df, baseline, current)
    for model, version in _model_versions(df, baseline, current):
        own = df[(df["model"] == model) & (df[VERSION_COLUMN] == version)]
        # Pair cycles and leads: both sides scored on the same cases.
        common = own[_PAIR_KEYS].merge(base[_PAIR_KEYS], on=_PAIR_KEYS).drop_duplicates()
        if common.empty:
            continue
        yield model, version, own.merge(common, on=_PAIR_KEYS), base.merge(common, on=_PAIR_KEYS)


def _metric_rows(table: pd.DataFrame, metric: str, baseline: str) -> pd.DataFrame:
    df = with_region(with_version(table))
    df = df[df["metric"] == metric]
    if df[df["model"] == baseline].empty:
        models = sorted(df["model"].unique())
        raise ValueError(
            f"the baseline {baseline!r} has no {metric} scores in the period; models with "
            f"scores: {', '.join(models) or 'none'}"
        )
    return df


def scorecard_table(
    table: pd.DataFrame,
    *,
    baseline: str = "persistence",
    metric: str = "rmse",
    start: object = None,
    end: object = None,
    current: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Tidy scorecard: one row per model (not the baseline), artifact version, variable, level
    and lead time (:data:`~weather_assets.verification.schemas.CARD_TABLE`).

    ``table`` holds per-cycle scores, with an ``artifact_version`` column when they come
    from several artifacts; ``current`` maps a model to the version the registry runs now
    (None: every version is current). ValueError when the baseline has no scores of
    ``metric`` in the table.
    """
    df = in_window(_metric_rows(table, metric, baseline), start, end)
    cards = []
    for model, version, own, base in _pairs(df, baseline, current):
        pair = pd.concat([own, base], ignore_index=True).drop(columns=VERSION_COLUMN)
        agg = aggregate_scores(pair)
        wide = agg.set_index([*_CELL_KEYS, "model"])["value"].unstack("model")
        mine = agg[agg["model"] == model].set_index(_CELL_KEYS)
        out = pd.DataFrame({"value": wide[model], "baseline_value": wide[baseline]})
        with np.errstate(divide="ignore", invalid="ignore"):
            out["pct_diff"] = 100.0 * (out["value"] - out["baseline_value"]) / out["baseline_value"]
        out["cycles"] = mine["cycles"].reindex(out.index).astype("int64")
        out = out.join(_cycle_span(own), how="left")
        out = out.join(_significance(own, base), how="left").reset_index()
        with np.errstate(divide="ignore", invalid="ignore"):
            for column in ("ci_low", "ci_high"):
                out[column] = 100.0 * out[column] / out["baseline_value"]
        out["significant"] = out["significant"].fillna(False).astype(bool)
        out.insert(0, "metric", metric)
        out.insert(0, "baseline_version", ", ".join(sorted(base[VERSION_COLUMN].unique())))
        out.insert(0, "baseline", baseline)
        out.insert(0, "current", is_current(model, version, current))
        out.insert(0, VERSION_COLUMN, version)
        out.insert(0, "model", model)
        out["units"] = [score_units(metric, v) for v in out["variable"]]
        cards.append(out)
    if not cards:
        return empty_card()
    card = pd.concat(cards, ignore_index=True)
    card = card.replace([np.inf, -np.inf], np.nan)
    card = card[list(CARD_COLUMNS)].astype(
        {
            "level": "int64",
            "cycles": "int64",
            "current": bool,
            "value": "float64",
            "significant": bool,
        }
    )
    order = {mv: i for i, mv in enumerate(_model_versions(df, baseline, current))}
    card["_order"] = [
        order[(m, v)] for m, v in zip(card["model"], card[VERSION_COLUMN], strict=True)
    ]
    card["_region"] = card["region"].map(region_rank)
    card = card.sort_values(["_order", "_region", "variable", "level", "lead_time"], kind="stable")
    return card.drop(columns=["_order", "_region"]).reset_index(drop=True)


def region_rank(region: str) -> tuple[int, str]:
    """Sort key of regions: the named ones in their order (global first), then boxes by name."""
    named = list(DEFAULT_REGIONS)
    return (named.index(region), "") if region in named else (len(named), region)


def _significance(own: pd.DataFrame, base: pd.DataFrame) -> pd.DataFrame:
    """Per (variable, level, lead_time): the AR(1)-corrected paired t-test of the per-cycle
    differences ``own - base`` (:func:`weather_assets.verification.significance.ttest`); the
    interval is in the score's units here (the caller makes it a percentage)."""
    pairs = own[[*_PAIR_KEYS, "value"]].merge(
        base[[*_PAIR_KEYS, "value"]], on=_PAIR_KEYS, suffixes=("", "_base")
    )
    pairs = pairs.sort_values("analysis_time", kind="stable")
    rows = {}
    for key, group in pairs.groupby(_CELL_KEYS, sort=True):
        test = ttest((group["value"] - group["value_base"]).to_numpy(), "ar1")
        rows[key] = {
            "ci_low": test.ci_low,
            "ci_high": test.ci_high,
            "p_value": test.p_value,
            "significant": test.significant,
        }
    index = pd.MultiIndex.from_tuples(list(rows), names=_CELL_KEYS)
    columns = ["ci_low", "ci_high", "p_value", "significant"]
    return pd.DataFrame(list(rows.values()), index=index, columns=columns)


def _cycle_span(rows: pd.DataFrame) -> pd.DataFrame:
    """First and last analysis time per (region, variable, level, lead_time)."""
    grouped = rows.groupby(_CELL_KEYS)["analysis_time"]
    return pd.DataFrame(
        {
            "first_cycle": grouped.min().astype("datetime64[ns]"),
            "last_cycle": grouped.max().astype("datetime64[ns]"),
        }
    )


def paired_cycles(
    table: pd.DataFrame,
    *,
    baseline: str = "persistence",
    metric: str = "rmse",
    current: Mapping[str, str] | None = None,
) -> list[pd.Timestamp]:
    """The analysis times the scorecard of ``table`` uses (paired with the baseline), sorted."""
    try:
        df = _metric_rows(table, metric, baseline)
    except ValueError:
        return []
    times: set[pd.Timestamp] = set()
    for _, _, own, _ in _pairs(df, baseline, current):
        times.update(pd.to_datetime(own["analysis_time"]))
    return sorted(times)


def model_set(pairs: Iterable[tuple[str, str]]) -> tuple[str, str]:
    """A model set as text (``fno-demo@v2, persistence@default``) and its short hash."""
    text = ", ".join(f"{m}@{v}" for m, v in sorted(set(pairs)))
    return text, hashlib.sha256(text.encode()).hexdigest()[:8]


def versions_summary(card: pd.DataFrame) -> str:
    """Per model, its artifact versions in the card: ``fno-demo: v2 (current), v1``."""
    if card.empty:
        return "none"
    parts = []
    for model, sub in card.groupby("model", sort=True):
        versions = sub.drop_duplicates(VERSION_COLUMN)
        listed = ", ".join(
            f"{v} (current)" if c else str(v)
            for v, c in zip(versions[VERSION_COLUMN], versions["current"], strict=True)
        )
        parts.append(f"{model}: {listed}")
    return "; ".join(parts)


def scorecard_grid(
    card: pd.DataFrame,
    model: str,
    version: str | None = None,
    column: str = "pct_diff",
    region: str = GLOBAL_REGION,
) -> pd.DataFrame:
    """One model's (one version's) percentage differences (or another ``column``) in one
    region (default global): rows ``variable level``, columns ``+<h>h``."""
    sub = card[card["model"] == model]
    if "region" in sub.columns:
        sub = sub[sub["region"] == region]
    if version is not None:
        sub = sub[sub[VERSION_COLUMN] == version]
    grid = sub.set_index(["variable", "level", "lead_time"])[column].unstack("lead_time")
    grid.index = [feature_label(v, int(lev)) for v, lev in grid.index]
    grid.columns = [format_lead(c) for c in grid.columns]
    return grid


def _blocks(card: pd.DataFrame) -> list[tuple[str, str, pd.DataFrame]]:
    """(model, version, rows) in the card's order."""
    keys = card[["model", VERSION_COLUMN]].drop_duplicates()
    return [
        (m, v, card[(card["model"] == m) & (card[VERSION_COLUMN] == v)])
        for m, v in zip(keys["model"], keys[VERSION_COLUMN], strict=True)
    ]


def _cell(value: float, significant: object = False) -> str:
    """``-12.3%``, with a trailing ``*`` where the difference is significant."""
    if not np.isfinite(value):
        return "n/a"
    return f"{value:+.1f}%" + (SIGNIFICANT_MARK if significant is True else "")


def _marks(
    card: pd.DataFrame, model: str, version: str, grid: pd.DataFrame, region: str = GLOBAL_REGION
) -> np.ndarray:
    """Per cell of ``grid``: whether it is significant (False where the card lacks the flag)."""
    if "significant" not in card.columns:
        return np.zeros(grid.shape, dtype=bool)
    flags = scorecard_grid(card, model, version, "significant", region).reindex_like(grid)
    return flags.fillna(False).to_numpy(dtype=bool)


def _key(t: object) -> str:
    return pd.Timestamp(t).strftime("%Y-%m-%dT%H%MZ")


def _version_text(sub: pd.DataFrame) -> str:
    version = str(sub[VERSION_COLUMN].iloc[0])
    state = "current" if bool(sub["current"].iloc[0]) else "superseded"
    return f"artifact {version} ({state})"


def regions_of(card: pd.DataFrame) -> list[str]:
    """The card's regions, global first (``["global"]`` for a card without regions)."""
    if "region" not in card.columns or card.empty:
        return [GLOBAL_REGION]
    return sorted(card["region"].unique(), key=region_rank)


def scorecard_regions_markdown(card: pd.DataFrame) -> str:
    """Markdown: per model and artifact version, the percentage differences in every region
    (rows region and variable, columns lead time), significant cells marked; empty text for
    a card with the global region only."""
    regions = regions_of(card)
    if card.empty or regions == [GLOBAL_REGION]:
        return ""
    parts = []
    for model, version, sub in _blocks(card):
        baseline, metric = sub["baseline"].iloc[0], sub["metric"].iloc[0]
        parts.append(
            f"**{model}** vs **{baseline}** per region, {_version_text(sub)}: {metric} "
            "difference in % (negative = better)\n"
        )
        leads = sorted(sub["lead_time"].unique())
        parts.append("| region | variable | " + " | ".join(format_lead(x) for x in leads) + " |")
        parts.append("|---" * (len(leads) + 2) + "|")
        for region in regions:
            grid = scorecard_grid(card, model, version, region=region)
            if grid.empty:
                continue
            grid = grid.reindex(columns=[format_lead(x) for x in leads])
            marks = _marks(card, model, version, grid, region)
            for (label, row), flags in zip(grid.iterrows(), marks, strict=True):
                cells = (_cell(v, bool(f)) for v, f in zip(row.to_numpy(), flags, strict=True))
                parts.append(f"| {region} | {label} | " + " | ".join(cells) + " |")
        parts.append("")
    parts.append(SIGNIFICANCE_NOTE)
    return "\n".join(parts)


def scorecard_markdown(card: pd.DataFrame, empty: str | None = None) -> str:
    """Markdown: per model and artifact version, a table of percentage differences against
    the baseline over the global domain; ``empty`` (or a default sentence) when the card has
    no rows. The other regions are :func:`scorecard_regions_markdown`'s."""
    if card.empty:
        return f"_{empty or 'no model has scores paired with the baseline in this period'}_"
    parts = []
    for model, version, sub in _blocks(card):
        grid = scorecard_grid(card, model, version)
        marks = _marks(card, model, version, grid)
        baseline, metric = sub["baseline"].iloc[0], sub["metric"].iloc[0]
        parts.append(
            f"**{model}** vs **{baseline}**, {_version_text(sub)}: {metric} difference in % "
            f"(negative = better), {int(sub['cycles'].max())} cycle(s) "
            f"{_key(sub['first_cycle'].min())} .. {_key(sub['last_cycle'].max())}\n"
        )
        header = "| variable | " + " | ".join(grid.columns) + " |"
        parts.append(header)
        parts.append("|---" * (len(grid.columns) + 1) + "|")
        for (label, row), flags in zip(grid.iterrows(), marks, strict=True):
            cells = (_cell(v, bool(f)) for v, f in zip(row.to_numpy(), flags, strict=True))
            parts.append(f"| {label} | " + " | ".join(cells) + " |")
        parts.append("")
        parts.append(SIGNIFICANCE_NOTE)
        parts.append("")
    return "\n".join(parts)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    plt = _pyplot()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()


def scorecard_png(
    card: pd.DataFrame, *, title: str = "", limit: float | None = None, empty: str = ""
) -> bytes:
    """The scorecard as a PNG: one heat map per model and artifact version, blue where the
    model beats the baseline; ``empty`` is the text shown when the card has no rows."""
    plt = _pyplot()
    blocks = _blocks(card) if not card.empty else []
    grids = [scorecard_grid(card, m, v) for m, v, _ in blocks]
    finite = [np.abs(g.to_numpy(dtype=np.float64)) for g in grids]
    finite_values = np.concatenate([f[np.isfinite(f)] for f in finite]) if finite else np.array([])
    vmax = limit or (float(np.nanmax(finite_values)) if finite_values.size else 1.0) or 1.0
    metric = card["metric"].iloc[0] if not card.empty else "rmse"
    cmap = "RdBu" if metric in HIGHER_IS_BETTER else "RdBu_r"
    height = sum(max(len(g), 1) * 0.45 + 1.4 for g in grids) if grids else 2.0
    width = max((len(g.columns) for g in grids), default=6) * 0.75 + 3.5
    fig, axes = plt.subplots(len(grids) or 1, 1, figsize=(width, height), squeeze=False)
    for ax, (model, version, sub), grid in zip(axes[:, 0], blocks, grids, strict=False):
        values = grid.to_numpy(dtype=np.float64)
        marks = _marks(card, model, version, grid)
        image = ax.imshow(values, cmap=cmap, vmin=-vmax, vmax=vmax, aspect="auto")
        ax.set_xticks(range(len(grid.columns)), grid.columns, rotation=45, ha="right")
        ax.set_yticks(range(len(grid.index)), grid.index)
        ax.set_title(
            f"{model} vs {sub['baseline'].iloc[0]}: {metric} difference (%)\n"
            f"{_version_text(sub)}, {int(sub['cycles'].max())} cycle(s)",
            fontsize=9,
        )
        for (i, j), v in np.ndenumerate(values):
            colour = "white" if np.isfinite(v) and abs(v) > 0.6 * vmax else "black"
            text = _cell(v, bool(marks[i, j])).replace("%", "")
            ax.text(j, i, text, ha="center", va="center", fontsize=7, color=colour)
        fig.colorbar(image, ax=ax, shrink=0.8)
    if not grids:
        axes[0, 0].text(0.5, 0.5, empty or "no paired scores", ha="center", va="center", wrap=True)
        axes[0, 0].set_axis_off()
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _png(fig)


# ---------------------------------------------------------------------------------------------
# trend over analysis time


@dataclass(frozen=True)
class Headline:
    """The score a trend shows: a metric of one variable and level at some leads."""

    metric: str
    variable: str
    level: int
    leads: tuple[pd.Timedelta, ...]

    @property
    def label(self) -> str:
        """``rmse geopotential_500hPa [m2 s-2]``."""
        units = score_units(self.metric, self.variable)
        return f"{self.metric} {feature_label(self.variable, self.level)} [{units}]"


def choose_headline(
    table: pd.DataFrame, metric: str = "rmse", max_leads: int = 3
) -> Headline | None:
    """The first of :data:`HEADLINES` with ``metric`` scores in the table (else its first
    variable), at the :data:`HEADLINE_LEADS` it has (else up to ``max_leads`` spread over its
    leads). None when the table has no ``metric`` scores."""
    df = global_rows(table)
    df = df[df["metric"] == metric]
    if df.empty:
        return None
    present = set(zip(df["variable"], df["level"].astype(int), strict=True))
    candidates = [(v, lev) for m, v, lev in HEADLINES if m == metric and (v, lev) in present]
    variable, level = candidates[0] if candidates else sorted(present)[0]
    rows = df[(df["variable"] == variable) & (df["level"] == level)]
    leads = sorted(pd.to_timedelta(rows["lead_time"].unique()))
    chosen = [pd.Timedelta(x) for x in HEADLINE_LEADS if pd.Timedelta(x) in leads]
    if not chosen:
        idx = np.unique(np.linspace(0, len(leads) - 1, min(max_leads, len(leads))).round())
        chosen = [leads[int(i)] for i in idx]
    return Headline(metric, variable, int(level), tuple(chosen[:max_leads]))


def trend_series(table: pd.DataFrame, headline: Headline) -> pd.DataFrame:
    """The headline's per-cycle values: columns model, artifact_version, lead_time,
    analysis_time, value, sorted by analysis time."""
    df = global_rows(with_version(table))
    df = df[
        (df["metric"] == headline.metric)
        & (df["variable"] == headline.variable)
        & (df["level"] == headline.level)
        & (df["lead_time"].isin(list(headline.leads)))
    ]
    cols = ["model", VERSION_COLUMN, "lead_time", "analysis_time", "value"]
    return df[cols].sort_values(["model", VERSION_COLUMN, "lead_time", "analysis_time"])


def trend_figure(
    table: pd.DataFrame,
    *,
    metric: str = "rmse",
    current: Mapping[str, str] | None = None,
    title: str = "",
):
    """A matplotlib figure: one panel per headline lead, the headline score against analysis
    time, one line per model and artifact version (the current ones solid, superseded ones
    dashed)."""
    plt = _pyplot()
    headline = choose_headline(table, metric)
    leads: Sequence[pd.Timedelta] = headline.leads if headline else ()
    fig, axes = plt.subplots(
        1, max(len(leads), 1), figsize=(4.2 * max(len(leads), 1) + 1.5, 3.4), squeeze=False
    )
    if headline is None:
        axes[0, 0].text(0.5, 0.5, f"no {metric} scores", ha="center", va="center")
        axes[0, 0].set_axis_off()
    else:
        series = trend_series(table, headline)
        for ax, lead in zip(axes[0], leads, strict=True):
            at_lead = series[series["lead_time"] == lead]
            for (model, version), line in at_lead.groupby(["model", VERSION_COLUMN], sort=True):
                ax.plot(
                    pd.to_datetime(line["analysis_time"]).to_numpy(),
                    line["value"].to_numpy(dtype=np.float64),
                    marker="o",
                    markersize=3,
                    linestyle="-" if is_current(model, version, current) else "--",
                    label=version_label(model, version, current),
                )
            ax.set_title(f"{headline.label} at {format_lead(lead)}", fontsize=9)
            ax.set_xlabel("analysis time (UTC)")
            ax.set_ylabel(headline.label)
            ax.grid(alpha=0.3)
            ax.tick_params(axis="x", labelrotation=30, labelsize=7)
        handles, labels = axes[0, 0].get_legend_handles_labels()
        if handles:
            fig.legend(handles, labels, loc="center right", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0, 0.8 if headline is not None else 1, 1))
    return fig


def trend_png(
    table: pd.DataFrame,
    *,
    metric: str = "rmse",
    current: Mapping[str, str] | None = None,
    title: str = "",
) -> bytes:
    """:func:`trend_figure` as PNG bytes."""
    return _png(trend_figure(table, metric=metric, current=current, title=title))


# ---------------------------------------------------------------------------------------------
# skill per GPU-hour

COST_COLUMNS = (
    "model",
    VERSION_COLUMN,
    "forecasts",
    "hour_unit",
    "device_hours_per_forecast",
    "improvement_pct",
    "skill_per_gpu_hour",
)
SKILL_PER_HOUR_NOTE = (
    "skill_per_gpu_hour: the model's mean improvement over the baseline (-pct_diff of the "
    "global rows, averaged over variables, levels and lead times; +pct_diff for acc), in %, "
    "divided by the mean device-hours of one forecast (GPU-hours: gpu_seconds / 3600 from the "
    "forecasts' metadata; CPU-hours from cpu_seconds where the model ran on CPU, hour_unit "
    "says which). Higher is better; NaN without cost metadata."
)


def cost_table(card: pd.DataFrame, costs: pd.DataFrame | None) -> pd.DataFrame:
    """Skill per GPU-hour per model and artifact version of ``card`` (:data:`COST_COLUMNS`).

    ``costs``: one row per forecast with ``model``, ``artifact_version``, ``gpu_seconds`` and
    ``cpu_seconds`` (NaN where not recorded), from the forecasts' materialization metadata.
    A model whose forecasts ran on a GPU is costed in GPU-hours, else in CPU-hours.
    """
    rows = []
    cells = global_rows(card)
    for (model, version), sub in cells.groupby(["model", VERSION_COLUMN], sort=False):
        sign = 1.0 if str(sub["metric"].iloc[0]) in HIGHER_IS_BETTER else -1.0
        values = sub["pct_diff"].to_numpy(dtype=np.float64)
        improvement = float(sign * np.nanmean(values)) if np.isfinite(values).any() else np.nan
        mine = pd.DataFrame()
        if costs is not None and len(costs):
            mine = costs[(costs["model"] == model) & (costs[VERSION_COLUMN] == version)]
        none = pd.Series(dtype=np.float64)
        gpu = mine.get("gpu_seconds", none).dropna() if len(mine) else none
        cpu = mine.get("cpu_seconds", none).dropna() if len(mine) else none
        if len(gpu):
            unit, seconds, forecasts = "GPU-hour", float(gpu.mean()), len(gpu)
        elif len(cpu):
            unit, seconds, forecasts = "CPU-hour", float(cpu.mean()), len(cpu)
        else:
            unit, seconds, forecasts = "none", np.nan, 0
        hours = seconds / 3600.0
        with np.errstate(divide="ignore", invalid="ignore"):
            per_hour = improvement / hours if hours > 0 else np.nan
        rows.append(
            {
                "model": model,
                VERSION_COLUMN: version,
                "forecasts": forecasts,
                "hour_unit": unit,
                "device_hours_per_forecast": hours,
                "improvement_pct": improvement,
                "skill_per_gpu_hour": per_hour,
            }
        )
    out = pd.DataFrame(rows, columns=list(COST_COLUMNS))
    return out.astype({"forecasts": "int64"})


def cost_markdown(cost: pd.DataFrame) -> str:
    """The skill-per-GPU-hour table as markdown, with its definition."""
    if cost.empty:
        return "_no model to cost_"
    lines = [
        "| model | artifact | forecasts | device-hours / forecast | improvement % "
        "| skill per GPU-hour |",
        "|---|---|---|---|---|---|",
    ]
    for row in cost.itertuples(index=False):
        hours = row.device_hours_per_forecast
        hours_text = f"{hours:.3g} {row.hour_unit}" if np.isfinite(hours) else "n/a"
        improvement = f"{row.improvement_pct:+.1f}" if np.isfinite(row.improvement_pct) else "n/a"
        per_hour = row.skill_per_gpu_hour
        per_hour_text = f"{per_hour:.4g} % per {row.hour_unit}" if np.isfinite(per_hour) else "n/a"
        lines.append(
            f"| {row.model} | {getattr(row, VERSION_COLUMN)} | {row.forecasts} | {hours_text} "
            f"| {improvement} | {per_hour_text} |"
        )
    return "\n".join([*lines, "", SKILL_PER_HOUR_NOTE])
