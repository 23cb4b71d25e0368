"""Long rollouts resume: a forecast killed (SIGKILL) at lead k is rerun from the last
complete lead time, and its committed stores are byte-identical to an uninterrupted run's.

Each run is a real process doing what the forecast asset does: stage the member stores
under the forecast's fingerprint (``Storage.staged_zarrs(resume_key=...)``), roll the model
out into them (``run_forecast``), commit. The killed one is slowed down (a pause in the
model's forward, which changes no value) so that the kill lands mid-rollout; the waits are
bounded. The last test does the same through Dagster: ``dagster asset materialize`` of the
forecast asset killed mid-rollout, materialized again (it resumes), and compared with a
forced recomputation.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import torch
import yaml

from model_registry.registry import DEFAULT_REGISTRY_DIR
from model_registry.training import untrained_artifact
from resources.storage import PROGRESS, STAGING, Storage
from tests.conftest import ROOT
from weather_assets.backfill import materialize_command
from weather_assets.ingest.simulate import write_simulated_cycles
from weather_assets.settings import load_settings

pytestmark = pytest.mark.slow

STEPS = 12
KILL_AFTER = 4  # complete lead times recorded before the kill

RUN = textwrap.dedent(
    """
    import json, os, sys, time
    from datetime import timedelta
    sys.path.insert(0, {root!r})
    import torch, xarray as xr
    from model_registry.architectures import new_model
    from resources.forecast_run import run_forecast
    from resources.storage import Storage
    from weather_assets.canonical import features_of
    from weather_assets.forecast.normalize import compute_stats, stack_features, standardize
    from weather_assets.simulator import Grid, simulate_state

    torch.set_num_threads(1)
    root, members, n_stores, pause = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    device = sys.argv[5]
    grid = Grid(-90.0, 90.0, 0.0, 350.0, 10.0)
    hist = xr.concat([simulate_state(f"2026-01-01T{{h:02d}}", grid) for h in (0, 6, 12)], "time")
    features = features_of(hist)
    states = stack_features(hist, features)
    stats = compute_stats(states)
    normalized = standardize(states.isel(time=[1]), stats)
    forcings = ["cos_local_hour", "sin_local_hour"]

    class Paced(torch.nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(3)
            hp = {{"n_modes": [4, 8], "hidden_channels": 8, "n_layers": 2}}
            self.net = new_model("fno", hp, len(features) + len(forcings), len(features))

        def forward(self, x):
            time.sleep(pause)  # changes no value: only when the kill lands
            return self.net(x)

    rels = [f"m/c/2026-01-01T0600Z/member{{k}}/forecast.zarr" for k in range(n_stores)]
    storage = Storage(root)
    with storage.staged_zarrs(rels, label="resume test", resume_key="fingerprint-1") as urls:
        summary = run_forecast(
            normalized, Paced().eval(), stats, steps={steps}, timestep=timedelta(hours=6),
            stores=urls, members=members, forcings=forcings, device=device,
            attrs={{"model": "paced", "fingerprint": "fingerprint-1"}},
        )
    print(json.dumps({{"resumed_from": summary.resumed_from, "steps": summary.steps,
                      "computed": len(summary.step_seconds)}}))
    """
).format(root=str(ROOT), steps=STEPS)


def _cmd(root: Path, members: int, n_stores: int, pause: float, device: str) -> list[str]:
    args = [str(root), str(members), str(n_stores), str(pause), device]
    return [sys.executable, "-c", RUN, *args]


def _run(root: Path, members: int, n_stores: int, device: str) -> dict:
    cmd = _cmd(root, members, n_stores, 0.0, device)
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def _complete(root: Path) -> int:
    """Complete lead times every staged store records (0 while there is none)."""
    journals = list((root / STAGING).glob(f"*/*/*/{PROGRESS}"))
    done = []
    for journal in journals:
        try:
            done.append(json.loads(journal.read_text())["complete"])
        except (OSError, ValueError):  # replaced while read
            return 0
    return min(done, default=0)


def _files(root: Path) -> dict[str, bytes]:
    base = root / "m"
    return {
        str(p.relative_to(base)): p.read_bytes() for p in sorted(base.rglob("*")) if p.is_file()
    }


CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.parametrize(
    "members, n_stores, device",
    [
        (1, 1, "cpu"),
        (3, 1, "cpu"),
        (2, 2, "cpu"),
        pytest.param(2, 1, "cuda", marks=CUDA),
    ],
    ids=["control", "ensemble-store", "store-per-member", "cuda-ensemble"],
)
def test_sigkilled_forecast_resumes_from_the_last_complete_lead(
    tmp_path, members, n_stores, device
):
    reference = _run(tmp_path / "uninterrupted", members, n_stores, device)
    assert reference == {"resumed_from": 0, "steps": STEPS, "computed": STEPS}

    root = tmp_path / "killed"
    proc = subprocess.Popen(
        _cmd(root, members, n_stores, 0.4, device),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            if _complete(root) >= KILL_AFTER:
                break
            time.sleep(0.02)
        assert proc.poll() is None, f"the run ended before the kill: {proc.stderr.read()[-2000:]}"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    killed_at = _complete(root)
    assert KILL_AFTER <= killed_at < STEPS
    assert not (root / "m").exists()  # nothing committed, nothing visible
    # The cleanup (hourly sensor, `wxplat storage clean`) keeps the dead run's work.
    report = Storage(str(root)).clean_staging()
    assert len(report.resumable) == 1 and not report.removed

    resumed = _run(root, members, n_stores, device)
    assert resumed["resumed_from"] == killed_at
    assert resumed["computed"] == STEPS - killed_at and resumed["steps"] == STEPS
    assert list((root / STAGING).iterdir()) == []
    first, second = _files(tmp_path / "uninterrupted"), _files(root)
    assert first.keys() == second.keys() and len(first) > STEPS
    differing = [k for k in first if first[k] != second[k]]
    assert differing == [], f"not byte-identical: {differing[:5]}"


# -- through Dagster: the forecast asset, killed and materialized again ---------------------

T0 = datetime(2026, 1, 1, 6, tzinfo=UTC)
KEY = "2026-01-01T0600Z"


def _materialize(env: dict, select: str, config: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        materialize_command(select, KEY, config),
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _finish(proc: subprocess.Popen) -> str:
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-3000:]
    return out


def test_sigkilled_forecast_asset_resumes_and_equals_a_forced_recompute(wx_env, tmp_path):
    registry = tmp_path / "registry"
    registry.mkdir()
    entry = yaml.safe_load((DEFAULT_REGISTRY_DIR / "persistence.yaml").read_text())
    hp = {"n_modes": [8, 16], "hidden_channels": 16, "n_layers": 2}
    artifact = untrained_artifact(
        tmp_path / "long-fno.zip", hyperparameters=hp, start="2026-01-01T00", name="long-fno"
    )
    entry.update(
        name="long-fno",
        architecture="fno",
        artifact={"uri": str(artifact)},
        max_lead_time="480h",  # 80 lead times: the kill lands mid-rollout
        description="long rollout",
    )
    (registry / "long-fno.yaml").write_text(yaml.safe_dump(entry))
    env = {**os.environ, **wx_env, "WXPLAT_REGISTRY_DIR": str(registry)}
    settings = load_settings({**wx_env, "WXPLAT_REGISTRY_DIR": str(registry)})
    write_simulated_cycles(settings.upstream_url, T0, T0)
    _finish(_materialize(env, "raw_inputs/simulator,normalized/long-fno"))
    root = Path(settings.storage_root)

    proc = _materialize(env, "forecast/long-fno")
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            if _complete(root) >= KILL_AFTER:
                break
            time.sleep(0.02)
        assert proc.poll() is None, "the forecast ended before it could be killed"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    killed_at = _complete(root)
    assert killed_at >= KILL_AFTER
    assert not list((root / "long-fno").rglob("forecast.zarr"))  # nothing visible

    out = _finish(_materialize(env, "forecast/long-fno"))
    assert f"({killed_at} complete part(s))" in out  # the storage's "resuming ..." line
    (store,) = (root / "long-fno").rglob("forecast.zarr")
    resumed = {str(p.relative_to(store)): p.read_bytes() for p in store.rglob("*") if p.is_file()}
    assert list((root / STAGING).iterdir()) == []

    force = {"ops": {"forecast__long_fno": {"config": {"force": True}}}}
    _finish(_materialize(env, "forecast/long-fno", force))
    forced = {str(p.relative_to(store)): p.read_bytes() for p in store.rglob("*") if p.is_file()}
    assert resumed.keys() == forced.keys()
    differing = [k for k in resumed if resumed[k] != forced[k]]
    assert differing == [], f"not byte-identical: {differing[:5]}"
