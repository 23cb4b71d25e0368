"""Several cycles through the network at once: each keeps its own forcing times.

The batch of a reforecast backfill holds cycles of different hours. A runner that gave every
cycle of a batch the first cycle's valid time corrupted 2 m temperature by up to 20 K: the
network sees the sun of another hour. Here a batch of 00Z, 06Z, 12Z and 18Z cycles must give
each cycle exactly what that cycle gives alone.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

from model_registry.architectures import new_model
from model_registry.spec import ModelSpec
from resources.forecast_batch import run_forecasts
from resources.forecast_run import run_forecast
from resources.storage import open_zarr_url
from weather_assets.canonical import features_of
from weather_assets.forecast.normalize import (
    compute_stats,
    forcing_fields,
    identity_stats,
    stack_features,
    standardize,
)
from weather_assets.forecast.rollout import rollout, rollout_cycles
from weather_assets.simulator import Grid, simulate_state

GRID = Grid(-90.0, 90.0, 0.0, 340.0, 20.0)  # 10 x 18
SIX = timedelta(hours=6)
FORCINGS = ["cos_local_hour", "sin_local_hour"]
GRID_KW = {"latitude": GRID.latitude, "longitude": GRID.longitude}
HOURS = ("2026-01-01T00:00", "2026-01-01T06:00", "2026-01-01T12:00", "2026-01-01T18:00")


@pytest.fixture(scope="module")
def setup():
    hist = xr.concat([simulate_state(t, GRID) for t in HOURS], "time")
    features = features_of(hist)
    states = stack_features(hist, features)
    stats = compute_stats(states)
    return {
        "features": features,
        "states": states,
        "stats": stats,
        "x0": standardize(states, stats),
    }


class SunDriven(torch.nn.Module):
    """Elementwise: every feature's tendency is 2 cos(hour) - sin(hour) of its own point.

    No sums across the batch or the grid, so batched and single runs are equal bit for bit,
    and a cycle stepped with another cycle's hour gets another tendency everywhere.
    """

    def __init__(self, features: int) -> None:
        super().__init__()
        self.features = features

    def forward(self, x):
        cos, sin = x[:, self.features : self.features + 1], x[:, self.features + 1 :]
        return (2.0 * cos - sin).expand(-1, self.features, -1, -1)


def tiny_fno(n: int) -> torch.nn.Module:
    torch.manual_seed(1)
    return new_model("fno", {"n_modes": [4, 8], "hidden_channels": 4, "n_layers": 1}, n + 2, n)


def alone(x0, model, stats, steps, features, analysis_time, **kw):
    return list(
        rollout(
            x0,
            model,
            stats,
            steps,
            features=features,
            timestep=SIX,
            forcings=FORCINGS,
            analysis_time=analysis_time,
            device="cpu",
            **GRID_KW,
            **kw,
        )
    )


def together(x0s, model, stats, steps, features, **kw):
    return list(
        rollout_cycles(
            x0s,
            model,
            stats,
            steps,
            features=features,
            timestep=SIX,
            forcings=FORCINGS,
            analysis_times=list(HOURS),
            device="cpu",
            **GRID_KW,
            **kw,
        )
    )


def test_each_cycle_of_a_batch_keeps_its_own_hour(setup):
    """00Z, 06Z, 12Z and 18Z in one batch: each equals its own run, byte for byte."""
    f, stats, x0 = setup["features"], setup["stats"], setup["x0"].values
    model = SunDriven(len(f))
    batched = together(x0, model, stats, 4, f)
    assert [s.states.shape for s in batched] == [(4, 1, len(f), 10, 18)] * 4
    for c, hour in enumerate(HOURS):
        single = alone(x0[c], model, stats, 4, f, hour)
        for b, s in zip(batched, single, strict=True):
            assert b.lead_time == s.lead_time
            assert b.cycle(c).state.tobytes() == s.state.tobytes()
    # The test has teeth: each cycle's tendency follows its own sun, so stepping the 12Z
    # cycle with the 00Z cycle's hour (the runner bug) would be far off.
    wrong = alone(x0[2], model, stats, 4, f, HOURS[0])
    t2m = f.index("2m_temperature")
    dstd = float(stats["state__train__diff_std"].sel(state_feature="2m_temperature"))
    # (over the leads: after a whole day of steps both have seen every hour once)
    error = max(
        np.abs(w.state[0, t2m] - b.cycle(2).state[0, t2m]).max()
        for w, b in zip(wrong, batched, strict=True)
    )
    assert error > 2 * dstd


def test_forcings_of_each_cycle_at_its_own_valid_times(setup):
    f = setup["features"]
    seen = []

    class Recording(torch.nn.Module):
        def forward(self, x):
            seen.append(x.detach().clone())
            return torch.zeros_like(x[:, : len(f)])

    x0 = np.zeros((4, len(f), 10, 18), np.float32)
    together(x0, Recording(), identity_stats(f), 3, f, members=2)
    assert [x.shape for x in seen] == [(8, len(f) + 2, 10, 18)] * 3  # cycle-major, then member
    for k, x in enumerate(seen):
        for c, hour in enumerate(HOURS):
            expected = forcing_fields(FORCINGS, pd.Timestamp(hour) + k * SIX, **GRID_KW)
            for member in range(2):
                np.testing.assert_array_equal(x[2 * c + member, len(f) :].numpy(), expected)


def test_fno_batch_equals_single_runs_to_float_rounding(setup):
    """A real network: batched kernels (FFT, BLAS) sum in another order than single calls.

    So a cycle of the batch differs from its run alone by float32 rounding (about 1e-7
    relative per step), which grows a little over the steps; nothing near a forcing error.
    """
    f, stats, x0 = setup["features"], setup["stats"], setup["x0"].values
    model = tiny_fno(len(f)).eval()
    batched = together(x0, model, stats, 4, f, members=2)
    for c, hour in enumerate(HOURS):
        single = alone(x0[c], model, stats, 4, f, hour, members=2)
        for b, s in zip(batched, single, strict=True):
            np.testing.assert_allclose(b.cycle(c).state, s.state, rtol=1e-5, atol=1e-4)


def test_batch_needs_one_time_per_cycle_and_finite_states(setup):
    f, stats = setup["features"], setup["stats"]
    x0 = np.zeros((4, len(f), 10, 18), np.float32)
    model = SunDriven(len(f))
    with pytest.raises(ValueError, match="3 analysis times for 4 initial states"):
        next(
            rollout_cycles(x0, model, stats, 1, features=f, timestep=SIX, analysis_times=HOURS[:3])
        )
    with pytest.raises(ValueError, match="needs analysis_times, latitude and longitude"):
        next(rollout_cycles(x0, model, stats, 1, features=f, timestep=SIX, forcings=FORCINGS))
    with pytest.raises(ValueError, match=r"must be \(cycle, 8, lat, lon\)"):
        next(rollout_cycles(x0[0], model, stats, 1, features=f, timestep=SIX))
    bad = x0.copy()
    bad[2, 0, 3, 3] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        next(rollout_cycles(bad, model, stats, 1, features=f, timestep=SIX))


def test_run_forecasts_writes_each_cycle_as_run_forecast_does(setup, tmp_path):
    """The batched writer's stores are the single writer's stores, byte for byte."""
    f, stats = setup["features"], setup["stats"]
    model = SunDriven(len(f))
    normalized = [setup["x0"].isel(time=[c]) for c in range(4)]
    batch_stores = [[str(tmp_path / f"batch{c}.zarr")] for c in range(4)]
    attrs = [{"cycle": c} for c in range(4)]
    kw = dict(steps=3, timestep=SIX, device="cpu", forcings=FORCINGS)
    summaries = run_forecasts(normalized, model, stats, stores=batch_stores, attrs=attrs, **kw)
    assert [s.steps for s in summaries] == [3] * 4
    assert all(s.nbytes > 0 and len(s.step_seconds) == 3 for s in summaries)
    for c in range(4):
        store = str(tmp_path / f"single{c}.zarr")
        run_forecast(normalized[c], model, stats, stores=[store], attrs=attrs[c], **kw)
        got = open_zarr_url(batch_stores[c][0]).load()
        want = open_zarr_url(store).load()
        xr.testing.assert_identical(got, want)
        assert got["time"].values[0] == np.datetime64(HOURS[c], "ns")


def test_run_forecasts_checks_every_cycle_before_compute(setup, tmp_path):
    stats = setup["stats"]

    class Exploding(torch.nn.Module):
        def forward(self, x):
            raise AssertionError("no compute when a cycle's input is bad")

    normalized = [setup["x0"].isel(time=[c]) for c in range(2)]
    bad = normalized[1].copy()
    bad.values[0, 0, 0, 0] = np.inf
    stores = [[str(tmp_path / f"{c}.zarr")] for c in range(2)]
    with pytest.raises(ValueError, match="NaN or infinite"):
        run_forecasts(
            [normalized[0], bad], Exploding(), stats, steps=1, timestep=SIX, stores=stores
        )
    other = normalized[1].isel(latitude=slice(1, None))
    with pytest.raises(ValueError, match="grid differs from the first cycle's"):
        run_forecasts(
            [normalized[0], other], Exploding(), stats, steps=1, timestep=SIX, stores=stores
        )
    assert not (tmp_path / "0.zarr").exists()


@pytest.mark.parametrize(
    ("runtime", "ok"),
    [
        ({}, True),
        ({"backfill_partitions": 4, "batch_cycles": 4}, True),
        ({"backfill_partitions": 0}, False),
        ({"batch_cycles": 0}, False),
    ],
)
def test_runtime_backfill_fields(runtime, ok):
    entry = {
        "name": "m",
        "architecture": "persistence",
        "input_variables": [{"name": "2m_temperature"}],
        "output_variables": [{"name": "2m_temperature"}],
        "timestep": "6h",
        "max_lead_time": "24h",
        "runtime": runtime,
    }
    if ok:
        spec = ModelSpec.model_validate(entry)
        assert spec.runtime.backfill_partitions == runtime.get("backfill_partitions", 16)
        assert spec.runtime.batch_cycles == runtime.get("batch_cycles", 1)
    else:
        with pytest.raises(ValueError, match="greater than or equal to 1"):
            ModelSpec.model_validate(entry)
