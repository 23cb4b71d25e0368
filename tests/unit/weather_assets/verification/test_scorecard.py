"""Scorecard: percentage RMSE difference against the baseline, markdown and PNG."""

from __future__ import annotations

import base64

import numpy as np
import pandas as pd
import pytest

from weather_assets.pictures import png_markdown
from weather_assets.verification.scorecard import (
    CARD_COLUMNS,
    last_period,
    scorecard_grid,
    scorecard_markdown,
    scorecard_png,
    scorecard_table,
)

T0 = pd.Timestamp("2026-01-01T00:00")


def _table(model: str, rmse: dict[tuple[str, int], float], cycles: int = 2, leads=(24, 48)):
    """RMSE rows for every cycle and lead: value = rmse[var, level] * lead/24 * (1 + cycle/10)."""
    rows = []
    for c in range(cycles):
        for (variable, level), base in rmse.items():
            for lead in leads:
                rows.append(
                    {
                        "model": model,
                        "analysis_time": T0 + pd.Timedelta(hours=12 * c),
                        "lead_time": pd.Timedelta(hours=lead),
                        "variable": variable,
                        "level": level,
                        "metric": "rmse",
                        "value": base * lead / 24 * (1 + c / 10),
                        "n": 100,
                    }
                )
    return pd.DataFrame(rows)


BASE = {("geopotential", 500): 400.0, ("2m_temperature", -1): 2.0}


def test_percentage_difference_per_variable_level_and_lead():
    better = {k: v * 0.8 for k, v in BASE.items()}
    worse = {k: v * 1.1 for k, v in BASE.items()}
    table = pd.concat(
        [_table("persistence", BASE), _table("fno", better), _table("bad", worse)],
        ignore_index=True,
    )
    card = scorecard_table(table, baseline="persistence")
    assert list(card.columns) == list(CARD_COLUMNS)
    assert set(card["model"]) == {"fno", "bad"}
    np.testing.assert_allclose(card[card["model"] == "fno"]["pct_diff"], -20.0)
    np.testing.assert_allclose(card[card["model"] == "bad"]["pct_diff"], 10.0)
    assert (card["cycles"] == 2).all()
    # RMSE over the period is the root of the mean MSE of the two cycles.
    z = card[(card["model"] == "fno") & (card["variable"] == "geopotential")]
    z24 = z[z["lead_time"] == pd.Timedelta(hours=24)]
    expected = np.sqrt(np.mean(np.square([320.0, 352.0])))
    assert float(z24["value"].iloc[0]) == pytest.approx(expected)
    grid = scorecard_grid(card, "fno")
    assert list(grid.index) == ["2m_temperature", "geopotential_500hPa"]
    assert list(grid.columns) == ["+24h", "+48h"]


def test_cycles_are_paired_with_the_baseline():
    base = _table("persistence", BASE, cycles=2)
    model = _table("fno", {k: v * 0.5 for k, v in BASE.items()}, cycles=1)
    # The baseline's second cycle has a much larger error: unpaired, it must not count.
    card = scorecard_table(pd.concat([base, model], ignore_index=True))
    np.testing.assert_allclose(card["pct_diff"], -50.0)
    assert (card["cycles"] == 1).all()


def test_missing_baseline_or_period_fails_clearly():
    table = _table("fno", BASE)
    with pytest.raises(ValueError, match="baseline 'persistence' has no rmse scores.*fno"):
        scorecard_table(table)
    both = pd.concat([table, _table("persistence", BASE)], ignore_index=True)
    card = scorecard_table(both, start="2026-01-01T1200Z", end="2026-01-01T1200Z")
    assert (card["cycles"] == 1).all()


def test_nan_scores_show_as_not_available():
    base = _table("persistence", BASE)
    model = _table("fno", BASE)
    model.loc[0, "value"] = np.nan
    card = scorecard_table(pd.concat([base, model], ignore_index=True))
    assert card["pct_diff"].isna().sum() == 1
    assert "n/a" in scorecard_markdown(card)


def test_markdown_and_png():
    table = pd.concat(
        [_table("persistence", BASE), _table("fno", {k: v * 0.9 for k, v in BASE.items()})],
        ignore_index=True,
    )
    card = scorecard_table(table)
    md = scorecard_markdown(card)
    assert "**fno** vs **persistence**" in md
    assert "| variable | +24h | +48h |" in md
    assert "| geopotential_500hPa | -10.0% | -10.0% |" in md
    png = scorecard_png(card, title="test")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    embedded = png_markdown(png)
    assert embedded.startswith("![scorecard](data:image/png;base64,")
    assert base64.b64decode(embedded.split(",", 1)[1].rstrip(")")) == png
    empty = scorecard_table(_table("persistence", BASE))
    assert empty.empty and "no model" in scorecard_markdown(empty)
    assert scorecard_png(empty)[:4] == b"\x89PNG"


def test_last_period_ends_at_the_latest_cycle():
    table = pd.DataFrame(
        {"analysis_time": [T0 + pd.Timedelta(days=d) for d in (0, 1, 5, 7, 8)], "value": 1.0}
    )
    period, start, end = last_period(table, 7.0)
    assert end == T0 + pd.Timedelta(days=8) and start == T0 + pd.Timedelta(days=1)
    # (start, end]: the cycle exactly period_days before the latest is left out
    assert list(period["analysis_time"]) == [T0 + pd.Timedelta(days=d) for d in (5, 7, 8)]


def _noisy(model: str, offset: float, seed: int, cycles: int = 20) -> pd.DataFrame:
    """2m_temperature RMSE at +24h per cycle: 2 + offset + N(0, 0.1^2) noise."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "model": model,
            "analysis_time": [T0 + pd.Timedelta(hours=12 * c) for c in range(cycles)],
            "lead_time": pd.Timedelta(hours=24),
            "variable": "2m_temperature",
            "level": -1,
            "metric": "rmse",
            "value": 2.0 + offset + 0.1 * rng.standard_normal(cycles),
            "n": 100,
        }
    )


def test_significance_columns_and_marks():
    from weather_assets.verification.schemas import validate_card
    from weather_assets.verification.significance import ttest

    base = _noisy("persistence", 0.0, 0)
    table = pd.concat([base, _noisy("fno", -0.5, 1), _noisy("close", 0.0, 2)], ignore_index=True)
    card = validate_card(scorecard_table(table, baseline="persistence"))
    fno = card[card["model"] == "fno"].iloc[0]
    close = card[card["model"] == "close"].iloc[0]
    assert fno["significant"] and fno["p_value"] < 0.05
    assert fno["ci_low"] < fno["pct_diff"] < fno["ci_high"] < 0
    assert not close["significant"] and close["ci_low"] < 0 < close["ci_high"]
    # The interval is the AR(1)-corrected t-test's on per-cycle differences, in % of baseline.
    expected = ttest(_noisy("fno", -0.5, 1)["value"] - base["value"], "ar1")
    assert fno["ci_low"] == pytest.approx(100 * expected.ci_low / fno["baseline_value"])
    assert fno["p_value"] == pytest.approx(expected.p_value)
    markdown = scorecard_markdown(card)
    assert "| 2m_temperature | -2" in markdown and "%* |" in markdown
    assert markdown.count("%* |") == 1 and "significant at 95 %" in markdown
    assert scorecard_png(card).startswith(b"\x89PNG")


def test_too_few_cycles_are_never_significant():
    table = pd.concat([_table("persistence", BASE), _table("fno", BASE)], ignore_index=True)
    card = scorecard_table(table, baseline="persistence")
    assert not card["significant"].any() and card["p_value"].isna().all()
    assert "%* |" not in scorecard_markdown(card)
