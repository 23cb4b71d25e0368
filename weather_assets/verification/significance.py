"""Is a score difference between a model and its baseline real? Plain numpy/pandas functions.

The input is the series of paired per-cycle differences ``d_t = score(model, t) -
score(baseline, t)`` of one score (one variable, level and lead time; one region), over the
cycles ``t = 1..n`` where both were verified. Consecutive cycles' errors are correlated (weather
regimes last longer than the cycle interval), so the ``n`` differences carry less information
than ``n`` independent ones and a plain t-test is overconfident. Three estimates of the
uncertainty of the mean difference ``dbar``, all two-sided at level ``alpha`` (95 % by default):

``ttest(d, method="ar1")`` (the default): a t-test with an effective sample size
  (Wilks, *Statistical Methods in the Atmospheric Sciences*, 3rd ed., 2011, section 5.2.4,
  eqs. 5.12-5.13)::

      r1    = sum_{t<n} (d_t - dbar)(d_{t+1} - dbar) / sum_t (d_t - dbar)^2
      n_eff = n (1 - r1) / (1 + r1)          r1 clipped to [0, R1_MAX]
      se    = sqrt(s^2 / n_eff)               s^2 the sample variance (ddof=1)
      t     = dbar / se,  dof = n_eff - 1,  CI = dbar +- t_{1-alpha/2, dof} se

  For an AR(1) process with coefficient phi, ``n / n_eff -> (1 + phi) / (1 - phi)``, the
  variance inflation of the mean (4 for phi = 0.6). A negative ``r1`` is clipped to 0 (never
  claim more information than ``n`` cycles give) and ``r1`` at most ``R1_MAX`` = 0.95 keeps
  ``n_eff`` finite. ``n_eff`` is floored at 2 so that ``dof >= 1``.

``ttest(d, method="hac")``: the Newey-West (1987) heteroskedasticity- and
  autocorrelation-consistent variance of the mean, with Bartlett weights::

      gamma_k = (1/n) sum_{t=1}^{n-k} (d_t - dbar)(d_{t+k} - dbar)
      S       = gamma_0 + 2 sum_{k=1}^{L} (1 - k/(L+1)) gamma_k
      se      = sqrt(S / n),  dof = n - 1

  Lag rule (Newey and West 1994, the usual rule of thumb): ``L = floor(4 (n/100)^(2/9))``,
  at most ``n - 1``. With a finite ``L`` the estimator targets
  ``gamma_0 (1 + 2 sum_{k<=L} (1 - k/(L+1)) rho_k)``, not the full long-run variance; the
  tests check it against that.

``ttest(d, method="iid")``: the ordinary one-sample t-test (``scipy.stats.ttest_1samp``).

``block_bootstrap_ci(d)``: a moving-block bootstrap (Kuensch 1989): resample ``ceil(n/l)``
overlapping blocks of ``l`` consecutive differences with replacement, truncate to ``n``, take
the mean; the percentile interval of ``n_boot`` such means. Block length rule:
``l = ceil(n^(1/3))`` (the order that is optimal for variance estimation, Hall, Horowitz and
Jing 1995), at least 1 and at most ``n``. The RNG is ``numpy.random.default_rng(seed)``, so
the interval is a deterministic function of ``d`` and ``seed``.

``compare(d)`` runs the t-test and the bootstrap; ``significant`` is the t-test's verdict
(``p < alpha``). ``significance_table(scores, model, baseline)`` does it for every key of a
per-cycle scores table (see ``schemas.SCORES_TABLE``).

NaNs in ``d`` (a cycle where either score is missing) are dropped before anything else; the
series then has gaps that the autocorrelation estimate ignores. Fewer than 3 differences give a
result with NaN statistics and ``significant=False``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

Method = Literal["ar1", "hac", "iid"]
METHODS: tuple[str, ...] = ("ar1", "hac", "iid")
R1_MAX = 0.95
ALPHA = 0.05
MIN_CYCLES = 3


@dataclass(frozen=True)
class TestResult:
    """A t-test of ``mean(d) == 0`` with its confidence interval."""

    method: str
    n: int
    mean: float
    se: float
    n_eff: float
    lag1_autocorrelation: float
    variance_inflation: float
    dof: float
    t: float
    p_value: float
    ci_low: float
    ci_high: float
    significant: bool


@dataclass(frozen=True)
class Comparison:
    """The t-test and the moving-block bootstrap interval of one difference series."""

    test: TestResult
    boot_ci_low: float
    boot_ci_high: float
    block_length: int

    @property
    def significant(self) -> bool:
        return self.test.significant

    def as_dict(self) -> dict:
        out = asdict(self.test)
        out.update(boot_ci_low=self.boot_ci_low, boot_ci_high=self.boot_ci_high)
        out["block_length"] = self.block_length
        return out


def _clean(d: ArrayLike) -> np.ndarray:
    x = np.asarray(d, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"a difference series must be 1-D, got shape {x.shape}")
    return x[np.isfinite(x)]


def lag1_autocorrelation(d: ArrayLike) -> float:
    """The lag-1 sample autocorrelation ``r1`` (Wilks eq. 3.32, with the full-series mean)."""
    x = _clean(d)
    if x.size < 2:
        return math.nan
    a = x - x.mean()
    denominator = float(a @ a)
    if denominator == 0:
        return 0.0
    return float(a[:-1] @ a[1:]) / denominator


def effective_sample_size(d: ArrayLike) -> float:
    """``n (1 - r1) / (1 + r1)`` with ``r1`` clipped to ``[0, R1_MAX]``, at least 2 (Wilks 5.12)."""
    x = _clean(d)
    r1 = min(max(lag1_autocorrelation(x), 0.0), R1_MAX)
    return max(x.size * (1 - r1) / (1 + r1), 2.0)


def newey_west_lag(n: int) -> int:
    """``floor(4 (n/100)^(2/9))``, at most ``n - 1`` (Newey and West 1994)."""
    return max(0, min(int(math.floor(4 * (n / 100) ** (2 / 9))), n - 1))


def newey_west_variance(d: ArrayLike, lag: int | None = None) -> float:
    """The Bartlett-weighted long-run variance ``S`` (the variance of the mean is ``S / n``)."""
    x = _clean(d)
    n = x.size
    if n < 2:
        return math.nan
    lag = newey_west_lag(n) if lag is None else min(int(lag), n - 1)
    a = x - x.mean()
    s = float(a @ a) / n
    for k in range(1, lag + 1):
        s += 2 * (1 - k / (lag + 1)) * float(a[:-k] @ a[k:]) / n
    return max(s, 0.0)


def _nan_result(method: str, n: int, mean: float) -> TestResult:
    nan = math.nan
    return TestResult(method, n, mean, nan, nan, nan, nan, nan, nan, nan, nan, nan, False)


def ttest(
    d: ArrayLike, method: Method = "ar1", alpha: float = ALPHA, lag: int | None = None
) -> TestResult:
    """Two-sided t-test of ``mean(d) == 0`` and its ``1 - alpha`` interval (module docstring)."""
    from scipy import stats

    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {METHODS}")
    x = _clean(d)
    n = int(x.size)
    mean = float(x.mean()) if n else math.nan
    if n < MIN_CYCLES:
        return _nan_result(method, n, mean)
    variance = float(x.var(ddof=1))
    r1 = lag1_autocorrelation(x)
    if method == "iid":
        n_eff, dof = float(n), n - 1.0
        se = math.sqrt(variance / n)
    elif method == "ar1":
        n_eff = effective_sample_size(x)
        dof = n_eff - 1
        se = math.sqrt(variance / n_eff)
    else:
        long_run = newey_west_variance(x, lag)
        se = math.sqrt(long_run / n)
        n_eff = n * variance / long_run if long_run > 0 else math.inf
        dof = n - 1.0
    quantile = float(stats.t.ppf(1 - alpha / 2, dof))
    if se == 0:
        t, p = (0.0, 1.0) if mean == 0 else (math.copysign(math.inf, mean), 0.0)
    else:
        t = mean / se
        p = float(2 * stats.t.sf(abs(t), dof))
    return TestResult(
        method=method,
        n=n,
        mean=mean,
        se=se,
        n_eff=n_eff,
        lag1_autocorrelation=r1,
        variance_inflation=n / n_eff,
        dof=dof,
        t=t,
        p_value=p,
        ci_low=mean - quantile * se,
        ci_high=mean + quantile * se,
        significant=bool(p < alpha),
    )


def block_length_rule(n: int) -> int:
    """``ceil(n^(1/3))``, within ``[1, n]``."""
    return max(1, min(n, math.ceil(n ** (1 / 3) - 1e-9)))


def block_bootstrap_means(
    d: ArrayLike, block_length: int | None = None, n_boot: int = 2000, seed: int = 0
) -> np.ndarray:
    """``n_boot`` moving-block bootstrap means of ``d`` (deterministic for a given ``seed``)."""
    x = _clean(d)
    n = x.size
    if n == 0:
        return np.full(n_boot, np.nan)
    block = block_length_rule(n) if block_length is None else max(1, min(int(block_length), n))
    blocks = math.ceil(n / block)
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, n - block + 1, size=(n_boot, blocks))
    index = (starts[:, :, None] + np.arange(block)).reshape(n_boot, -1)[:, :n]
    return x[index].mean(axis=1)


def block_bootstrap_ci(
    d: ArrayLike,
    alpha: float = ALPHA,
    block_length: int | None = None,
    n_boot: int = 2000,
    seed: int = 0,
) -> tuple[float, float]:
    """The percentile ``1 - alpha`` interval of the moving-block bootstrap means."""
    if _clean(d).size < MIN_CYCLES:
        return math.nan, math.nan
    means = block_bootstrap_means(d, block_length, n_boot, seed)
    low, high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def compare(
    d: ArrayLike,
    method: Method = "ar1",
    alpha: float = ALPHA,
    n_boot: int = 2000,
    seed: int = 0,
    block_length: int | None = None,
) -> Comparison:
    """The t-test (``method``) and the moving-block bootstrap interval of one series."""
    x = _clean(d)
    test = ttest(x, method, alpha)
    low, high = block_bootstrap_ci(x, alpha, block_length, n_boot, seed)
    block = block_length_rule(x.size) if block_length is None else int(block_length)
    return Comparison(test, low, high, block if x.size else 0)


def paired_differences(
    scores: pd.DataFrame,
    model: str,
    baseline: str,
    metric: str = "rmse",
    keys: Sequence[str] | None = None,
    cycle: str = "analysis_time",
) -> pd.DataFrame:
    """Per-cycle ``model - baseline`` differences of ``metric``: rows ``keys + [cycle]``.

    ``keys`` default to the score keys present in ``scores`` among ``region``, ``variable``,
    ``level`` and ``lead_time``. Only cycles scored for both models are kept (an inner join).
    """
    if keys is None:
        keys = [k for k in ("region", "variable", "level", "lead_time") if k in scores.columns]
    keys = list(keys)
    rows = scores[scores["metric"] == metric]
    on = [*keys, cycle]
    a = rows[rows["model"] == model][[*on, "value"]]
    b = rows[rows["model"] == baseline][[*on, "value"]]
    merged = a.merge(b, on=on, suffixes=("_model", "_baseline"), validate="one_to_one")
    merged["difference"] = merged["value_model"] - merged["value_baseline"]
    return merged.sort_values(on).reset_index(drop=True)


SIGNIFICANCE_COLUMNS = (
    "n",
    "mean",
    "se",
    "n_eff",
    "lag1_autocorrelation",
    "p_value",
    "ci_low",
    "ci_high",
    "boot_ci_low",
    "boot_ci_high",
    "significant",
)


def significance_table(
    scores: pd.DataFrame,
    model: str,
    baseline: str,
    metric: str = "rmse",
    keys: Sequence[str] | None = None,
    method: Method = "ar1",
    alpha: float = ALPHA,
    n_boot: int = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per key: the mean ``model - baseline`` difference, its intervals and verdict.

    ``mean < 0`` with ``significant`` means the model is significantly better on an
    error score (rmse, mae, crps); on acc, higher is better.
    """
    diffs = paired_differences(scores, model, baseline, metric, keys)
    if keys is None:
        keys = [k for k in ("region", "variable", "level", "lead_time") if k in diffs.columns]
    keys = list(keys)
    out = []
    for key, group in diffs.groupby(keys, sort=True) if keys else [((), diffs)]:
        result = compare(group["difference"].to_numpy(), method, alpha, n_boot, seed).as_dict()
        key = key if isinstance(key, tuple) else (key,)
        out.append(
            {**dict(zip(keys, key, strict=True)), **{c: result[c] for c in SIGNIFICANCE_COLUMNS}}
        )
    table = pd.DataFrame(out, columns=[*keys, *SIGNIFICANCE_COLUMNS])
    table.insert(0, "metric", metric)
    table.insert(0, "baseline", baseline)
    table.insert(0, "model", model)
    return table
