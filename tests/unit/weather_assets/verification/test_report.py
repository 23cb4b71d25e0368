"""What the verification assets report: headline numbers with units and 4 significant digits,
metadata the UI's by-partition plots can draw, column schemas, the trend picture."""

from __future__ import annotations

import io
import math

import dagster as dg
import matplotlib.image
import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from weather_assets.verification.report import (
    card_column_schema,
    column_schema,
    headline_label,
    headline_metadata,
    scores_markdown,
    significant,
    verification_metadata,
)
from weather_assets.verification.schemas import CARD_TABLE
from weather_assets.verification.scorecard import (
    choose_headline,
    trend_figure,
    trend_png,
    trend_series,
)
from weather_assets.verification.scores import (
    COLUMNS,
    Verification,
    score_units,
    square_units,
)

T0 = pd.Timestamp("2026-01-01T00:00")


def _table(
    values: dict[tuple[str, str, int], float],
    leads=(24, 72),
    cycles: int = 1,
    model: str = "fno",
    version: str | None = None,
) -> pd.DataFrame:
    rows = [
        {
            "model": model,
            "analysis_time": T0 + pd.Timedelta(hours=6 * c),
            "lead_time": pd.Timedelta(hours=lead),
            "variable": variable,
            "level": level,
            "metric": metric,
            "value": value * (1 + c / 10),
            "n": 100,
        }
        for c in range(cycles)
        for (metric, variable, level), value in values.items()
        for lead in leads
    ]
    table = pd.DataFrame(rows)
    return table if version is None else table.assign(artifact_version=version)


HEADLINE_VALUES = {
    ("rmse", "geopotential", 500): 123.456789,
    ("rmse", "2m_temperature", -1): 1.23456789,
    ("acc", "geopotential", 500): 0.987654321,
    ("rmse", "temperature", 850): float("nan"),
}


def test_headlines_have_units_and_four_significant_digits():
    meta = headline_metadata(_table(HEADLINE_VALUES))
    z = meta["rmse geopotential_500hPa +24h [m2 s-2]"]
    assert isinstance(z, dg.FloatMetadataValue) and z.value == 123.5
    assert meta["rmse 2m_temperature +72h [K]"].value == 1.235
    assert meta["acc geopotential_500hPa +24h [1]"].value == 0.9877
    # A NaN score is left out (a gap in the plot), never a null point.
    assert not [label for label in meta if "temperature_850hPa" in label]
    assert all(math.isfinite(v.value) for v in meta.values())


def test_score_units():
    assert score_units("rmse", "geopotential") == "m2 s-2"
    assert score_units("bias", "10m_u_component_of_wind") == "m s-1"
    assert score_units("crps_fair", "mean_sea_level_pressure") == "Pa"
    assert score_units("acc", "2m_temperature") == "1"
    assert score_units("spread_skill", "temperature") == "1"
    assert score_units("mse", "10m_u_component_of_wind") == "m2 s-2"
    assert score_units("mse", "specific_humidity") == "kg2 kg-2"
    assert headline_label("rmse", "temperature", 850, pd.Timedelta(hours=24)) == (
        "rmse temperature_850hPa +24h [K]"
    )


@pytest.mark.parametrize(
    ("units", "squared"),
    [("K", "K2"), ("m s-1", "m2 s-2"), ("m2 s-2", "m4 s-4"), ("Pa", "Pa2"), ("1", "1")],
)
def test_square_units(units, squared):
    assert square_units(units) == squared


@given(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e30, max_value=1e30))
def test_significant_keeps_four_digits(x):
    y = significant(x)
    assert significant(y) == y  # idempotent
    assert float(f"{y:.4g}") == y  # four significant digits
    assert abs(y - x) <= 5e-4 * abs(x) + 1e-300


@given(st.sampled_from([float("nan"), float("inf"), float("-inf"), 0.0]))
def test_significant_leaves_non_finite_and_zero(x):
    y = significant(x)
    assert (math.isnan(x) and math.isnan(y)) or y == x


def _verification(table: pd.DataFrame) -> Verification:
    leads = sorted(pd.to_timedelta(table["lead_time"].unique()))
    return Verification(table=table, scored_leads=leads, missing_leads=[], members=1)


def test_partition_plot_entries_are_finite_floats_with_one_type_per_label():
    """The UI's by-partition plot draws Float/Int entries of each partition's latest
    materialization; a label must keep one numeric type across partitions, with finite
    values (a NaN is a null point)."""
    nan_partition = dict(HEADLINE_VALUES)
    nan_partition[("rmse", "geopotential", 500)] = float("nan")
    types: dict[str, set[type]] = {}
    for values in (HEADLINE_VALUES, nan_partition):
        table = _table(values)
        meta = verification_metadata(
            _verification(table),
            table,
            url="/x",
            partition_key="2026-01-01T0000Z",
            climatology=None,
        )
        # As recorded: the metadata of the event the UI reads.
        recorded = dg.AssetMaterialization("verification/fno", metadata=meta).metadata
        for label, normalized in recorded.items():
            types.setdefault(label, set()).add(type(normalized))
            if isinstance(normalized, dg.FloatMetadataValue):
                assert math.isfinite(normalized.value), label
    assert all(len(t) == 1 for t in types.values()), types
    numeric = {
        label for label, t in types.items() if t & {dg.FloatMetadataValue, dg.IntMetadataValue}
    }
    assert "rmse geopotential_500hPa +24h [m2 s-2]" in numeric
    assert {"dagster/row_count", "scored_leads", "nan_scores"} <= numeric


def test_scores_markdown_has_units_and_four_digits():
    md = scores_markdown(_table(HEADLINE_VALUES))
    assert "| variable | units | +24h | +72h |" in md
    assert "| geopotential_500hPa | m2 s-2 | 123.5 | 123.5 |" in md
    assert "| temperature_850hPa | K | NaN | NaN |" in md


def test_column_schemas_describe_every_column():
    scores = column_schema()
    assert [c.name for c in scores.columns] == list(COLUMNS)
    card = card_column_schema()
    assert [c.name for c in card.columns] == list(CARD_TABLE.columns)
    for column in [*scores.columns, *card.columns]:
        assert column.description, column.name
    value = {c.name: c for c in scores.columns}["value"]
    assert "units" in value.description and "m2 s-2" in value.description
    assert "%" in {c.name: c for c in card.columns}["pct_diff"].description


def _trend_table() -> pd.DataFrame:
    z = {("rmse", "geopotential", 500): 400.0, ("rmse", "2m_temperature", -1): 2.0}
    return pd.concat(
        [
            _table(z, cycles=4, model="persistence", version="default"),
            _table(z, cycles=2, model="fno", version="v1"),
            _table(z, cycles=4, model="fno", version="v2").assign(
                analysis_time=lambda d: d["analysis_time"] + pd.Timedelta(hours=12)
            ),
        ],
        ignore_index=True,
    )


def test_trend_picture_is_a_png_with_one_line_per_model_and_version():
    table = _trend_table()
    current = {"fno": "v2", "persistence": "default"}
    headline = choose_headline(table, "rmse")
    assert (headline.variable, headline.level) == ("geopotential", 500)
    assert headline.leads == (pd.Timedelta(hours=24), pd.Timedelta(hours=72))
    assert headline.label == "rmse geopotential_500hPa [m2 s-2]"
    series = trend_series(table, headline)
    assert set(zip(series["model"], series["artifact_version"], strict=True)) == {
        ("persistence", "default"),
        ("fno", "v1"),
        ("fno", "v2"),
    }
    assert series.groupby(["model", "artifact_version", "lead_time"])[
        "analysis_time"
    ].is_monotonic_increasing.all()
    fig = trend_figure(table, current=current)
    try:
        assert len(fig.axes) == 2  # one panel per headline lead
        for ax in fig.axes:
            labels = sorted(line.get_label() for line in ax.get_lines())
            assert labels == ["fno @ v1 (superseded)", "fno @ v2 (current)", "persistence"]
            styles = {line.get_label(): line.get_linestyle() for line in ax.get_lines()}
            assert styles["fno @ v1 (superseded)"] == "--" and styles["fno @ v2 (current)"] == "-"
            xs = {line.get_label(): len(line.get_xdata()) for line in ax.get_lines()}
            assert xs == {"persistence": 4, "fno @ v1 (superseded)": 2, "fno @ v2 (current)": 4}
            assert "analysis time" in ax.get_xlabel() and "[m2 s-2]" in ax.get_ylabel()
    finally:
        import matplotlib.pyplot as plt

        plt.close(fig)
    png = trend_png(table, current=current)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    image = matplotlib.image.imread(io.BytesIO(png), format="png")
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 300


def test_trend_without_headline_variables_uses_what_is_there():
    table = _table({("bias", "specific_humidity", 700): 1e-4}, leads=(6, 12, 18, 30, 48))
    headline = choose_headline(table, "bias")
    assert (headline.variable, headline.level) == ("specific_humidity", 700)
    assert headline.leads == tuple(pd.Timedelta(hours=h) for h in (6, 18, 48))
    assert choose_headline(table, "rmse") is None
    assert trend_png(table, metric="rmse")[:4] == b"\x89PNG"
    assert np.isfinite(trend_series(table, headline)["value"]).all()
