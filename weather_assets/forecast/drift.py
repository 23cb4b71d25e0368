"""Input drift: a cycle's standardized inputs against the artifact's training statistics.

A model only knows the distribution it was trained on. ``normalized/<model>`` holds the
cycle's state standardized with the artifact's ``state__train__mean``/``state__train__std``
(:func:`weather_assets.forecast.normalize.standardize`), so each feature's values ``z`` are
in units of its training spread. Per feature this module measures

- ``mean_z``: the mean of ``z`` over time, latitude and longitude (0 for the training data);
- ``std_z``: the spread of ``z`` (1 for the training data);
- ``frac_beyond_k``: the fraction of grid points with ``|z| > k`` (``k = 5`` by default);

unweighted, as the statistics are (mllam-data-prep), and refuses the cycle when any feature
is far outside. The thresholds (:class:`DriftThresholds`) are set by what a units mistake
does against what weather does:

- ``|mean_z| > 4``. A single cycle's mean departs from the training mean by its large-scale
  anomaly: a season against all-year statistics, a cold outbreak over a regional domain, a
  day of strong westerlies, which stays within about two training spreads. A units mistake
  moves the mean by far more: hPa for Pa divides mean sea-level pressure (about 101 325 Pa,
  spread about 1 000-2 000 Pa) by 100, ``mean_z`` about -50 to -100; degC for K shifts a
  temperature by -273.15 against a spread of about 5-25 K, ``mean_z`` about -10 to -50;
  metres for geopotential (m2 s-2) divides it by 9.81, ``mean_z`` about -25.
- ``std_z`` outside ``[0.1, 10]``. A cycle's spatial spread is a fraction of the training
  spread (which adds the spread over time): on a quiet day over a small domain it can be a
  fifth of it, so the bound is one decade either way. Any decimal-prefix mistake (x100 for
  hPa/Pa, x1000 for g/kg) leaves it; an offset (K/degC) keeps it, the mean catches that.
- ``frac_beyond_k > 5 %`` (``k = 5``). A normal field puts about 6e-7 of its points beyond
  five spreads; real extremes (the core of a deep cyclone on a regional domain) a per cent or
  two. A whole field in the wrong units puts about all of its points there, and a tile of
  the domain in the wrong units or unmasked fill values (9999, -32767) its share of them,
  while the mean can still look plausible.

Failing features are named with their likely cause when it is recognizable from the input's
implied mean and spread (``mean + std * mean_z``, ``std * std_z``): a factor of about 100 or
0.01 ("units: Pa vs hPa?"), an offset of about 273.15 ("units: K vs degC?"), a factor of
about 9.81 ("units: geopotential (m2 s-2) vs geopotential height (m)?") or 1000.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from weather_assets.forecast.normalize import FEATURE_DIM, stats_for
from weather_assets.quality import summary_markdown

COLUMNS = (
    "feature",
    "mean_z",
    "std_z",
    "frac_beyond_k",
    "train_mean",
    "train_std",
    "input_mean",
    "input_std",
    "passed",
    "reason",
    "likely_cause",
)
K_VS_DEGC = 273.15
G = 9.80665


@dataclass(frozen=True)
class DriftThresholds:
    """When a feature's standardized input counts as out of its training distribution."""

    max_abs_mean_z: float = 4.0
    min_std_z: float = 0.1
    max_std_z: float = 10.0
    k: float = 5.0
    max_frac_beyond_k: float = 0.05

    def describe(self) -> str:
        return (
            f"|mean z| <= {self.max_abs_mean_z:g}, std z in [{self.min_std_z:g}, "
            f"{self.max_std_z:g}], at most {self.max_frac_beyond_k:.0%} of points beyond "
            f"|z| > {self.k:g}"
        )


DEFAULT_THRESHOLDS = DriftThresholds()

# (factor input / training, label): a scale the input's values are off by.
_SCALES = (
    (0.01, "units: Pa vs hPa? (input about 100x too small)"),
    (100.0, "units: Pa vs hPa? (input about 100x too large)"),
    (1 / G, "units: geopotential (m2 s-2) vs geopotential height (m)?"),
    (G, "units: geopotential height (m) vs geopotential (m2 s-2)?"),
    (1e-3, "units: factor 1000 (e.g. g vs kg, mm vs m)? (input about 1000x too small)"),
    (1e3, "units: factor 1000 (e.g. g vs kg, mm vs m)? (input about 1000x too large)"),
)


def likely_cause(train_mean: float, train_std: float, mean_z: float, std_z: float) -> str:
    """A recognizable units mistake behind a feature's drift, or ``""``.

    The input's own mean and spread are implied by the standardized ones. A scale is
    estimated from the means where the training mean is well away from zero (more robust
    than the spread, which varies from day to day), else from the spreads; it is recognized
    within a factor of 2 of a known one, with the spread within a factor of 5 of it. An
    offset of 273.15 is recognized (first) within 20 % of it while the spread is kept
    (within a factor of 2): a scale would change the spread.
    """
    input_mean = train_mean + train_std * mean_z
    offset = input_mean - train_mean
    if 0.5 <= std_z <= 2.0 and abs(abs(offset) - K_VS_DEGC) < 0.2 * K_VS_DEGC:
        direction = "too cold: degC given for K" if offset < 0 else "too warm: K given for degC"
        return f"units: K vs degC? (input about 273 {direction})"
    if abs(train_mean) > 2 * train_std:
        scale = input_mean / train_mean
    else:
        scale = std_z
    if not (scale > 0 and math.isfinite(scale) and std_z > 0):
        return ""
    for factor, label in _SCALES:
        # The mean says which factor; the spread, scaled with it, must not contradict it.
        if abs(math.log10(scale / factor)) < math.log10(2.0) and abs(
            math.log10(std_z / factor)
        ) < math.log10(5.0):
            return label
    return ""


def drift_table(
    state: xr.DataArray,
    stats: xr.Dataset,
    thresholds: DriftThresholds = DEFAULT_THRESHOLDS,
) -> pd.DataFrame:
    """One row per feature of the standardized ``state`` (time, state_feature, lat, lon).

    ``stats`` are the statistics ``state`` was standardized with (the artifact's); they
    serve to tell the likely cause of a failure, the measures are of ``state`` alone.
    """
    features = [str(f) for f in state[FEATURE_DIM].values]
    s = stats_for(stats, features)
    z = state.transpose(FEATURE_DIM, ...).values.astype(np.float64).reshape(len(features), -1)
    rows = []
    for i, feature in enumerate(features):
        values = z[i][np.isfinite(z[i])]
        if values.size == 0:
            mean_z, std_z, frac = math.nan, math.nan, math.nan
        else:
            mean_z = float(values.mean())
            std_z = float(values.std())
            frac = float(np.mean(np.abs(values) > thresholds.k))
        mu = float(s["state__train__mean"].values[i])
        sigma = float(s["state__train__std"].values[i])
        reasons = []
        if values.size == 0:
            reasons.append("no finite values")
        else:
            if abs(mean_z) > thresholds.max_abs_mean_z:
                reasons.append(f"|mean z| {abs(mean_z):.3g} > {thresholds.max_abs_mean_z:g}")
            if not thresholds.min_std_z <= std_z <= thresholds.max_std_z:
                reasons.append(
                    f"std z {std_z:.3g} outside [{thresholds.min_std_z:g}, "
                    f"{thresholds.max_std_z:g}]"
                )
            if frac > thresholds.max_frac_beyond_k:
                reasons.append(
                    f"{frac:.1%} of points beyond {thresholds.k:g} sigma "
                    f"> {thresholds.max_frac_beyond_k:.0%}"
                )
        passed = not reasons
        rows.append(
            {
                "feature": feature,
                "mean_z": mean_z,
                "std_z": std_z,
                "frac_beyond_k": frac,
                "train_mean": mu,
                "train_std": sigma,
                "input_mean": mu + sigma * mean_z,
                "input_std": sigma * std_z,
                "passed": passed,
                "reason": "; ".join(reasons),
                "likely_cause": ""
                if passed or values.size == 0
                else likely_cause(mu, sigma, mean_z, std_z),
            }
        )
    return pd.DataFrame(rows, columns=list(COLUMNS))


def drift_description(table: pd.DataFrame) -> str:
    """One sentence: the failing features with why and their likely cause, or that all pass."""
    failing = table[~table["passed"]]
    if failing.empty:
        worst = float(np.nanmax(np.abs(table["mean_z"]))) if len(table) else 0.0
        return (
            f"All {len(table)} features within their training statistics "
            f"(max |mean z| {worst:.2f})."
        )
    parts = []
    for row in failing.itertuples(index=False):
        cause = f"; {row.likely_cause}" if row.likely_cause else ""
        parts.append(f"{row.feature} ({row.reason}{cause})")
    return (
        f"Input drift in {len(failing)} of {len(table)} features, refused before the "
        f"forecast: {', '.join(parts)}."
    )


@dataclass(frozen=True, eq=False)  # holds a DataFrame: compared by identity
class Drift:
    """A cycle's drift table and what a check reports of it."""

    table: pd.DataFrame
    thresholds: DriftThresholds = DEFAULT_THRESHOLDS

    @property
    def passed(self) -> bool:
        return bool(self.table["passed"].all())

    @property
    def failing(self) -> list[str]:
        return [str(f) for f in self.table.loc[~self.table["passed"], "feature"]]

    @property
    def max_abs_mean_z(self) -> float:
        values = np.abs(self.table["mean_z"].to_numpy(dtype=np.float64))
        return float(np.nanmax(values)) if np.isfinite(values).any() else math.nan

    @property
    def description(self) -> str:
        return drift_description(self.table)

    def markdown(self) -> str:
        cols = ["feature", "mean_z", "std_z", "frac_beyond_k", "passed", "likely_cause"]
        return summary_markdown(self.table[cols])

    def check_fields(self) -> dict:
        """Plain fields of a Dagster ``AssetCheckResult`` (severity ERROR, blocking)."""
        return {
            "passed": self.passed,
            "severity": "ERROR",
            "description": self.description,
            "metadata": {
                "max_abs_mean_z": self.max_abs_mean_z,
                "failing_features": ", ".join(self.failing) or "none",
                "thresholds": self.thresholds.describe(),
                "table": self.markdown(),
            },
        }


def assess_drift(
    state: xr.DataArray,
    stats: xr.Dataset,
    thresholds: DriftThresholds = DEFAULT_THRESHOLDS,
) -> Drift:
    """The drift of a standardized cycle ``state`` from the statistics it was standardized with."""
    return Drift(drift_table(state, stats, thresholds), thresholds)
