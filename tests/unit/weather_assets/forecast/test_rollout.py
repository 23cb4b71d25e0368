"""Rollout maths, ensembles, determinism, input checks, the forecast layout and its output."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr

from model_registry.architectures import new_model
from model_registry.artifact import GridSummary
from model_registry.networks import Persistence
from resources.forecast_run import run_forecast
from resources.forecast_writer import ZarrForecastOutput, forecast_output
from resources.storage import open_zarr_url, to_zarr
from weather_assets.canonical import features_of
from weather_assets.forecast.dataset import (
    ForecastLayout,
    forecast_encoding,
    steps_to_dataset,
)
from weather_assets.forecast.normalize import (
    compute_stats,
    forcing_fields,
    identity_stats,
    stack_features,
    standardize,
)
from weather_assets.forecast.rollout import check_grid, rollout
from weather_assets.simulator import Grid, simulate_state

GRID = Grid(-90.0, 90.0, 0.0, 340.0, 20.0)  # 10 x 18
SIX = timedelta(hours=6)


@pytest.fixture(scope="module")
def setup():
    hist = xr.concat([simulate_state(f"2026-01-01T{h:02d}", GRID) for h in (0, 6, 12)], "time")
    features = features_of(hist)
    states = stack_features(hist, features)
    stats = compute_stats(states)
    return {"features": features, "states": states, "stats": stats, "hist": hist}


class Constant(torch.nn.Module):
    """Predicts the same standardized tendency everywhere."""

    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = value

    def forward(self, x):
        return torch.full_like(x, self.value)


def tiny_fno(n: int, n_forcings: int = 0) -> torch.nn.Module:
    torch.manual_seed(1)
    hp = {"n_modes": [4, 8], "hidden_channels": 4, "n_layers": 1}
    return new_model("fno", hp, n + n_forcings, n).eval()


FORCINGS = ["cos_local_hour", "sin_local_hour"]
GRID_KW = {"latitude": GRID.latitude, "longitude": GRID.longitude}


def test_persistence_repeats_initial_state(setup):
    f = setup["features"]
    x0 = setup["states"].isel(time=0).values
    steps = list(rollout(x0, Persistence(), identity_stats(f), 3, features=f, timestep=SIX))
    assert [s.lead_time for s in steps] == [SIX, 2 * SIX, 3 * SIX]
    for s in steps:
        assert s.state.shape == (1, *x0.shape) and s.state.dtype == np.float32
        np.testing.assert_array_equal(s.state[0], x0)


def test_residual_maths(setup):
    # x[t+1] = x[t] + diff_mean + diff_std * model(s): a constant output c adds k*(dm + ds*c).
    f, stats = setup["features"], setup["stats"]
    x0 = setup["states"].isel(time=[0])
    s0 = standardize(x0, stats).values[0]
    steps = list(rollout(s0, Constant(0.5), stats, 2, features=f, timestep=SIX))
    dm = stats["state__train__diff_mean"].values[:, None, None]
    ds = stats["state__train__diff_std"].values[:, None, None]
    expected = x0.values[0] + 2 * (dm + ds * 0.5)
    np.testing.assert_allclose(steps[-1].state[0], expected, rtol=1e-5)


def test_rollout_is_lazy(setup):
    f, stats = setup["features"], setup["stats"]
    calls = []

    class Counting(Persistence):
        def forward(self, x):
            calls.append(1)
            return super().forward(x)

    gen = rollout(
        np.zeros((len(f), 10, 18), np.float32), Counting(), stats, 50, features=f, timestep=SIX
    )
    next(gen)
    assert len(calls) == 1  # one lead time computed per item pulled


def test_suspended_rollout_does_not_leak_inference_mode(setup):
    f, stats = setup["features"], setup["stats"]
    x0 = np.zeros((len(f), 10, 18), np.float32)
    gen = rollout(x0, tiny_fno(len(f)), stats, 3, features=f, timestep=SIX)
    next(gen)  # suspended between lead times, as while the writer stores a step
    assert not torch.is_inference_mode_enabled() and torch.is_grad_enabled()
    del gen  # abandoned: nothing to restore either
    assert not torch.is_inference_mode_enabled() and torch.is_grad_enabled()


def test_deterministic_on_cpu(setup):
    f, stats = setup["features"], setup["stats"]
    s0 = standardize(setup["states"].isel(time=[0]), stats).values
    runs = [
        [
            s.state.tobytes()
            for s in rollout(
                s0, tiny_fno(len(f)), stats, 3, features=f, timestep=SIX, members=2, device="cpu"
            )
        ]
        for _ in range(2)
    ]
    assert runs[0] == runs[1]


def test_ensemble_control_and_perturbations(setup):
    f, stats = setup["features"], setup["stats"]
    s0 = standardize(setup["states"].isel(time=[0]), stats).values
    model = tiny_fno(len(f))
    # On the CPU: the tolerances below are CPU rounding (test_cuda_matches_cpu covers CUDA).
    kw = dict(features=f, timestep=SIX, device="cpu")
    control = list(rollout(s0, model, stats, 2, **kw))[-1].state
    ens = list(rollout(s0, model, stats, 2, members=3, seed=7, **kw))[-1].state
    assert ens.shape[0] == 3
    # Batched and single-member convolutions round differently in the last bits only.
    np.testing.assert_allclose(ens[0], control[0], rtol=1e-5, atol=1e-4)
    assert not np.allclose(ens[1], ens[0]) and not np.allclose(ens[2], ens[1])
    again = list(rollout(s0, model, stats, 2, members=3, seed=7, **kw))
    np.testing.assert_array_equal(again[-1].state, ens)
    other = list(rollout(s0, model, stats, 2, members=3, seed=8, **kw))
    assert not np.array_equal(other[-1].state[1], ens[1])


def test_nan_input_fails_before_compute(setup):
    f, stats = setup["features"], setup["stats"]
    x0 = np.zeros((len(f), 10, 18), np.float32)
    x0[3, 2, 2] = np.nan

    class Exploding(torch.nn.Module):
        def forward(self, x):
            raise AssertionError("model must not run on NaN input")

    with pytest.raises(ValueError, match="NaN .*mean_sea_level_pressure"):
        next(rollout(x0, Exploding(), stats, 2, features=f, timestep=SIX))


def test_grid_mismatch_names_both_grids(setup):
    grid = GridSummary.from_coords(np.arange(-90, 91, 10.0), np.arange(0, 360, 10.0))
    lat, lon = setup["states"]["latitude"].values, setup["states"]["longitude"].values
    with pytest.raises(ValueError) as err:
        check_grid(lat, lon, grid)
    assert "input grid 10x18" in str(err.value) and "artifact grid 19x36" in str(err.value)
    check_grid(lat, lon, GridSummary.from_coords(lat, lon))  # same grid: no error


def test_forecast_layout(setup):
    f = setup["features"]
    x0 = setup["states"].isel(time=0).values
    kw = dict(
        analysis_time="2026-01-01T06:00",
        features=f,
        latitude=GRID.latitude,
        longitude=GRID.longitude,
    )
    ds = steps_to_dataset(
        rollout(x0, Persistence(), identity_stats(f), 3, features=f, timestep=SIX), **kw
    )
    assert set(ds.data_vars) == set(setup["hist"].data_vars)
    assert ds["geopotential"].dims == ("time", "lead_time", "level", "latitude", "longitude")
    assert ds["2m_temperature"].dims == ("time", "lead_time", "latitude", "longitude")
    assert ds["lead_time"].dtype.kind == "m" and ds.sizes["time"] == 1
    np.testing.assert_array_equal(
        ds["valid_time"].values[0],
        np.array(["2026-01-01T12", "2026-01-01T18", "2026-01-02T00"], dtype="datetime64[ns]"),
    )
    assert ds["temperature"].attrs["units"] == "K"
    assert ds["time"].attrs["standard_name"] == "forecast_reference_time"
    enc = forecast_encoding(ds)
    assert enc["geopotential"]["chunks"] == (1, 1, 2, 10, 18)
    ens = steps_to_dataset(
        rollout(x0, Persistence(), identity_stats(f), 1, features=f, timestep=SIX, members=2),
        ensemble=True,
        **kw,
    )
    assert ens["temperature"].dims == (
        "time",
        "lead_time",
        "member",
        "level",
        "latitude",
        "longitude",
    )
    assert forecast_encoding(ens)["temperature"]["chunks"] == (1, 1, 1, 2, 10, 18)


def test_write_matches_in_memory_and_is_chunked_per_lead(setup, tmp_path):
    f, stats = setup["features"], setup["stats"]
    normalized = standardize(setup["states"].isel(time=[1]), stats)
    store = tmp_path / "fc.zarr"
    summary = run_forecast(
        normalized,
        tiny_fno(len(f)),
        stats,
        steps=3,
        timestep=SIX,
        stores=[str(store)],
        attrs={"model": "tiny"},
    )
    assert summary.steps == 3 and len(summary.step_seconds) == 3 and summary.nbytes > 0
    assert (store / ".zmetadata").is_file()  # the platform's "complete" marker
    written = xr.open_zarr(store, consolidated=True)
    assert written.attrs["model"] == "tiny"
    assert written["geopotential"].encoding["chunks"] == (1, 1, 2, 10, 18)
    expected = steps_to_dataset(
        rollout(normalized.values, tiny_fno(len(f)), stats, 3, features=f, timestep=SIX),
        analysis_time=normalized["time"].values[0],
        features=f,
        latitude=normalized["latitude"].values,
        longitude=normalized["longitude"].values,
    )
    for var in expected.data_vars:
        np.testing.assert_array_equal(written[var].values, expected[var].values)
    np.testing.assert_array_equal(written["valid_time"].values, expected["valid_time"].values)


def test_write_one_store_per_member(setup, tmp_path):
    f = setup["features"]
    stores = [str(tmp_path / f"m{k}.zarr") for k in range(2)]
    run_forecast(
        setup["states"].isel(time=[0]),  # identity statistics: standardized = physical
        Persistence(),
        identity_stats(f),
        steps=2,
        timestep=SIX,
        stores=stores,
        members=2,
        perturbation=1.0,
    )
    m0, m1 = (xr.open_zarr(s) for s in stores)
    assert "member" not in m0.dims and m0.sizes["lead_time"] == 2
    np.testing.assert_array_equal(
        m0["2m_temperature"].values[0, 0], setup["hist"]["2m_temperature"].values[0]
    )
    assert not np.array_equal(m1["2m_temperature"].values, m0["2m_temperature"].values)


def test_wrong_shapes(setup):
    f, stats = setup["features"], setup["stats"]
    with pytest.raises(ValueError, match=r"initial state must be \(1, 8, lat, lon\)"):
        next(
            rollout(
                np.zeros((3, 10, 18), np.float32), Persistence(), stats, 1, features=f, timestep=SIX
            )
        )
    with pytest.raises(ValueError, match="model output"):
        next(
            rollout(
                np.zeros((8, 10, 18), np.float32),
                Persistence(out_channels=2),
                stats,
                1,
                features=f,
                timestep=SIX,
            )
        )


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu(setup):
    f, stats = setup["features"], setup["stats"]
    s0 = standardize(setup["states"].isel(time=[0]), stats).values
    cpu = list(rollout(s0, tiny_fno(len(f)), stats, 2, features=f, timestep=SIX, device="cpu"))
    gpu = list(rollout(s0, tiny_fno(len(f)), stats, 2, features=f, timestep=SIX, device="cuda"))
    np.testing.assert_allclose(gpu[-1].state, cpu[-1].state, rtol=1e-3, atol=1e-2)


def test_a_caller_done_with_each_state_gets_views_without_copies(setup):
    """``host_ring=1`` on the CPU: each state is the rollout's own tensor (no copy), with
    the bits of the copied states, as long as it is used before the next is drawn."""
    f, stats = setup["features"], setup["stats"]
    s0 = standardize(setup["states"].isel(time=[0]), stats).values
    kw = {"features": f, "timestep": SIX, "members": 2, "seed": 3}
    plain = [st.state for st in rollout(s0, tiny_fno(len(f)), stats, 5, **kw)]
    seen = []
    for st in rollout(s0, tiny_fno(len(f)), stats, 5, host_ring=1, **kw):
        assert not st.state.flags.owndata
        np.testing.assert_array_equal(st.state, plain[st.step - 1])
        seen.append(st.state)
    assert all(np.shares_memory(seen[0], other) for other in seen[1:])  # one state, reused


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("ring", [2, 3])
def test_cuda_states_through_pinned_buffers_are_the_plain_copies(setup, ring):
    """The overlapped copies (side stream, reused page-locked buffers) hand out the very
    bits of the plain copies, and a state stays intact while the caller draws the next
    ``ring - 1`` states (what the forecast writer relies on)."""
    f, stats = setup["features"], setup["stats"]
    s0 = standardize(setup["states"].isel(time=[0]), stats).values
    kw = {"features": f, "timestep": SIX, "device": "cuda", "members": 3, "seed": 5}
    plain = [st.state for st in rollout(s0, tiny_fno(len(f)), stats, 7, **kw)]
    held: list[tuple[int, np.ndarray, np.ndarray]] = []
    for st in rollout(s0, tiny_fno(len(f)), stats, 7, host_ring=ring, **kw):
        assert not st.state.flags.owndata  # a view into a reused buffer
        for k, view, copy in held[-(ring - 1) :]:  # still intact after ring - 1 more draws
            np.testing.assert_array_equal(view, copy, err_msg=f"state {k} overwritten")
        held.append((st.step, st.state, st.state.copy()))
        np.testing.assert_array_equal(st.state, plain[st.step - 1])
    assert [k for k, _, _ in held] == list(range(1, 8))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_overlapped_rollout_hands_out_the_last_good_state_before_a_failure(setup):
    f, stats = setup["features"], setup["stats"]
    s0 = standardize(setup["states"].isel(time=[0]), stats).values

    class FailsThird(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net, self.calls = tiny_fno(len(f)), 0  # a submodule: moved to the device

        def forward(self, x):
            self.calls += 1
            if self.calls == 3:
                raise RuntimeError("device lost")
            return self.net(x)

    kw = {"features": f, "timestep": SIX, "device": "cuda"}
    plain = [st.state for st in rollout(s0, tiny_fno(len(f)), stats, 2, **kw)]
    got = []
    with pytest.raises(RuntimeError, match="device lost"):
        for st in rollout(s0, FailsThird(), stats, 5, host_ring=2, **kw):
            got.append(st.state.copy())
    assert len(got) == 2  # steps 1 and 2 were computed: both handed out before the error
    np.testing.assert_array_equal(got[1], plain[1])


def test_model_failure_mid_rollout_propagates(setup, tmp_path):
    f = setup["features"]

    class FailsSecond(Persistence):
        calls = 0

        def forward(self, x):
            FailsSecond.calls += 1
            if FailsSecond.calls == 2:
                raise RuntimeError("device lost")
            return super().forward(x)

    with pytest.raises(RuntimeError, match="device lost"):
        run_forecast(
            setup["states"].isel(time=[0]),
            FailsSecond(),
            identity_stats(f),
            steps=4,
            timestep=SIX,
            stores=[str(tmp_path / "fc.zarr")],
        )
    assert (tmp_path / "fc.zarr" / "2m_temperature" / "0.0.0.0").is_file()  # lead 1 written
    assert not (tmp_path / "fc.zarr" / ".zmetadata").exists()  # never marked complete


def test_writer_failure_propagates_before_compute(setup, tmp_path):
    f = setup["features"]
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")

    class Exploding(torch.nn.Module):
        def forward(self, x):
            raise AssertionError("model must not run when the store cannot be laid out")

    with pytest.raises(OSError):
        run_forecast(
            setup["states"].isel(time=[0]),
            Exploding(),
            identity_stats(f),
            steps=6,
            timestep=SIX,
            stores=[str(blocker / "fc.zarr")],
        )


def test_forcings_are_recomputed_at_each_steps_valid_time(setup):
    f = setup["features"]
    seen = []

    class Recording(torch.nn.Module):
        def forward(self, x):
            seen.append(x.detach().cpu().clone())  # the rollout may run on CUDA
            return torch.zeros_like(x[:, : len(f)])  # state channels come first

    x0 = np.zeros((len(f), 10, 18), np.float32)
    steps = list(
        rollout(
            x0,
            Recording(),
            identity_stats(f),
            3,
            features=f,
            timestep=SIX,
            members=2,
            forcings=FORCINGS,
            analysis_time="2026-01-01T06:00",
            **GRID_KW,
        )
    )
    assert len(steps) == 3 and [x.shape for x in seen] == [(2, len(f) + 2, 10, 18)] * 3
    for k, x in enumerate(seen):
        # Input of step k+1: the state valid at analysis + k * timestep, and its forcings.
        expected = forcing_fields(FORCINGS, np.datetime64("2026-01-01T06:00") + k * SIX, **GRID_KW)
        for member in range(2):
            np.testing.assert_array_equal(x[member, len(f) :].numpy(), expected)
    assert not np.array_equal(seen[0][0, len(f) :], seen[1][0, len(f) :])


def test_analysis_hour_changes_the_forecast_through_forcings(setup):
    f, stats = setup["features"], setup["stats"]
    s0 = standardize(setup["states"].isel(time=[0]), stats).values
    model = tiny_fno(len(f), len(FORCINGS))

    def last(analysis_time):
        kw = dict(features=f, timestep=SIX, forcings=FORCINGS, device="cpu", **GRID_KW)
        out = list(rollout(s0, model, stats, 2, analysis_time=analysis_time, **kw))
        return out[-1].state

    at_00, at_06 = last("2026-01-01T00:00"), last("2026-01-01T06:00")
    assert not np.allclose(at_00, at_06)  # same initial state, different sun
    assert last("2026-01-01T00:00").tobytes() == at_00.tobytes()  # deterministic
    # A day later the sun is in the same place: the forecast is the same (no day-of-year).
    np.testing.assert_array_equal(last(np.datetime64("2026-01-02T00:00")), at_00)


def test_forcings_need_analysis_time_and_grid(setup):
    f, stats = setup["features"], setup["stats"]
    x0 = np.zeros((len(f), 10, 18), np.float32)
    model = tiny_fno(len(f), 2)
    with pytest.raises(ValueError, match="needs analysis_time, latitude and longitude"):
        next(rollout(x0, model, stats, 1, features=f, timestep=SIX, forcings=FORCINGS))
    with pytest.raises(ValueError, match="do not match the state's grid"):
        next(
            rollout(
                x0,
                model,
                stats,
                1,
                features=f,
                timestep=SIX,
                forcings=FORCINGS,
                analysis_time="2026-01-01",
                latitude=GRID.latitude[:-1],
                longitude=GRID.longitude,
            )
        )
    with pytest.raises(ValueError, match="unknown forcing 'moon'"):
        next(rollout(x0, model, stats, 1, features=f, timestep=SIX, forcings=["moon"]))


def test_run_forecast_with_forcings_uses_the_analysis_time(setup, tmp_path):
    f, stats = setup["features"], setup["stats"]
    normalized = standardize(setup["states"].isel(time=[1]), stats)  # 2026-01-01T06
    model = tiny_fno(len(f), len(FORCINGS))
    store = tmp_path / "fc.zarr"
    run_forecast(
        normalized,
        model,
        stats,
        steps=2,
        timestep=SIX,
        stores=[str(store)],
        members=2,
        forcings=FORCINGS,
        device="cpu",  # compared bit for bit with the rollout below
    )
    written = xr.open_zarr(store, consolidated=True)
    assert written.sizes["member"] == 2 and not written["temperature"].isnull().any()
    expected = steps_to_dataset(
        rollout(
            normalized.values,
            model,
            stats,
            2,
            features=f,
            timestep=SIX,
            members=2,
            forcings=FORCINGS,
            analysis_time="2026-01-01T06:00",
            device="cpu",
            **GRID_KW,
        ),
        analysis_time=normalized["time"].values[0],
        features=f,
        ensemble=True,
        **GRID_KW,
    )
    for var in expected.data_vars:
        np.testing.assert_array_equal(written[var].values, expected[var].values)


# ---------------------------------------------------------------------------------------------
# the zarr forecast output


def _steps_for(setup, features, members):
    states = stack_features(setup["hist"], features)
    stats = compute_stats(states)
    s0 = standardize(states.isel(time=[1]), stats).values
    model = tiny_fno(len(features))
    kw = dict(features=features, timestep=SIX, members=members, device="cpu")
    return list(rollout(s0, model, stats, 3, **kw))


def _metadata(url) -> dict:
    return json.loads((Path(url) / ".zmetadata").read_text())


# A feature order of its own and a level that one variable lacks (read as NaN there).
SHUFFLED = [
    "temperature_850hPa",
    "mean_sea_level_pressure",
    "geopotential_500hPa",
    "2m_temperature",
    "temperature_500hPa",
    "10m_u_component_of_wind",
    "10m_v_component_of_wind",
]


@pytest.mark.parametrize(
    "members, n_stores, shuffled",
    [(1, 1, False), (3, 1, False), (2, 2, False), (2, 1, True)],
    ids=["control", "ensemble-store", "store-per-member", "shuffled-features"],
)
def test_output_store_equals_plain_to_zarr(setup, tmp_path, members, n_stores, shuffled):
    features = SHUFFLED if shuffled else setup["features"]
    steps = _steps_for(setup, features, members)
    layout = ForecastLayout(
        analysis_time="2026-01-01T06:00",
        features=features,
        latitude=GRID.latitude,
        longitude=GRID.longitude,
        lead_times=[s.lead_time for s in steps],
        members=members,
        attrs={"model": "tiny", "version": 3},
    )
    urls = [str(tmp_path / f"out{k}.zarr") for k in range(n_stores)]
    output = ZarrForecastOutput(urls)
    output.open(layout)
    assert output.write_initial_state(steps[0].state) == 0  # lead time 0 is not stored
    for step in reversed(steps):  # any order: each lead time has its own chunks
        output.write_step(step)
    output.close()

    kw = dict(
        analysis_time=layout.analysis_time,
        features=features,
        latitude=GRID.latitude,
        longitude=GRID.longitude,
        attrs=layout.attrs,
    )
    if n_stores == 1:
        expected = [steps_to_dataset(steps, ensemble=members > 1, **kw)]
    else:
        expected = [
            steps_to_dataset([replace(s, state=s.state[k : k + 1]) for s in steps], **kw)
            for k in range(members)
        ]
    for k, (url, ds) in enumerate(zip(urls, expected, strict=True)):
        plain = str(tmp_path / f"plain{k}.zarr")
        to_zarr(ds, plain, encoding=forecast_encoding(ds))  # the whole forecast at once
        written, reference = open_zarr_url(url), open_zarr_url(plain)
        xr.testing.assert_identical(written, reference)
        assert _metadata(url) == _metadata(plain)  # dims, chunks, encodings, attrs, fill values
        for name in reference.variables:
            assert written[name].encoding.get("chunks") == reference[name].encoding.get("chunks")
    if shuffled:
        assert written["temperature"].dims[:3] == ("time", "lead_time", "member")
        assert written["geopotential"].sel(level=850).isnull().all()  # no such feature
        assert not written["temperature"].isnull().any()


def test_output_lifecycle_errors(setup, tmp_path):
    f = setup["features"]
    steps = _steps_for(setup, f, 2)
    layout = ForecastLayout(
        analysis_time="2026-01-01T06:00",
        features=f,
        latitude=GRID.latitude,
        longitude=GRID.longitude,
        lead_times=[SIX, 2 * SIX],
        members=2,
    )
    with pytest.raises(KeyError, match=r"unknown forecast output 'grib2'.*\['zarr'\]"):
        forecast_output("grib2", [str(tmp_path / "x.zarr")])
    output = forecast_output("zarr", [str(tmp_path / "fc.zarr")])
    with pytest.raises(RuntimeError, match="not open"):
        output.write_step(steps[0])
    with pytest.raises(ValueError, match="3 stores for 2 members"):
        ZarrForecastOutput([str(tmp_path / f"m{k}.zarr") for k in range(3)]).open(layout)
    output.open(layout)
    with pytest.raises(ValueError, match="lead time 18:00:00 is not among the planned ones"):
        output.write_step(steps[2])
    with pytest.raises(ValueError, match="does not match the layout"):
        output.write_step(replace(steps[0], state=steps[0].state[:1]))
    output.write_step(steps[0])
    with pytest.raises(ValueError, match=r"lead times \[datetime.timedelta\(seconds=43200\)\]"):
        output.close()
    assert not (tmp_path / "fc.zarr" / ".zmetadata").exists()  # not complete
    output.write_step(steps[1])
    output.close()
    assert (tmp_path / "fc.zarr" / ".zmetadata").is_file()
    with pytest.raises(ValueError, match="at least one lead time"):
        run_forecast(
            setup["states"].isel(time=[0]),
            Persistence(),
            identity_stats(f),
            steps=0,
            timestep=SIX,
            stores=[str(tmp_path / "none.zarr")],
        )
