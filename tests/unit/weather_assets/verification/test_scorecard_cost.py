"""Skill per GPU-hour: the scorecard's improvement over the baseline per device-hour."""

from __future__ import annotations

import math

import dagster as dg
import numpy as np
import pandas as pd

from tests.unit.weather_assets.verification.test_scorecard import BASE, _table
from weather_assets.keys import forecast_key
from weather_assets.verification.scorecard import (
    COST_COLUMNS,
    cost_markdown,
    cost_table,
    scorecard_table,
)
from weather_assets.verification.scorecard_asset import forecast_costs


def _card():
    better = {k: v * 0.8 for k, v in BASE.items()}  # 20 % lower RMSE everywhere
    cheap = {k: v * 0.9 for k, v in BASE.items()}  # 10 % lower
    table = pd.concat(
        [_table("persistence", BASE), _table("fno", better), _table("small", cheap)],
        ignore_index=True,
    )
    return scorecard_table(table, baseline="persistence")


def test_skill_per_gpu_hour_from_the_forecasts_cost():
    costs = pd.DataFrame(
        [
            # fno ran on a GPU: 180 and 540 GPU-seconds, a mean of 0.1 GPU-hour per forecast
            {"model": "fno", "artifact_version": "default", "gpu_seconds": 180.0},
            {"model": "fno", "artifact_version": "default", "gpu_seconds": 540.0},
            # small ran on CPU: 36 CPU-seconds, 0.01 CPU-hour
            {"model": "small", "artifact_version": "default", "cpu_seconds": 36.0},
        ]
    )
    cost = cost_table(_card(), costs).set_index("model")
    assert list(cost.reset_index().columns) == list(COST_COLUMNS)
    assert cost.loc["fno", "hour_unit"] == "GPU-hour" and cost.loc["fno", "forecasts"] == 2
    np.testing.assert_allclose(cost.loc["fno", "device_hours_per_forecast"], 0.1)
    np.testing.assert_allclose(cost.loc["fno", "improvement_pct"], 20.0)
    np.testing.assert_allclose(cost.loc["fno", "skill_per_gpu_hour"], 200.0)
    assert cost.loc["small", "hour_unit"] == "CPU-hour"
    np.testing.assert_allclose(cost.loc["small", "skill_per_gpu_hour"], 10.0 / 0.01)
    text = cost_markdown(cost.reset_index())
    assert "| fno | default | 2 | 0.1 GPU-hour | +20.0 | 200 % per GPU-hour |" in text
    assert "skill_per_gpu_hour:" in text  # the definition goes with the table


def test_without_cost_metadata_the_skill_per_hour_is_nan():
    cost = cost_table(_card(), None)
    assert (cost["hour_unit"] == "none").all() and (cost["forecasts"] == 0).all()
    assert cost["skill_per_gpu_hour"].isna().all()
    assert "n/a" in cost_markdown(cost)


def test_forecast_costs_are_read_from_the_materializations():
    instance = dg.DagsterInstance.ephemeral()
    key = forecast_key("fno")

    class Spec:
        name = "fno"

    for partition, md in (
        ("2026-01-01T0000Z", {"gpu_seconds": 10.0, "artifact_version": "v1"}),
        ("2026-01-01T0600Z", {"cpu_seconds": 4.0, "artifact_version": "v1"}),
        ("2026-01-01T1200Z", {"skipped": True, "artifact_version": "v1"}),  # kept, nothing ran
        ("2026-01-02T0000Z", {"gpu_seconds": 99.0, "artifact_version": "v1"}),  # not asked
    ):
        instance.report_runless_asset_event(
            dg.AssetMaterialization(key, partition=partition, metadata=md)
        )
    keys = ["2026-01-01T0000Z", "2026-01-01T0600Z", "2026-01-01T1200Z"]
    costs = forecast_costs(instance, [Spec()], keys).sort_values("partition")
    assert list(costs["partition"]) == keys[:2]
    assert list(costs["artifact_version"]) == ["v1", "v1"]
    assert costs["gpu_seconds"].iloc[0] == 10.0 and math.isnan(costs["cpu_seconds"].iloc[0])
    assert costs["cpu_seconds"].iloc[1] == 4.0
