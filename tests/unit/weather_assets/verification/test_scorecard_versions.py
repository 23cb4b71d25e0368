"""Scorecards across artifact versions: a retrain never blanks the card, every period has its
own files, and an empty period is an honest "no data" materialization."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg
import numpy as np
import pandas as pd
import pytest

import weather_assets.verification.scorecard_asset as scorecard_module
from model_registry.registry import load_registry
from resources.layout import scorecard_relpath, scores_relpath, scores_versions, write_table
from resources.storage import Storage, StorageResource
from weather_assets import paths
from weather_assets.keys import SCORECARD_KEY
from weather_assets.partitions import analysis_time_partitions
from weather_assets.verification.schemas import card_schema
from weather_assets.verification.scorecard import (
    CARD_COLUMNS,
    paired_cycles,
    scorecard_markdown,
    scorecard_table,
    versions_summary,
)
from weather_assets.verification.scorecard_asset import (
    PeriodScores,
    build_scorecard,
    recent_scores,
    scorecard_asset,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)  # the partitions' start
FIRST = datetime(2026, 1, 3, tzinfo=UTC)  # the first scored cycle
LEADS = (6, 24)
FEATURES = {("geopotential", 500): 400.0, ("2m_temperature", -1): 2.0}
CURRENT = {"persistence": "default", "fno": "v2"}


def _scores(model: str, t: datetime, factor: float) -> pd.DataFrame:
    """RMSE rows of one cycle: value = base * lead / 24 * factor."""
    rows = [
        {
            "model": model,
            "analysis_time": pd.Timestamp(t).tz_localize(None).as_unit("ns"),
            "lead_time": pd.Timedelta(hours=lead),
            "variable": variable,
            "level": level,
            "metric": "rmse",
            "value": base * lead / 24 * factor,
            "n": 100,
        }
        for (variable, level), base in FEATURES.items()
        for lead in LEADS
    ]
    return pd.DataFrame(rows).astype({"analysis_time": "datetime64[ns]"})


def _specs():
    base = {s.name: s for s in load_registry()}["persistence"]
    return [base, base.model_copy(update={"name": "fno"})]


def _cycles(n: int, first: datetime = FIRST) -> list[datetime]:
    return [first + timedelta(hours=6 * i) for i in range(n)]


def _write_history(settings, store: Storage) -> None:
    """Eight cycles: fno's artifact v1 for the first six (-20 %), v2 for the last two (-50 %)."""
    persistence, fno = _specs()
    for i, t in enumerate(_cycles(8)):
        write_table(store, _scores("persistence", t, 1.0), scores_relpath(persistence, settings, t))
        version, factor = ("v1", 0.8) if i < 6 else ("v2", 0.5)
        write_table(
            store, _scores("fno", t, factor), scores_relpath(fno, settings, t, model_config=version)
        )


@pytest.fixture
def versioned(settings, monkeypatch):
    """Storage with two artifact versions of ``fno``; the registry "runs" v2 now."""
    store = Storage(settings.storage_root)
    _write_history(settings, store)
    monkeypatch.setattr(
        scorecard_module, "resolve_model_config", lambda spec, _settings: CURRENT[spec.name]
    )
    return settings, store


def _materialize(settings, run_config: dict | None = None):
    pdef = analysis_time_partitions(settings.partitions_start, settings.partitions_cron)
    asset = scorecard_asset(
        _specs(), settings=settings, partitions_def=pdef, baseline="persistence"
    )
    result = dg.materialize(
        [asset],
        resources={"storage": StorageResource(root=settings.storage_root)},
        run_config=run_config or {},
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert result.success
    (mat,) = result.asset_materializations_for_node("scorecard")
    assert mat.asset_key == SCORECARD_KEY
    return mat.metadata


def test_scores_versions_lists_every_artifact_version(versioned):
    settings, store = versioned
    persistence, fno = _specs()
    assert scores_versions(store, fno, settings, FIRST) == ["v1"]
    assert scores_versions(store, fno, settings, _cycles(8)[-1]) == ["v2"]
    assert scores_versions(store, persistence, settings, FIRST) == ["default"]
    assert scores_versions(store, fno, settings, FIRST - timedelta(hours=6)) == []
    # A cycle scored by both artifacts (re-run after the retrain): both are listed.
    write_table(
        store, _scores("fno", FIRST, 0.5), scores_relpath(fno, settings, FIRST, model_config="v2")
    )
    assert scores_versions(store, fno, settings, FIRST) == ["v1", "v2"]


def test_recent_scores_reads_every_version(versioned):
    settings, store = versioned
    times = _cycles(12)  # four later cycles without scores yet (verification lags)
    period = recent_scores(store, settings, _specs(), times, period_days=7.0)
    assert period.cycles == _cycles(8)  # ends at the latest cycle with scores
    table = period.table
    assert set(zip(table["model"], table["artifact_version"], strict=True)) == {
        ("persistence", "default"),
        ("fno", "v1"),
        ("fno", "v2"),
    }
    short = recent_scores(store, settings, _specs(), times, period_days=0.5)
    assert short.cycles == _cycles(8)[-2:]  # (end - 12 h, end]
    assert set(short.table["artifact_version"]) == {"default", "v2"}


def test_card_keeps_both_versions_labelled_and_marks_the_current(versioned):
    settings, store = versioned
    period = recent_scores(store, settings, _specs(), _cycles(8), period_days=7.0)
    card = scorecard_table(period.table, baseline="persistence", current=CURRENT)
    assert list(card.columns) == list(CARD_COLUMNS)
    card_schema().validate(card)
    by_version = {v: sub for v, sub in card.groupby("artifact_version")}
    assert set(by_version) == {"v1", "v2"}
    assert by_version["v2"]["current"].all() and not by_version["v1"]["current"].any()
    np.testing.assert_allclose(by_version["v1"]["pct_diff"], -20.0)
    np.testing.assert_allclose(by_version["v2"]["pct_diff"], -50.0)
    assert (by_version["v1"]["cycles"] == 6).all() and (by_version["v2"]["cycles"] == 2).all()
    assert (by_version["v2"]["first_cycle"] == pd.Timestamp("2026-01-04T12:00")).all()
    assert list(card["artifact_version"].drop_duplicates()) == ["v2", "v1"]  # current first
    assert set(card["units"]) == {"m2 s-2", "K"}
    md = scorecard_markdown(card)
    assert "**fno** vs **persistence**, artifact v2 (current)" in md
    assert "**fno** vs **persistence**, artifact v1 (superseded)" in md
    assert "6 cycle(s) 2026-01-03T0000Z .. 2026-01-04T0600Z" in md
    assert versions_summary(card) == "fno: v2 (current), v1"
    assert len(paired_cycles(period.table, current=CURRENT)) == 8


def test_scorecard_after_a_retrain_through_dagster(versioned):
    settings, store = versioned
    meta = _materialize(settings)
    assert meta["no_data"].value is False
    assert meta["cycles"].value == 8  # the cycles actually used
    assert meta["period"].value == "2026-01-03T0000Z .. 2026-01-04T1800Z"
    assert meta["artifact_versions"].value == "fno: v2 (current), v1"
    assert meta["dagster/row_count"].value == 2 * len(FEATURES) * len(LEADS)
    assert "fno@v1" in meta["model_set"].value and "fno@v2" in meta["model_set"].value
    card = pd.read_parquet(meta["path"].value)
    assert set(card["artifact_version"]) == {"v1", "v2"}
    assert "data:image/png;base64," in meta["trend"].value
    with open(meta["trend_path"].value, "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    schema = meta["dagster/column_schema"].value
    assert [c.name for c in schema.columns] == list(CARD_COLUMNS)
    assert all(c.description for c in schema.columns)
    # The path names the period's first and last cycle and the model set.
    parsed = paths.parse_path(meta["path"].value.removesuffix(".parquet") + ".zarr")
    assert parsed["analysis_time"] == datetime(2026, 1, 4, 18, tzinfo=UTC)
    assert parsed["data_kind"].startswith("scorecard_2026-01-03T0000Z_")


def test_empty_period_is_no_data_and_leaves_other_periods_untouched(versioned):
    settings, store = versioned
    good = _materialize(settings)
    files = [good["png_path"].value, good["path"].value, good["trend_path"].value]
    before = [open(f, "rb").read() for f in files]
    # A period before any scored cycle: nothing to pair.
    empty = _materialize(
        settings,
        {"ops": {"scorecard": {"config": {"end": "2026-01-02T1800Z", "period_days": 1.0}}}},
    )
    assert empty["no_data"].value is True
    assert empty["dagster/row_count"].value == 0 and empty["cycles"].value == 0
    assert empty["period"].value == "2026-01-02T0000Z .. 2026-01-02T1800Z"
    assert "no verification scores" in empty["reason"].value
    assert "no data for cycles 2026-01-02T0000Z .. 2026-01-02T1800Z" in empty["table"].value
    assert empty["png_path"].value not in files and empty["path"].value not in files
    assert [open(f, "rb").read() for f in files] == before
    assert pd.read_parquet(empty["path"].value).empty


def test_only_the_baseline_scored_is_no_data(settings, monkeypatch):
    store = Storage(settings.storage_root)
    persistence, _ = _specs()
    for t in _cycles(2):
        write_table(store, _scores("persistence", t, 1.0), scores_relpath(persistence, settings, t))
    monkeypatch.setattr(
        scorecard_module, "resolve_model_config", lambda spec, _settings: CURRENT[spec.name]
    )
    meta = _materialize(settings)
    assert meta["no_data"].value is True and meta["dagster/row_count"].value == 0
    assert "no model other than the baseline 'persistence'" in meta["reason"].value
    # The requested period: 7 days up to the latest scored cycle, from the partitions' start.
    assert meta["period"].value == "2026-01-01T0000Z .. 2026-01-03T0600Z"


def test_build_scorecard_without_scores():
    period = PeriodScores(_cycles(3), None)
    result = build_scorecard(period, baseline="persistence", metric="rmse", current=CURRENT)
    assert result.card.empty and result.cycles == 0 and result.trend is None
    assert result.png[:8] == b"\x89PNG\r\n\x1a\n"
    assert result.requested == "2026-01-03T0000Z .. 2026-01-03T1200Z"


def test_scorecard_relpath_one_path_per_period_and_model_set(settings):
    a = scorecard_relpath(settings, "persistence", T0, T0 + timedelta(days=7), "abcd1234", ".png")
    assert a.startswith("scorecard/vs-persistence/")
    assert a.endswith("/2026-01-08T0000Z/member0/scorecard_2026-01-01T0000Z_abcd1234.png")
    others = {
        scorecard_relpath(
            settings,
            "persistence",
            T0 + timedelta(hours=6),
            T0 + timedelta(days=7),
            "abcd1234",
            ".png",
        ),
        scorecard_relpath(settings, "persistence", T0, T0 + timedelta(days=6), "abcd1234", ".png"),
        scorecard_relpath(settings, "persistence", T0, T0 + timedelta(days=7), "ffff0000", ".png"),
    }
    assert a not in others and len(others) == 3


def test_a_baseline_scored_twice_is_paired_once_with_its_current_version():
    t = FIRST
    table = pd.concat(
        [
            _scores("persistence", t, 1.0).assign(artifact_version="new"),
            _scores("persistence", t, 2.0).assign(artifact_version="old"),
            _scores("fno", t, 0.5).assign(artifact_version="v2"),
        ],
        ignore_index=True,
    )
    card = scorecard_table(table, current={"persistence": "new", "fno": "v2"})
    np.testing.assert_allclose(card["pct_diff"], -50.0)
    assert set(card["baseline_version"]) == {"new"} and (card["cycles"] == 1).all()
