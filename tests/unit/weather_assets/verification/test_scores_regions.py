"""Scores per region (global, tropics, extratropics, boxes) and the limited-area boundary zone."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from tests.unit.weather_assets.verification.test_scores import (
    LEADS,
    T0,
    analyses,
    as_forecast,
)
from weather_assets.settings import load_settings
from weather_assets.simulator import Grid
from weather_assets.verification.assets import verification_regions
from weather_assets.verification.regions import DEFAULT_REGIONS, bbox
from weather_assets.verification.schemas import validate_scores
from weather_assets.verification.scorecard import (
    scorecard_markdown,
    scorecard_regions_markdown,
    scorecard_table,
)
from weather_assets.verification.scores import (
    aggregate_scores,
    global_rows,
    is_limited_area,
    verify_forecast,
    with_region,
)

GLOBE = Grid(step=10.0)
LAM = Grid(30.0, 70.0, -10.0, 30.0, 2.0)  # 21 x 21 points over Europe


def _rows(table, region, metric="rmse", variable="2m_temperature"):
    return table[
        (table["region"] == region) & (table["metric"] == metric) & (table["variable"] == variable)
    ]


def _forecast_with_error(truth, where, error=1.0):
    """The truth as a forecast, off by ``error`` K in 2m_temperature where ``where`` holds."""
    fc = as_forecast(truth, T0, LEADS)
    t2m = fc["2m_temperature"]
    fc["2m_temperature"] = t2m + where(t2m).astype(np.float64) * error
    return fc


@pytest.fixture(scope="module")
def truth():
    return analyses(T0 + LEADS, GLOBE)


def test_every_region_is_scored_with_its_own_points(truth):
    fc = _forecast_with_error(truth, lambda da: abs(da["latitude"]) <= 20)
    result = verify_forecast(fc, truth, model="m", regions=DEFAULT_REGIONS)
    table = validate_scores(result.table)
    assert list(dict.fromkeys(table["region"])) == list(DEFAULT_REGIONS)  # global first
    lat = truth["latitude"].values
    n_lon = truth.sizes["longitude"]
    expected_n = {
        "global": lat.size * n_lon,
        "tropics": int((abs(lat) <= 20).sum()) * n_lon,
        "northern_extratropics": int((lat >= 20).sum()) * n_lon,
        "southern_extratropics": int((lat <= -20).sum()) * n_lon,
    }
    for region, n in expected_n.items():
        assert (_rows(table, region)["n"] == n).all(), region
    # The error is in the tropics only: exactly 1 K there, none poleward of 20 degrees
    # (the 20-degree rows belong to both bands and carry it).
    np.testing.assert_allclose(_rows(table, "tropics")["value"], 1.0, rtol=1e-5)
    north = _rows(table, "northern_extratropics")["value"].to_numpy()
    assert (north > 0).all() and (north < 1.0).all()
    glob = _rows(table, "global")["value"].to_numpy()
    assert (glob > 0).all() and (glob < 1.0).all()
    # The global rows are what a global-only verification gives.
    only_global = verify_forecast(fc, truth, model="m").table
    pd.testing.assert_frame_equal(global_rows(table).reset_index(drop=True), only_global)


def test_nan_outside_a_region_does_not_reach_it(truth):
    fc = as_forecast(truth, T0, LEADS).copy(deep=True)
    fc["2m_temperature"] = fc["2m_temperature"].where(fc["latitude"] < 60)  # NaN in the north
    table = verify_forecast(fc, truth, model="m", regions=DEFAULT_REGIONS).table
    assert _rows(table, "global")["value"].isna().all()
    assert _rows(table, "northern_extratropics")["value"].isna().all()
    for region in ("tropics", "southern_extratropics"):
        np.testing.assert_allclose(_rows(table, region)["value"], 0.0, atol=1e-6)


def test_a_bounding_box_region(truth):
    box = bbox("europe", -10, 35, 30, 70)  # crosses 0 on a 0..360 grid
    fc = _forecast_with_error(
        truth,
        lambda da: (
            (da["latitude"] >= 35)
            & (da["latitude"] <= 70)
            & ((da["longitude"] >= 350) | (da["longitude"] <= 30))
        ),
        error=2.0,
    )
    table = verify_forecast(fc, truth, model="m", regions=[box]).table
    assert list(dict.fromkeys(table["region"])) == ["global", "europe"]
    np.testing.assert_allclose(_rows(table, "europe")["value"], 2.0, rtol=1e-5)
    assert (_rows(table, "europe")["n"] == 4 * 6).all()  # 35..65 by 10, 350..30 by 10


def test_regions_without_points_are_left_out_with_a_note():
    truth = analyses(T0 + LEADS, LAM)
    fc = as_forecast(truth, T0, LEADS)
    result = verify_forecast(fc, truth, model="m", regions=DEFAULT_REGIONS)
    assert set(result.table["region"]) == {"global", "northern_extratropics"}
    assert any("tropics not scored" in note for note in result.notes)
    assert any("southern_extratropics not scored" in note for note in result.notes)


def test_lam_boundary_zone_is_not_scored():
    truth = analyses(T0 + LEADS, LAM)
    assert is_limited_area(truth) and not is_limited_area(analyses([T0], GLOBE))
    ny, nx = truth.sizes["latitude"], truth.sizes["longitude"]

    def edge(da, width=3):
        iy = xr_index(da, "latitude")
        ix = xr_index(da, "longitude")
        return (iy < width) | (iy >= ny - width) | (ix < width) | (ix >= nx - width)

    fc = _forecast_with_error(truth, edge, error=5.0)  # errors in the boundary zone only
    result = verify_forecast(fc, truth, model="m", boundary_points=3)
    table = result.table
    assert (_rows(table, "global")["n"] == (ny - 6) * (nx - 6)).all()
    np.testing.assert_allclose(_rows(table, "global")["value"], 0.0, atol=1e-6)
    assert any("3 grid points at each edge" in note for note in result.notes)
    # Without the boundary zone excluded the errors are in the score.
    plain = verify_forecast(fc, truth, model="m").table
    assert (_rows(plain, "global")["value"] > 1.0).all()
    with pytest.raises(ValueError, match="no interior"):
        verify_forecast(fc, truth, model="m", boundary_points=11)


def xr_index(da, dim):
    return xr.DataArray(np.arange(da.sizes[dim]), dims=dim, coords={dim: da[dim]})


def test_configured_boxes_join_the_named_regions(tmp_path):
    settings = load_settings(
        {"WXPLAT_HOME": str(tmp_path), "WXPLAT_VERIFICATION_REGIONS": "europe=-10,35,30,70"}
    )
    regions = verification_regions(settings)
    assert regions[:4] == list(DEFAULT_REGIONS)
    assert regions[4] == bbox("europe", -10, 35, 30, 70)
    with pytest.raises(ValueError, match="WXPLAT_VERIFICATION_REGIONS"):
        load_settings({"WXPLAT_HOME": str(tmp_path), "WXPLAT_VERIFICATION_REGIONS": "eu=1,2"})
    with pytest.raises(ValueError, match="WXPLAT_VERIFICATION_BOUNDARY_POINTS"):
        load_settings({"WXPLAT_HOME": str(tmp_path), "WXPLAT_VERIFICATION_BOUNDARY_POINTS": "-1"})


def test_tables_from_before_regions_read_as_global(truth):
    fc = as_forecast(truth, T0, LEADS)
    table = verify_forecast(fc, truth, model="m").table
    old = table.drop(columns="region")
    assert (with_region(old)["region"] == "global").all()
    assert list(with_region(old).columns) == list(table.columns)
    pd.testing.assert_frame_equal(aggregate_scores(old), aggregate_scores(table))
    assert len(global_rows(old)) == len(old)


def _cycle_rows(model, region, value, cycles=6):
    rows = []
    for c in range(cycles):
        for lead in (24, 48):
            rows.append(
                {
                    "model": model,
                    "analysis_time": T0 + pd.Timedelta(hours=12 * c),
                    "region": region,
                    "lead_time": pd.Timedelta(hours=lead),
                    "variable": "2m_temperature",
                    "level": -1,
                    "metric": "rmse",
                    "value": value * (1 + 0.05 * np.sin(c)),
                    "n": 100,
                }
            )
    return rows


def test_scorecard_has_significance_per_region():
    rows = []
    for region, better in (("global", 0.8), ("tropics", 0.5), ("northern_extratropics", 1.0)):
        rows += _cycle_rows("persistence", region, 2.0)
        rows += _cycle_rows("fno", region, 2.0 * better)
    card = scorecard_table(pd.DataFrame(rows), baseline="persistence")
    assert list(dict.fromkeys(card["region"])) == ["global", "tropics", "northern_extratropics"]
    by_region = card.groupby("region")
    np.testing.assert_allclose(by_region.get_group("tropics")["pct_diff"], -50.0, atol=1e-6)
    assert by_region.get_group("tropics")["significant"].all()
    assert not by_region.get_group("northern_extratropics")["significant"].any()
    assert (card["ci_low"] <= card["pct_diff"] + 1e-6).all()
    # The headline markdown is global; the regions have their own table.
    headline = scorecard_markdown(card)
    assert "-20.0%*" in headline and "-50.0%" not in headline
    regions_md = scorecard_regions_markdown(card)
    assert "| tropics | 2m_temperature | -50.0%* | -50.0%* |" in regions_md
    assert "| northern_extratropics | 2m_temperature | +0.0% | +0.0% |" in regions_md
