"""Significance of paired score differences: known answers from AR(1) theory and scipy."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from weather_assets.verification import significance as sig

PHI = 0.6
INFLATION = (1 + PHI) / (1 - PHI)  # = 4: variance of the mean of an AR(1), over the iid one
SEEDS = range(40)


def ar1(n: int, phi: float, seed: int, mean: float = 0.0) -> np.ndarray:
    """A stationary AR(1) series x_t = phi x_{t-1} + e_t, e ~ N(0, 1)."""
    rng = np.random.default_rng(seed)
    e = rng.standard_normal(n)
    x = np.empty(n)
    x[0] = e[0] / np.sqrt(1 - phi**2)  # start in the stationary distribution
    for t in range(1, n):
        x[t] = phi * x[t - 1] + e[t]
    return x + mean


def test_hand_computed_inflation():
    assert INFLATION == pytest.approx(4.0)


def test_ar1_effective_sample_size_recovers_the_variance_inflation():
    # n / n_eff = (1 + r1) / (1 - r1) -> (1 + phi) / (1 - phi) = 4. With n = 2000 the sd of r1
    # is about sqrt((1 - phi^2) / n) = 0.018, i.e. about 0.22 on the inflation per seed; the
    # mean over 40 seeds has sd ~0.035, so 0.15 is > 4 sigma (plus the O(1/n) bias of r1).
    n = 2000
    inflations = []
    for seed in SEEDS:
        x = ar1(n, PHI, seed)
        result = sig.ttest(x, "ar1")
        assert result.variance_inflation == pytest.approx(n / sig.effective_sample_size(x))
        assert abs(result.variance_inflation - INFLATION) < 1.0  # each seed: > 4 sigma
        inflations.append(result.variance_inflation)
    assert np.mean(inflations) == pytest.approx(INFLATION, abs=0.15)


def _bartlett_target(phi: float, lag: int) -> float:
    """What Newey-West with Bartlett weights and lag L estimates, over gamma_0, for an AR(1)."""
    return 1 + 2 * sum((1 - k / (lag + 1)) * phi**k for k in range(1, lag + 1))


def test_newey_west_lag_rule():
    assert sig.newey_west_lag(100) == 4
    assert sig.newey_west_lag(2000) == 7  # floor(4 * 20^(2/9)) = floor(7.78)
    assert sig.newey_west_lag(1) == 0


@pytest.mark.parametrize("lag", [None, 60])
def test_newey_west_variance_matches_bartlett_weighted_autocovariances(lag):
    # Long-run variance / gamma_0 of an AR(1): 1 + 2 sum_k w_k phi^k with Bartlett weights;
    # with a long lag this approaches the full inflation (1 + phi)/(1 - phi) = 4.
    n = 4000
    used = sig.newey_west_lag(n) if lag is None else lag
    target = _bartlett_target(PHI, used)
    ratios = []
    for seed in SEEDS:
        x = ar1(n, PHI, seed)
        ratios.append(sig.newey_west_variance(x, lag) / np.var(x))
    assert np.mean(ratios) == pytest.approx(target, abs=0.15)
    if lag == 60:
        assert target == pytest.approx(INFLATION, abs=0.25)


def test_ar1_test_holds_its_level_where_the_naive_test_does_not():
    # Mean-zero AR(1) differences: the corrected test rejects about 5 %, the iid one about
    # P(|Z| > 1.96 / 2) = 33 %. 300 series of 200: binomial sd of a 5 % rate is 1.3 %.
    n, reps = 200, 300
    ar1_rejections = iid_rejections = hac_rejections = 0
    for seed in range(reps):
        x = ar1(n, PHI, 1000 + seed)
        ar1_rejections += sig.ttest(x, "ar1").significant
        hac_rejections += sig.ttest(x, "hac").significant
        iid_rejections += sig.ttest(x, "iid").significant
    assert ar1_rejections / reps < 0.10
    assert hac_rejections / reps < 0.15  # a short Bartlett lag (4) under-corrects a little
    assert iid_rejections / reps > 0.25


def test_iid_ttest_equals_scipy():
    rng = np.random.default_rng(7)
    x = rng.normal(0.2, 1.0, size=37)
    result = sig.ttest(x, "iid")
    reference = stats.ttest_1samp(x, 0.0)
    ci = reference.confidence_interval(0.95)
    assert result.t == pytest.approx(reference.statistic, rel=1e-12)
    assert result.p_value == pytest.approx(reference.pvalue, rel=1e-10)
    assert result.ci_low == pytest.approx(ci.low, rel=1e-12)
    assert result.ci_high == pytest.approx(ci.high, rel=1e-12)
    assert result.dof == 36
    assert result.significant == (reference.pvalue < 0.05)


def test_ar1_with_negative_r1_is_the_iid_test():
    x = np.array([1.0, -1.0] * 10) + np.linspace(0, 0.5, 20)  # strongly negative r1
    assert sig.lag1_autocorrelation(x) < 0
    assert sig.ttest(x, "ar1").p_value == pytest.approx(sig.ttest(x, "iid").p_value)


def test_block_bootstrap_is_deterministic_and_covers_on_iid_data():
    # Coverage of the 95 % percentile interval of the mean, 300 iid normal samples of 100
    # (default block length ceil(100^(1/3)) = 5). Binomial sd of 95 % over 300 is 1.3 %;
    # accepted [0.90, 0.985] allows for the percentile method's known slight undercoverage.
    assert sig.block_length_rule(100) == 5
    assert sig.block_length_rule(1000) == 10
    mu, covered, reps = 0.3, 0, 300
    for seed in range(reps):
        x = np.random.default_rng(seed).normal(mu, 1.0, 100)
        low, high = sig.block_bootstrap_ci(x, n_boot=1000, seed=seed)
        covered += low <= mu <= high
    assert 0.90 <= covered / reps <= 0.985
    x = np.random.default_rng(1).normal(size=50)
    assert sig.block_bootstrap_ci(x, seed=3) == sig.block_bootstrap_ci(x, seed=3)
    assert sig.block_bootstrap_ci(x, seed=3) != sig.block_bootstrap_ci(x, seed=4)


def test_short_or_missing_series():
    result = sig.ttest([1.0, np.nan, 2.0])
    assert result.n == 2 and not result.significant and np.isnan(result.p_value)
    assert sig.ttest([1.0, 1.0, 1.0, 1.0]).significant  # a constant nonzero difference
    with pytest.raises(ValueError, match="unknown method"):
        sig.ttest([1.0, 2.0, 3.0], "bogus")


def _scores(n_cycles: int = 30) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    times = pd.date_range("2024-01-01", periods=n_cycles, freq="6h")
    rows = []
    for model, offset in (("fno", -0.5), ("persistence", 0.0), ("same", 0.0)):
        for lead in (pd.Timedelta("6h"), pd.Timedelta("12h")):
            for t in times:
                base = 2.0 + 0.1 * rng.standard_normal()
                rows.append(
                    dict(
                        model=model,
                        analysis_time=t,
                        lead_time=lead,
                        variable="2m_temperature",
                        level=-1,
                        metric="rmse",
                        value=base + offset,
                        n=10,
                    )
                )
    return pd.DataFrame(rows)


def test_significance_table_per_key():
    scores = _scores()
    table = sig.significance_table(scores, "fno", "persistence")
    assert list(table.columns[:6]) == [
        "model",
        "baseline",
        "metric",
        "variable",
        "level",
        "lead_time",
    ]
    assert len(table) == 2 and table["significant"].all() and (table["mean"] < 0).all()
    assert (table["ci_high"] < 0).all() and (table["boot_ci_high"] < 0).all()
    assert (table["n"] == 30).all()
    same = sig.significance_table(scores, "same", "persistence")
    assert not same["significant"].any()
    diffs = sig.paired_differences(scores.iloc[5:], "fno", "persistence")
    assert len(diffs) == 55  # only cycles scored for both (5 fno rows dropped)
