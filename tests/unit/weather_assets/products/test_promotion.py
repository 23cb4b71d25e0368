"""Champion/challenger decisions on known cases: promotion only when clearly better, guard
scores, rollback after failed checks and after degraded scores, pins, idempotent replay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from weather_assets.products.promotion import (
    Pin,
    Rules,
    ScoreSelector,
    decisions_table,
    pins_from_json,
    pins_to_json,
    promotion_table,
    promotion_verdict,
    published_model,
    replay,
    table_markdown,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
CADENCE = timedelta(hours=6)
LEAD = timedelta(hours=24)
FEATURES = [("geopotential", 500), ("temperature", 850), ("2m_temperature", -1)]
GUARD_ONLY = ("mean_sea_level_pressure", -1)
RULES = Rules(
    product="demo",
    champion="champ",
    challengers=("chall",),
    baseline="base",
    headline=tuple(ScoreSelector("rmse", v, lev, LEAD) for v, lev in FEATURES),
    guard=(ScoreSelector("rmse", lead_time=LEAD),),
    window=8,
    min_cycles=4,
    rollback_after=2,
    lag=LEAD,
)


def cycles(n: int) -> list[datetime]:
    return [T0 + i * CADENCE for i in range(n)]


def scores(
    offsets: dict[str, float],
    n: int = 16,
    *,
    noise: float = 0.05,
    seed: int = 0,
    guard_offsets: dict[str, float] | None = None,
    per_cycle: dict[str, dict[int, float]] | None = None,
    region: bool = False,
) -> pd.DataFrame:
    """Per-cycle RMSEs: a weather signal shared by every model (AR(1) in time), plus each
    model's offset and a little independent noise; ``per_cycle`` adds offsets on cycles."""
    rng = np.random.default_rng(seed)
    rows = []
    features = [*FEATURES, GUARD_ONLY]
    signal = np.zeros((len(features), n))
    for f in range(len(features)):
        for i in range(1, n):
            signal[f, i] = 0.6 * signal[f, i - 1] + rng.normal(0, 0.2)
    for model, offset in offsets.items():
        for f, (variable, level) in enumerate(features):
            extra = (guard_offsets or {}).get(model, 0.0) if (variable, level) == GUARD_ONLY else 0
            for i, t in enumerate(cycles(n)):
                bump = (per_cycle or {}).get(model, {}).get(i, 0.0)
                value = 2.0 + signal[f, i] + offset + extra + bump + rng.normal(0, noise)
                row = {
                    "model": model,
                    "analysis_time": pd.Timestamp(t.replace(tzinfo=None)),
                    "lead_time": pd.Timedelta(LEAD),
                    "variable": variable,
                    "level": level,
                    "metric": "rmse",
                    "value": value,
                    "n": 100,
                }
                if region:
                    rows.append({**row, "region": "global"})
                    rows.append({**row, "region": "tropics", "value": value + 5 * offset})
                else:
                    rows.append(row)
    return pd.DataFrame(rows)


def run(table, n=16, *, checks=None, pins=(), rules=RULES, as_of=None):
    cs = cycles(n)
    return replay(
        rules,
        table,
        cycles=cs,
        as_of=as_of or cs[-1],
        checks=checks or (lambda model, t: None),
        pins=pins,
    )


def actions(decisions, action):
    return [d for d in decisions if d.action == action]


def test_a_clearly_better_challenger_is_promoted():
    state, decisions = run(scores({"champ": 0.0, "chall": -0.3, "base": 0.5}))
    assert state.champion == "chall" and state.previous == ("champ",)
    promoted = actions(decisions, "promote")
    assert len(promoted) == 1
    d = promoted[0]
    assert (d.old_champion, d.new_champion) == ("champ", "chall")
    # Not before min_cycles verified cycles were paired.
    assert d.cycle >= T0 + (RULES.min_cycles - 1) * CADENCE
    head = d.table[d.table["role"] == "headline"]
    assert len(head) == 3 and set(head["verdict"]) == {"better"}
    assert head["significant"].all() and (head["ci_high"] < 0).all()
    assert "significantly better" in d.reason
    assert "better" in table_markdown(d.table) and "*" in table_markdown(d.table)


def test_a_slightly_better_challenger_within_noise_is_not_promoted():
    state, decisions = run(scores({"champ": 0.0, "chall": -0.005, "base": 0.5}, noise=0.05))
    assert state.champion == "champ"
    assert not actions(decisions, "promote")
    verified = [d for d in decisions if d.event == "verified"]
    assert verified and all(d.action in ("keep", "insufficient") for d in verified)
    assert "headline score(s) significantly better" in verified[-1].reason


@pytest.mark.parametrize("seed", range(5))
def test_a_worse_challenger_is_never_promoted(seed):
    state, decisions = run(scores({"champ": 0.0, "chall": 0.3, "base": 0.5}, seed=seed))
    assert state.champion == "champ"
    assert not actions(decisions, "promote")
    last = [d for d in decisions if d.event == "verified"][-1]
    verdicts = set(last.table[last.table["role"] == "headline"]["verdict"])
    assert "better" not in verdicts and "worse" in verdicts


def test_a_guard_score_significantly_worse_blocks_the_promotion():
    table = scores({"champ": 0.0, "chall": -0.3, "base": 0.5}, guard_offsets={"chall": 0.8})
    state, decisions = run(table)
    assert state.champion == "champ" and not actions(decisions, "promote")
    assert "guard" in [d for d in decisions if d.event == "verified"][-1].reason


def test_too_few_cycles_is_insufficient():
    table = scores({"champ": 0.0, "chall": -0.3, "base": 0.5}, n=6)
    _, decisions = run(table, n=6)
    verified = [d for d in decisions if d.event == "verified"]
    assert verified and {d.action for d in verified} == {"insufficient"}
    table, n = promotion_table(table, RULES, "champ", "chall", cycles(3))
    assert n == 3 and promotion_verdict(table, n, RULES) == (
        False,
        "3 paired cycle(s) in the window, fewer than 4",
    )


def test_headline_scores_use_the_global_region_when_the_scores_have_regions():
    # Tropics would make the challenger much worse: only "global" counts by default.
    state, _ = run(scores({"champ": 0.0, "chall": -0.3, "base": 0.5}, region=True))
    assert state.champion == "chall"
    rules = Rules(**{**RULES.__dict__, "regions": ("tropics",)})
    table = scores({"champ": 0.0, "chall": -0.3, "base": 0.5}, region=True)
    table.loc[table["region"] == "tropics", "value"] += np.where(
        table.loc[table["region"] == "tropics", "model"] == "chall", 3.0, 0.0
    )
    state, _ = run(table, rules=rules)
    assert state.champion == "champ"


def test_rollback_after_failed_checks_falls_back_to_the_previous_champion():
    table = scores({"champ": 0.0, "chall": -0.3, "base": 0.5})
    _, decisions = run(table)
    promoted_at = actions(decisions, "promote")[0].known_at
    broken = promoted_at + 2 * CADENCE  # the new champion's forecast fails its checks

    def checks(model, t):
        return "no committed forecast" if (model, t) == ("chall", broken) else None

    state, decisions = run(table, checks=checks)
    rollback = [d for d in decisions if d.action == "rollback"]
    assert rollback and rollback[0].event == "checks" and rollback[0].cycle == broken
    assert (rollback[0].old_champion, rollback[0].new_champion) == ("chall", "champ")
    assert "no committed forecast" in rollback[0].reason
    # The fallback is published for that cycle and the next ones ...
    s, ds = run(table, checks=checks, as_of=broken)
    assert published_model(s, ds, broken) == "champ"
    s, ds = run(table, checks=checks, as_of=broken + CADENCE)
    assert published_model(s, ds, broken + CADENCE) == "champ"
    # ... and the demoted model is promoted again only on cycles verified after its failure.
    again = [d for d in decisions if d.action == "promote" and d.known_at > broken]
    assert all(d.table[d.table["candidate"] == "chall"]["n"].max() <= 8 for d in again)


def test_failed_checks_without_a_previous_champion_fall_back_to_the_baseline():
    table = scores({"champ": 0.0, "chall": 0.3, "base": 0.5})
    broken = cycles(16)[5]
    state, decisions = run(
        table, checks=lambda m, t: "NaN" if (m, t) == ("champ", broken) else None, as_of=broken
    )
    assert state.champion == "base"
    # The demoted champion comes back only after min_cycles cycles verified after its failure.
    _, decisions = run(table, checks=lambda m, t: "NaN" if (m, t) == ("champ", broken) else None)
    back = actions(decisions, "promote")
    assert back and back[0].cycle >= broken + RULES.min_cycles * CADENCE
    s, ds = run(
        table, checks=lambda m, t: "NaN" if m == "champ" and t == broken else None, as_of=broken
    )
    assert published_model(s, ds, broken) == "base"
    # Nothing publishable at all: no model to publish, the decision says why.
    s, ds = run(table, checks=lambda m, t: "missing" if t == broken else None, as_of=broken)
    assert published_model(s, ds, broken) is None
    assert "champ: missing" in ds[-1].reason and "base: missing" in ds[-1].reason


def test_rollback_after_k_consecutive_degraded_cycles():
    # The champion is fine, then worse than the baseline on cycles 6 and 7 (K = 2).
    table = scores({"champ": 0.0, "chall": 0.3, "base": 0.5}, per_cycle={"champ": {6: 1.0, 7: 1.0}})
    state, decisions = run(table)
    rollback = actions(decisions, "rollback")
    assert len(rollback) == 1 and rollback[0].event == "verified"
    assert rollback[0].cycle == cycles(16)[7]
    assert (rollback[0].old_champion, rollback[0].new_champion) == ("champ", "base")
    assert "2 consecutive" in rollback[0].reason
    s, ds = run(table, as_of=rollback[0].known_at + CADENCE)
    assert s.champion == "base" and published_model(s, ds, rollback[0].known_at + CADENCE) == "base"
    # Back to its usual skill, the old champion is promoted again over the baseline, on
    # cycles verified after the rollback only.
    back = [d for d in actions(decisions, "promote") if d.known_at > rollback[0].known_at]
    assert back and back[0].new_champion == "champ" and back[0].cycle > rollback[0].cycle
    assert state.champion == "champ"
    # One degraded cycle alone is not enough.
    table = scores({"champ": 0.0, "chall": 0.3, "base": 0.5}, per_cycle={"champ": {6: 1.0}})
    state, decisions = run(table)
    assert state.champion == "champ" and not actions(decisions, "rollback")


def test_pinning_holds_the_champion_and_unpinning_resumes():
    table = scores({"champ": 0.0, "chall": -0.3, "base": 0.5})
    pin_at = cycles(16)[1]
    pins = [Pin("pin", pin_at, "champ", reason="incident review", by="ops")]
    state, decisions = run(table, pins=pins)
    assert state.champion == "champ" and state.pinned == "champ"
    assert not actions(decisions, "promote")
    assert [d.reason for d in decisions if d.event == "verified"][-1].startswith("pinned")
    # Unpinned: the next verified cycle promotes the better challenger.
    unpin_at = cycles(16)[10]
    pins.append(Pin("unpin", unpin_at))
    state, decisions = run(table, pins=pins)
    assert state.champion == "chall" and state.pinned is None
    assert actions(decisions, "promote")[0].known_at >= unpin_at
    # A pin can name any candidate; the pinned model's failed forecast falls back for that
    # cycle only and the pin stays.
    broken = cycles(16)[12]
    pins = [Pin("pin", pin_at, "chall")]

    def checks(model, t):
        return "missing" if (model, t) == ("chall", broken) else None

    s, ds = run(table, pins=pins, checks=checks, as_of=broken)
    assert s.pinned == "chall" and s.champion == "chall"
    assert published_model(s, ds, broken) == "champ"
    s, ds = run(table, pins=pins, checks=checks, as_of=broken + CADENCE)
    assert published_model(s, ds, broken + CADENCE) == "chall"
    assert pins_from_json(pins_to_json(pins)) == pins


def test_replay_is_idempotent_and_a_prefix_of_later_replays():
    table = scores({"champ": 0.0, "chall": -0.3, "base": 0.5})
    first = decisions_table(run(table)[1])
    again = decisions_table(run(table.sample(frac=1, random_state=3))[1])  # row order: no matter
    pd.testing.assert_frame_equal(first, again)
    earlier = decisions_table(run(table, as_of=cycles(16)[10])[1])
    pd.testing.assert_frame_equal(earlier, first.iloc[: len(earlier)].reset_index(drop=True))


def test_the_mean_change_counts_a_higher_acc_as_better():
    """Challengers are ranked by their mean headline change, oriented: an acc that rises by
    5 % and an rmse that falls by 5 % are both 5 % better."""
    import pandas as pd

    from weather_assets.products.promotion import oriented_change

    table = pd.DataFrame({"metric": ["rmse", "acc"], "pct_difference": [-5.0, +5.0]})
    assert oriented_change(table) == -5.0
    assert oriented_change(table.iloc[[1]]) == -5.0  # acc alone: better, not worse
