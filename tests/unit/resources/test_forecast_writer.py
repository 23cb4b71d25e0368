"""The zarr forecast output: chunks written straight to files are zarr's own bytes, the
progress journal, reading a lead time back bit for bit, and resuming an interrupted rollout
(in process: a model that fails mid-rollout; the SIGKILL test is
``tests/integration/test_forecast_resume.py``)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
import zarr

from model_registry.architectures import new_model
from resources.forecast_run import run_forecast
from resources.forecast_writer import ZarrForecastOutput
from resources.storage import PROGRESS, s3_options
from weather_assets.canonical import features_of
from weather_assets.forecast.dataset import ForecastLayout
from weather_assets.forecast.normalize import (
    compute_stats,
    stack_features,
    standardize,
)
from weather_assets.forecast.rollout import rollout
from weather_assets.simulator import Grid, simulate_state

GRID = Grid(-90.0, 90.0, 0.0, 340.0, 20.0)  # 10 x 18
SIX = timedelta(hours=6)
FORCINGS = ["cos_local_hour", "sin_local_hour"]
STEPS = 6


@pytest.fixture(scope="module")
def setup():
    hist = xr.concat([simulate_state(f"2026-01-01T{h:02d}", GRID) for h in (0, 6, 12)], "time")
    features = features_of(hist)
    states = stack_features(hist, features)
    stats = compute_stats(states)
    normalized = standardize(states.isel(time=[1]), stats)
    return {"features": features, "stats": stats, "normalized": normalized}


def tiny_fno(n: int, n_forcings: int = len(FORCINGS)) -> torch.nn.Module:
    torch.manual_seed(1)
    hp = {"n_modes": [4, 8], "hidden_channels": 4, "n_layers": 1}
    return new_model("fno", hp, n + n_forcings, n).eval()


class FailsAt(torch.nn.Module):
    """The wrapped model, failing at its ``at``-th call (a crash mid-rollout)."""

    def __init__(self, model: torch.nn.Module, at: int) -> None:
        super().__init__()
        self.model, self.at, self.calls = model, at, 0

    def forward(self, x):
        self.calls += 1
        if self.calls == self.at:
            raise RuntimeError(f"model died at call {self.at}")
        return self.model(x)


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def _run(setup, stores, model, members=1, device="cpu", **kw):
    return run_forecast(
        setup["normalized"],
        model,
        setup["stats"],
        steps=STEPS,
        timestep=SIX,
        stores=[str(s) for s in stores],
        members=members,
        forcings=FORCINGS,
        device=device,
        attrs={"model": "tiny", "fingerprint": "abc"},
        **kw,
    )


def _layout(setup, members=1, steps=STEPS):
    return ForecastLayout(
        analysis_time="2026-01-01T06:00",
        features=setup["features"],
        latitude=GRID.latitude,
        longitude=GRID.longitude,
        lead_times=[SIX * k for k in range(1, steps + 1)],
        members=members,
    )


def _steps(setup, members, steps=STEPS):
    model = tiny_fno(len(setup["features"]))
    x0 = setup["normalized"].values[0]
    kw = dict(features=setup["features"], timestep=SIX, members=members, device="cpu")
    kw.update(forcings=FORCINGS, analysis_time="2026-01-01T06", **GRID_KW)
    return list(rollout(x0, model, setup["stats"], steps, **kw))


GRID_KW = {"latitude": GRID.latitude, "longitude": GRID.longitude}


@pytest.mark.parametrize("members, n_stores", [(1, 1), (3, 1), (2, 2)])
@pytest.mark.parametrize("threads", [0, 2])
def test_direct_chunks_are_zarrs_own_bytes(setup, tmp_path, members, n_stores, threads):
    """Chunks encoded and written as files equal zarr's writes of the same values, file by
    file; so does the whole store, metadata included."""
    steps = _steps(setup, members)
    layout = _layout(setup, members)
    direct = [tmp_path / f"direct{k}.zarr" for k in range(n_stores)]
    via_zarr = [tmp_path / f"zarr{k}.zarr" for k in range(n_stores)]
    a = ZarrForecastOutput([str(p) for p in direct], writer_threads=threads)
    b = ZarrForecastOutput([zarr.storage.LocalStore(str(p)) for p in via_zarr])
    for out in (a, b):
        out.open(layout)
        for step in steps:
            out.write_step(step)
        out.close()
    for d, z in zip(direct, via_zarr, strict=True):
        files, reference = _files(d), _files(z)
        assert PROGRESS not in files  # a complete store holds no journal
        assert files.keys() == reference.keys()
        assert [k for k in files if files[k] != reference[k]] == []


def test_an_all_nan_chunk_is_not_written_as_zarr_would_not(setup, tmp_path):
    steps = _steps(setup, 1, steps=2)
    layout = _layout(setup, 1, steps=2)
    nan_step = type(steps[0])(2, 2 * SIX, np.full_like(steps[1].state, np.nan), 0.0)
    paths = [tmp_path / "direct.zarr", tmp_path / "zarr.zarr"]
    outputs = [
        ZarrForecastOutput([str(paths[0])]),
        ZarrForecastOutput([zarr.storage.LocalStore(str(paths[1]))]),
    ]
    for out in outputs:
        out.open(layout)
        out.write_step(steps[0])
        out.write_step(steps[1])  # written, then replaced by all-NaN: the chunk goes
        out.write_step(nan_step)
        out.close()
    assert _files(paths[0]) == _files(paths[1])
    assert not (paths[0] / "2m_temperature" / "0.1.0.0").exists()


def test_journal_records_complete_leading_lead_times(setup, tmp_path):
    steps = _steps(setup, 1)
    url = tmp_path / "fc.zarr"
    out = ZarrForecastOutput([str(url)], run_key="k")
    out.open(_layout(setup))
    journal = lambda: json.loads((url / PROGRESS).read_text())  # noqa: E731
    assert journal()["complete"] == 0
    out.write_step(steps[0])
    out.write_step(steps[2])  # lead 3 before lead 2: only the leading run counts
    assert journal()["complete"] == 1
    out.write_step(steps[1])
    assert journal()["complete"] == 3
    # Reopened by a run of the same forecast: kept as it is, three lead times complete.
    again = ZarrForecastOutput([str(url)], run_key="k")
    again.open(_layout(setup))
    assert again.completed_steps == 3
    for k in (1, 2, 3):
        stored = again.read_state(k)
        assert stored.dtype == np.float32
        assert stored.tobytes() == steps[k - 1].state.tobytes()  # bit for bit
    with pytest.raises(ValueError, match="step 4 is not complete"):
        again.read_state(4)
    # Another run (another key, layout or attributes) never resumes it: laid out afresh.
    other = ZarrForecastOutput([str(url)], run_key="other")
    other.open(_layout(setup))
    assert other.completed_steps == 0 and journal()["complete"] == 0


def test_rollout_resumed_at_a_step_continues_it_exactly(setup):
    members = 3
    steps = _steps(setup, members)
    model = tiny_fno(len(setup["features"]))
    kw = dict(features=setup["features"], timestep=SIX, members=members, device="cpu")
    kw.update(forcings=FORCINGS, analysis_time="2026-01-01T06", **GRID_KW)
    resumed = list(rollout(steps[2].state, model, setup["stats"], STEPS, first_step=3, **kw))
    assert [s.step for s in resumed] == [4, 5, 6]
    assert [s.lead_time for s in resumed] == [4 * SIX, 5 * SIX, 6 * SIX]
    for a, b in zip(resumed, steps[3:], strict=True):
        assert a.state.tobytes() == b.state.tobytes()
    with pytest.raises(ValueError, match=r"initial state must be \(3, "):
        list(rollout(steps[2].state[:1], model, setup["stats"], STEPS, first_step=3, **kw))
    with pytest.raises(ValueError, match="first_step 7 is not in 0..6"):
        list(rollout(steps[2].state, model, setup["stats"], STEPS, first_step=7, **kw))


@pytest.mark.parametrize("members, n_stores", [(1, 1), (3, 1), (2, 2)])
def test_a_failed_rollout_resumes_byte_identical(setup, tmp_path, members, n_stores):
    n = len(setup["features"])
    reference = [tmp_path / f"ref{k}.zarr" for k in range(n_stores)]
    summary = _run(setup, reference, tiny_fno(n), members)
    assert summary.resumed_from == 0 and summary.steps == STEPS

    stores = [tmp_path / f"out{k}.zarr" for k in range(n_stores)]
    with pytest.raises(RuntimeError, match="model died at call 5"):
        _run(setup, stores, FailsAt(tiny_fno(n), 5), members)
    for s in stores:
        assert json.loads((s / PROGRESS).read_text())["complete"] == 4
        assert not (s / ".zmetadata").exists()
    # The same forecast again: the model is asked for steps 5 and 6 only.
    model = FailsAt(tiny_fno(n), 0)
    summary = _run(setup, stores, model, members)
    assert summary.resumed_from == 4 and summary.steps == STEPS and model.calls == 2
    assert len(summary.step_seconds) == 2
    for s, r in zip(stores, reference, strict=True):
        assert _files(s) == _files(r)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_failed_cuda_rollout_resumes_byte_identical(setup, tmp_path):
    """On a GPU (writer threads, device-to-host copies): the same, against a CUDA reference."""
    n, members = len(setup["features"]), 2
    reference = [tmp_path / "ref.zarr"]
    _run(setup, reference, FailsAt(tiny_fno(n), 0), members, device="cuda")
    stores = [tmp_path / "out.zarr"]
    with pytest.raises(RuntimeError, match="model died at call 4"):
        _run(setup, stores, FailsAt(tiny_fno(n), 4), members, device="cuda")
    summary = _run(setup, stores, FailsAt(tiny_fno(n), 0), members, device="cuda")
    assert summary.resumed_from == 3 and summary.device.startswith("cuda")
    assert _files(stores[0]) == _files(reference[0])


def test_killed_after_the_last_lead_only_closes(setup, tmp_path, monkeypatch):
    """Every lead time written, the store not yet closed: the rerun computes nothing."""
    n = len(setup["features"])
    reference = [tmp_path / "ref.zarr"]
    _run(setup, reference, FailsAt(tiny_fno(n), 0))

    class Interrupted(Exception):
        pass

    def killed(self):
        raise Interrupted  # after the last lead time, before the store is consolidated

    stores = [tmp_path / "out.zarr"]
    with monkeypatch.context() as m:
        m.setattr(ZarrForecastOutput, "close", killed)
        with pytest.raises(Interrupted):
            _run(setup, stores, FailsAt(tiny_fno(n), 0))
    model = FailsAt(tiny_fno(n), 0)
    summary = _run(setup, stores, model)
    assert summary.resumed_from == STEPS and model.calls == 0 and summary.steps == STEPS
    assert _files(stores[0]) == _files(reference[0])


def test_other_inputs_never_resume(setup, tmp_path):
    n = len(setup["features"])
    stores = [tmp_path / "out.zarr"]
    with pytest.raises(RuntimeError):
        _run(setup, stores, FailsAt(tiny_fno(n), 4), 2)
    # Another seed: the ensemble differs, so the stores are laid out and written afresh.
    summary = _run(setup, stores, FailsAt(tiny_fno(n), 0), 2, seed=7)
    assert summary.resumed_from == 0 and summary.steps == STEPS


def test_a_failing_writer_thread_fails_the_run(setup, tmp_path, monkeypatch):
    import resources.forecast_writer as fw

    def broken(self, items):
        raise OSError("disk gone")

    out = ZarrForecastOutput([str(tmp_path / "fc.zarr")], writer_threads=2)
    out.open(_layout(setup))
    monkeypatch.setattr(fw._Store, "put", broken)
    steps = _steps(setup, 1)
    with pytest.raises(OSError, match="disk gone"):
        for step in steps:
            out.write_step(step)
        out.close()
    out.abort()
    # Nothing counted that was not written: the journal still says no lead time is complete.
    assert json.loads((tmp_path / "fc.zarr" / PROGRESS).read_text())["complete"] == 0


def test_s3_output_is_written_and_resumed(setup, s3_bucket):
    bucket, endpoint = s3_bucket
    options = s3_options(endpoint)
    n = len(setup["features"])
    url = f"s3://{bucket}/fc.zarr"
    with pytest.raises(RuntimeError):
        _run(setup, [url], FailsAt(tiny_fno(n), 3), 1, storage_options=options)
    summary = _run(setup, [url], FailsAt(tiny_fno(n), 0), 1, storage_options=options)
    assert summary.resumed_from == 2
    written = xr.open_zarr(url, storage_options=options, zarr_format=2, consolidated=True)
    steps = _steps(setup, 1)
    np.testing.assert_array_equal(
        written["2m_temperature"].values[0, -1],
        steps[-1].state[0, setup["features"].index("2m_temperature")],
    )
