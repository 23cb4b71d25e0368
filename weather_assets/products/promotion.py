"""Champion/challenger decisions of a product: plain functions over paired per-cycle scores.

A product (``model_registry/products/<name>.yaml``) publishes one model's forecast per cycle,
its **champion**; **challengers** run in shadow and are verified like every model. The state
of a product at time T (which model is champion, which were before it, a pin) is never
stored and updated in place: it is *replayed* from events, in the order they became known,
so that re-running a decision (or a product partition) with the same scores, the same
forecasts and the same pin log gives the same answer, whatever the wall clock says.

Events, each with the time it becomes known (ties in this order):

1. ``pin`` / ``unpin`` at the cycle the operator made them effective from (the pin log);
2. ``verified`` cycle s at ``s + lag`` (``lag``: the longest lead of the scores the rules use,
   the time the last analysis they need arrives): degradation and promotion tests;
3. ``checks`` of cycle s at ``s``: whether the champion's forecast of s passes its blocking
   checks (exists, layout, no NaN).

Rules (:class:`Rules`, all thresholds from the product declaration):

- **promotion** after a verified cycle: over the last ``window`` verified cycles where the
  challenger and the champion were both scored (at least ``min_cycles``), every headline
  score is *significantly better* (paired per-cycle t-test with the AR(1) effective sample
  size, :func:`weather_assets.verification.significance.ttest`, two-sided at ``alpha``) and no
  guard score is significantly worse. Of several such challengers the one with the largest
  mean relative headline improvement wins. A challenger within noise, or worse, stays one.
- **rollback after degraded scores**: a verified cycle where the champion's headline scores
  are worse than the baseline's (mean relative difference above ``degrade_margin``) counts;
  ``rollback_after`` (K) such cycles in a row and the champion falls back to the previous
  champion, or to the baseline when there is none.
- **rollback after failed checks**: the champion's forecast of a cycle fails its blocking
  checks (or is missing): the champion falls back at once, for that cycle and the next ones.
  After a rollback, promotions count only cycles verified after it (so none for at least
  ``min_cycles`` cycles), and the model rolled back only cycles after its demotion.
- **pin**: the operator names the champion; while pinned, neither promotion nor the
  degradation rollback changes it. A pinned model whose forecast fails its checks is replaced
  for that cycle only (``fallback``), the pin stays.

Scores tables have the columns of :data:`weather_assets.verification.schemas.SCORES_TABLE`
(``model``, ``analysis_time``, ``lead_time``, ``variable``, ``level``, ``metric``,
``value``), optionally ``region``: with it, only the rules' ``regions`` (default
``global``) count.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from weather_assets.verification.scores import HIGHER_IS_BETTER
from weather_assets.verification.significance import paired_differences, ttest

KEYS = ("region", "variable", "level", "lead_time")
DECISION_COLUMNS = (
    "cycle",
    "known_at",
    "event",
    "action",
    "old_champion",
    "new_champion",
    "published",
    "pinned",
    "reason",
)
TABLE_COLUMNS = (
    "candidate",
    "champion",
    "role",
    "metric",
    "region",
    "variable",
    "level",
    "lead_time",
    "n",
    "candidate_mean",
    "champion_mean",
    "mean_difference",
    "pct_difference",
    "ci_low",
    "ci_high",
    "p_value",
    "significant",
    "verdict",
)


@dataclass(frozen=True)
class ScoreSelector:
    """Which scores a rule looks at: a metric, and optionally one variable, level and lead
    (None: every one present in the scores)."""

    metric: str
    variable: str | None = None
    level: int | None = None
    lead_time: timedelta | None = None

    def mask(self, table: pd.DataFrame) -> pd.Series:
        """The rows of a scores (or differences) table this selector picks."""
        keep = pd.Series(True, index=table.index)
        if "metric" in table.columns:
            keep &= table["metric"] == self.metric
        if self.variable is not None:
            keep &= table["variable"] == self.variable
        if self.level is not None:
            keep &= table["level"] == self.level
        if self.lead_time is not None:
            keep &= pd.to_timedelta(table["lead_time"]) == pd.Timedelta(self.lead_time)
        return keep

    def label(self) -> str:
        parts = [self.metric, self.variable or "*"]
        if self.level is not None and self.level >= 0:
            parts.append(str(self.level))
        if self.lead_time is not None:
            parts.append(f"+{int(self.lead_time.total_seconds() // 3600)}h")
        return " ".join(parts)


@dataclass(frozen=True)
class Rules:
    """A product's models and decision thresholds (from its declaration)."""

    product: str
    champion: str
    challengers: tuple[str, ...]
    baseline: str
    headline: tuple[ScoreSelector, ...]
    guard: tuple[ScoreSelector, ...] = ()
    window: int = 8
    min_cycles: int = 4
    alpha: float = 0.05
    rollback_after: int = 2
    degrade_margin: float = 0.0
    regions: tuple[str, ...] = ("global",)
    lag: timedelta = timedelta(hours=24)

    @property
    def models(self) -> tuple[str, ...]:
        """Champion, challengers and baseline, each once, in that order."""
        return tuple(dict.fromkeys((self.champion, *self.challengers, self.baseline)))

    @property
    def candidates(self) -> tuple[str, ...]:
        """Models that can be champion (the declared champion and the challengers)."""
        return tuple(dict.fromkeys((self.champion, *self.challengers)))


@dataclass(frozen=True)
class Pin:
    """One line of the operator's pin log: pin a model (or unpin) from a cycle on."""

    action: str  # "pin" or "unpin"
    from_cycle: datetime
    model: str | None = None
    reason: str = ""
    by: str = ""
    recorded_at: str = ""  # wall-clock time of the command, for the audit trail only

    def as_dict(self) -> dict:
        out = asdict(self)
        out["from_cycle"] = _iso(self.from_cycle)
        return out

    @classmethod
    def from_dict(cls, data: Mapping) -> Pin:
        if data.get("action") not in ("pin", "unpin"):
            raise ValueError(f"pin log entry has action {data.get('action')!r}: pin or unpin")
        t = datetime.fromisoformat(str(data["from_cycle"]))
        return cls(
            action=str(data["action"]),
            from_cycle=t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC),
            model=data.get("model"),
            reason=str(data.get("reason", "")),
            by=str(data.get("by", "")),
            recorded_at=str(data.get("recorded_at", "")),
        )


def pins_to_json(pins: Sequence[Pin]) -> bytes:
    return (json.dumps([p.as_dict() for p in pins], indent=1) + "\n").encode()


def pins_from_json(data: bytes | None) -> list[Pin]:
    if not data:
        return []
    return [Pin.from_dict(d) for d in json.loads(data)]


@dataclass(frozen=True)
class State:
    """A product's state between events."""

    champion: str
    previous: tuple[str, ...] = ()  # earlier champions, most recent last
    pinned: str | None = None
    degraded: int = 0  # consecutive verified cycles the champion was worse than the baseline
    demoted: tuple[tuple[str, datetime], ...] = ()  # (model, cycle) of its latest demotion
    rolled_back: datetime | None = None  # cycle of the latest rollback

    def demoted_at(self, model: str) -> datetime | None:
        return dict(self.demoted).get(model)

    def window_start(self, model: str) -> datetime | None:
        """Cycles after this one count for a promotion of ``model``: after its own latest
        demotion and after the latest rollback (a rollback holds promotions until
        ``min_cycles`` cycles were verified after it)."""
        found = [t for t in (self.demoted_at(model), self.rolled_back) if t is not None]
        return max(found, default=None)

    def demote(self, model: str, cycle: datetime) -> tuple[tuple[str, datetime], ...]:
        return tuple(sorted({**dict(self.demoted), model: cycle}.items()))


@dataclass(frozen=True)
class Decision:
    """What one event did to the product (``action`` ``keep`` when nothing changed)."""

    cycle: datetime
    known_at: datetime
    event: str  # pin, unpin, verified, checks
    action: str  # keep, promote, rollback, fallback, pin, unpin, insufficient
    old_champion: str
    new_champion: str
    published: str | None = None  # the model published for ``cycle`` (checks events)
    pinned: str | None = None
    reason: str = ""
    table: pd.DataFrame | None = field(default=None, compare=False)

    @property
    def changed(self) -> bool:
        return self.old_champion != self.new_champion or self.action == "fallback"

    def row(self) -> dict:
        return {c: getattr(self, c) for c in DECISION_COLUMNS}


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H%MZ")


def _naive(t: datetime) -> pd.Timestamp:
    return pd.Timestamp(t.astimezone(UTC).replace(tzinfo=None))


# ---------------------------------------------------------------------------------------------
# comparisons


def select_region(scores: pd.DataFrame, regions: Sequence[str]) -> pd.DataFrame:
    """Rows of the product's regions where the table has a ``region`` column."""
    if "region" not in scores.columns:
        return scores
    return scores[scores["region"].isin(list(regions))]


def _orientation(metric: str) -> float:
    """+1 where lower is better (errors), -1 where higher is better (acc)."""
    return -1.0 if metric in HIGHER_IS_BETTER else 1.0


def oriented_change(table: pd.DataFrame) -> float:
    """Mean ``pct_difference`` of ``table``'s rows, each oriented so that negative is better
    (an acc that rises counts as an improvement, as an rmse that falls does)."""
    if table.empty:
        return math.nan
    return float((table["metric"].map(_orientation) * table["pct_difference"]).mean())


def compare_models(
    scores: pd.DataFrame,
    candidate: str,
    champion: str,
    selectors: Sequence[ScoreSelector],
    *,
    role: str,
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Per selected score key: ``candidate - champion`` over the paired cycles in ``scores``,
    its AR(1)-corrected t-test and a verdict (better, worse, no significant difference)."""
    rows = []
    for metric in dict.fromkeys(s.metric for s in selectors):
        keys = [k for k in KEYS if k in scores.columns]
        diffs = paired_differences(scores, candidate, champion, metric, keys)
        if diffs.empty:
            continue
        chosen = np.zeros(len(diffs), dtype=bool)
        for selector in selectors:
            if selector.metric == metric:
                chosen |= selector.mask(diffs).to_numpy()
        diffs = diffs[chosen]
        sign = _orientation(metric)
        for key, group in diffs.groupby(keys, sort=True):
            test = ttest(group["difference"].to_numpy(), "ar1", alpha)
            champ = float(group["value_baseline"].mean())
            better = test.significant and sign * test.mean < 0
            worse = test.significant and sign * test.mean > 0
            rows.append(
                {
                    "candidate": candidate,
                    "champion": champion,
                    "role": role,
                    "metric": metric,
                    **dict(zip(keys, key if isinstance(key, tuple) else (key,), strict=True)),
                    "n": test.n,
                    "candidate_mean": float(group["value_model"].mean()),
                    "champion_mean": champ,
                    "mean_difference": test.mean,
                    "pct_difference": 100.0 * test.mean / abs(champ) if champ else math.nan,
                    "ci_low": test.ci_low,
                    "ci_high": test.ci_high,
                    "p_value": test.p_value,
                    "significant": bool(test.significant),
                    "verdict": "better" if better else "worse" if worse else "no difference",
                }
            )
    table = pd.DataFrame(rows, columns=list(TABLE_COLUMNS))
    if "region" not in scores.columns:
        table["region"] = "global"
    return table


def window_scores(
    scores: pd.DataFrame,
    rules: Rules,
    models: Sequence[str],
    verified: Sequence[datetime],
    *,
    after: datetime | None = None,
) -> pd.DataFrame:
    """Scores of ``models`` on the last ``rules.window`` cycles of ``verified`` (after
    ``after``) where all of them were scored on a headline score."""
    df = select_region(scores, rules.regions)
    cycles = [_naive(t) for t in verified if after is None or t > after]
    df = df[df["model"].isin(list(models)) & df["analysis_time"].isin(cycles)]
    headline = np.zeros(len(df), dtype=bool)
    for selector in rules.headline:
        headline |= selector.mask(df).to_numpy()
    have = df[headline].groupby("analysis_time")["model"].nunique()
    both = sorted(have[have == len(set(models))].index)[-rules.window :]
    return df[df["analysis_time"].isin(both)]


def promotion_table(
    scores: pd.DataFrame,
    rules: Rules,
    champion: str,
    candidate: str,
    verified: Sequence[datetime],
    *,
    after: datetime | None = None,
) -> tuple[pd.DataFrame, int]:
    """Headline and guard comparisons of ``candidate`` against ``champion`` over the window,
    and the number of paired cycles in it."""
    df = window_scores(scores, rules, [candidate, champion], verified, after=after)
    cycles = int(df["analysis_time"].nunique()) if len(df) else 0
    headline = compare_models(
        df, candidate, champion, rules.headline, role="headline", alpha=rules.alpha
    )
    guard = compare_models(df, candidate, champion, rules.guard, role="guard", alpha=rules.alpha)
    parts = [t for t in (headline, guard) if not t.empty]
    table = pd.concat(parts, ignore_index=True) if parts else headline
    return table, cycles


def promotion_verdict(table: pd.DataFrame, cycles: int, rules: Rules) -> tuple[bool, str]:
    """Whether a comparison table justifies a promotion, and why (one sentence)."""
    if cycles < rules.min_cycles:
        return False, f"{cycles} paired cycle(s) in the window, fewer than {rules.min_cycles}"
    head = table[table["role"] == "headline"]
    if head.empty:
        return False, "no headline score in the window"
    not_better = head[head["verdict"] != "better"]
    if len(not_better):
        return False, (
            f"{len(head) - len(not_better)} of {len(head)} headline score(s) significantly better"
        )
    worse = table[(table["role"] == "guard") & (table["verdict"] == "worse")]
    if len(worse):
        labels = ", ".join(f"{r.metric} {r.variable} {r.level}" for r in worse.head(3).itertuples())
        return False, f"significantly worse on guard score(s): {labels}"
    mean = oriented_change(head)
    return True, (
        f"all {len(head)} headline score(s) significantly better (mean {mean:+.1f} %, "
        "negative = better), "
        f"no guard score significantly worse, over {cycles} cycles"
    )


def degraded(scores: pd.DataFrame, rules: Rules, champion: str, cycle: datetime) -> bool | None:
    """Whether the champion's headline scores of one cycle are worse than the baseline's
    (mean oriented relative difference above ``degrade_margin``); None without scores."""
    if champion == rules.baseline:
        return None
    df = select_region(scores, rules.regions)
    df = df[df["analysis_time"] == _naive(cycle)]
    chosen = np.zeros(len(df), dtype=bool)
    for selector in rules.headline:
        chosen |= selector.mask(df).to_numpy()
    df = df[chosen]
    keys = ["metric", *(k for k in KEYS if k in df.columns)]
    own = df[df["model"] == champion].set_index(keys)["value"]
    base = df[df["model"] == rules.baseline].set_index(keys)["value"]
    own, base = own.align(base, join="inner")
    if own.empty:
        return None
    sign = np.array([_orientation(m) for m in own.index.get_level_values("metric")])
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = sign * (own.to_numpy() - base.to_numpy()) / np.abs(base.to_numpy())
    relative = relative[np.isfinite(relative)]
    if relative.size == 0:
        return None
    return bool(relative.mean() > rules.degrade_margin)


# ---------------------------------------------------------------------------------------------
# replay

CheckFn = Callable[[str, datetime], str | None]  # (model, cycle) -> problem, None when it passes


def _fallbacks(state: State, rules: Rules) -> list[str]:
    """Who replaces the champion: previous champions (latest first), then the baseline."""
    out = [m for m in reversed(state.previous) if m != state.champion]
    return list(dict.fromkeys([*out, rules.baseline]))


def _events(
    cycles: Sequence[datetime], pins: Sequence[Pin], rules: Rules, as_of: datetime
) -> list[tuple[datetime, int, str, datetime, Pin | None]]:
    events: list[tuple[datetime, int, str, datetime, Pin | None]] = []
    for pin in pins:
        if pin.from_cycle <= as_of:
            events.append((pin.from_cycle, 0, pin.action, pin.from_cycle, pin))
    for s in cycles:
        if s + rules.lag <= as_of:
            events.append((s + rules.lag, 1, "verified", s, None))
        if s <= as_of:
            events.append((s, 2, "checks", s, None))
    # Stable: pins on the same cycle keep the log's order.
    return sorted(events, key=lambda e: (e[0], e[1]))


def replay(
    rules: Rules,
    scores: pd.DataFrame,
    *,
    cycles: Sequence[datetime],
    as_of: datetime,
    checks: CheckFn,
    pins: Sequence[Pin] = (),
) -> tuple[State, list[Decision]]:
    """The product's state at ``as_of`` and every decision on the way (see module docstring).

    ``cycles``: the product's cycles (ascending); ``scores``: per-cycle scores of its models
    (current artifacts); ``checks``: a forecast's blocking-check problem, None when it passes.
    """
    state = State(champion=rules.champion)
    decisions: list[Decision] = []
    verified: list[datetime] = []
    for known_at, _, event, cycle, pin in _events(cycles, pins, rules, as_of):
        old = state.champion
        if event in ("pin", "unpin"):
            assert pin is not None
            if event == "pin" and pin.model is not None:
                state = replace(state, champion=pin.model, pinned=pin.model, degraded=0)
                if old != pin.model:
                    state = replace(state, previous=(*state.previous, old))
                reason = f"pinned by hand{': ' + pin.reason if pin.reason else ''}"
            else:
                state = replace(state, pinned=None)
                reason = f"unpinned{': ' + pin.reason if pin.reason else ''}"
            decisions.append(
                Decision(
                    cycle, known_at, event, event, old, state.champion, None, state.pinned, reason
                )
            )
        elif event == "verified":
            verified.append(cycle)
            state, decision = _on_verified(state, rules, scores, cycle, known_at, verified)
            decisions.append(decision)
        else:
            state, decision = _on_checks(state, rules, cycle, checks)
            if decision is not None:
                decisions.append(decision)
    return state, decisions


def _on_verified(
    state: State,
    rules: Rules,
    scores: pd.DataFrame,
    cycle: datetime,
    known_at: datetime,
    verified: Sequence[datetime],
) -> tuple[State, Decision]:
    old = state.champion
    # The scores table of the decision: every candidate against the champion, over the window.
    tables, verdicts = [], {}
    for candidate in rules.candidates:
        if candidate == old:
            continue
        table, n = promotion_table(
            scores, rules, old, candidate, verified, after=state.window_start(candidate)
        )
        tables.append(table)
        verdicts[candidate] = (*promotion_verdict(table, n, rules), table)
    filled = [t for t in tables if not t.empty]
    table = pd.concat(filled, ignore_index=True) if filled else (tables[0] if tables else None)

    def decision(action: str, new: str, reason: str) -> Decision:
        return Decision(
            cycle, known_at, "verified", action, old, new, None, state.pinned, reason, table
        )

    if state.pinned is not None:
        return state, decision("keep", old, f"pinned to {state.pinned}: no automatic change")
    worse = degraded(scores, rules, old, cycle)
    count = state.degraded + 1 if worse else 0 if worse is False else state.degraded
    if count >= rules.rollback_after:
        fallback = _fallbacks(state, rules)[0]
        previous = tuple(m for m in state.previous if m != fallback)
        new_state = State(fallback, previous, None, 0, state.demote(old, cycle), cycle)
        return new_state, decision(
            "rollback",
            fallback,
            f"{old} worse than the baseline {rules.baseline} on its headline scores for "
            f"{count} consecutive verified cycle(s) (K={rules.rollback_after})",
        )
    state = replace(state, degraded=count)
    promotable = {
        c: oriented_change(t[t["role"] == "headline"]) for c, (ok, _, t) in verdicts.items() if ok
    }
    if promotable:
        best = min(promotable, key=lambda c: (promotable[c], c))
        new_state = replace(
            state,
            champion=best,
            previous=(*(m for m in state.previous if m != best), old),
            degraded=0,
        )
        return new_state, decision("promote", best, f"{best}: {verdicts[best][1]}")
    reasons = "; ".join(f"{c}: {why}" for c, (_, why, _) in verdicts.items()) or "no challenger"
    insufficient = verdicts and all("fewer than" in why for _, why, _ in verdicts.values())
    return state, decision("insufficient" if insufficient else "keep", old, reasons)


def _on_checks(
    state: State, rules: Rules, cycle: datetime, checks: CheckFn
) -> tuple[State, Decision | None]:
    old = state.champion
    problem = checks(old, cycle)
    if problem is None:
        return state, None
    chosen, problems = None, [f"{old}: {problem}"]
    for fallback in _fallbacks(state, rules):
        trouble = checks(fallback, cycle)
        if trouble is None:
            chosen = fallback
            break
        problems.append(f"{fallback}: {trouble}")
    reason = "forecast failed its checks (" + "; ".join(problems) + ")"
    if state.pinned is not None:
        # The pin stays; this cycle only is published from another model.
        return state, Decision(
            cycle, cycle, "checks", "fallback", old, old, chosen, state.pinned, reason
        )
    if chosen is None:
        return state, Decision(cycle, cycle, "checks", "fallback", old, old, None, None, reason)
    previous = tuple(m for m in state.previous if m != chosen)
    new_state = State(chosen, previous, None, 0, state.demote(old, cycle), cycle)
    return new_state, Decision(
        cycle, cycle, "checks", "rollback", old, chosen, chosen, None, reason
    )


def published_model(state: State, decisions: Sequence[Decision], cycle: datetime) -> str | None:
    """The model whose forecast is the product of ``cycle`` (state replayed as of ``cycle``):
    the checks event of that cycle decides, else the champion."""
    for d in reversed(decisions):
        if d.event == "checks" and d.cycle == cycle:
            return d.published
    return state.champion


def decisions_table(decisions: Sequence[Decision]) -> pd.DataFrame:
    """One row per decision (without the comparison tables)."""
    table = pd.DataFrame([d.row() for d in decisions], columns=list(DECISION_COLUMNS))
    for column in ("cycle", "known_at"):
        table[column] = [_iso(t) for t in table[column]]
    return table


def table_markdown(table: pd.DataFrame | None) -> str:
    """The comparison table as markdown; ``*`` marks significant differences."""
    if table is None or table.empty:
        return "_no comparison (no challenger scored with the champion in the window)_"
    lines = [
        "| candidate | vs | role | score | n | diff % | 95 % CI | p | verdict |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in table.itertuples():
        level = "" if r.level is None or int(r.level) < 0 else f" {int(r.level)}"
        lead = f" +{int(pd.Timedelta(r.lead_time).total_seconds() // 3600)}h"
        mark = "*" if r.significant else ""
        pct = f"{r.pct_difference:+.1f}%{mark}" if np.isfinite(r.pct_difference) else "n/a"
        ci = f"[{r.ci_low:+.3g}, {r.ci_high:+.3g}]" if np.isfinite(r.ci_low) else "n/a"
        p = f"{r.p_value:.3f}" if np.isfinite(r.p_value) else "n/a"
        lines.append(
            f"| {r.candidate} | {r.champion} | {r.role} | {r.metric} {r.variable}{level}{lead} "
            f"| {r.n} | {pct} | {ci} | {p} | {r.verdict} |"
        )
    lines.append("")
    lines.append(
        "* significant at 95 % (paired per-cycle t-test, AR(1) effective sample size); diff % "
        "of the champion's mean score, negative = candidate better for errors."
    )
    return "\n".join(lines)


def alert_line(product: str, decision: Decision, versions: Mapping[str, str]) -> dict:
    """The alert document of a decision that changed what is published."""
    return {
        "kind": f"product_{decision.action}",
        "product": product,
        "cycle": _iso(decision.cycle),
        "old_champion": decision.old_champion,
        "new_champion": decision.new_champion,
        "published": decision.published,
        "artifact_versions": {
            m: versions.get(m) for m in (decision.old_champion, decision.new_champion)
        },
        "reason": decision.reason,
    }
