"""A forecast run killed mid-write (SIGKILL) leaves nothing visible; the rerun succeeds and is
byte-identical to a forced recomputation from the same inputs and artifact."""

import os
import signal
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import xarray as xr
import yaml

from model_registry.registry import DEFAULT_REGISTRY_DIR
from model_registry.training import untrained_artifact
from resources.layout import raw_inputs_relpath
from resources.storage import Storage
from tests.conftest import ROOT
from weather_assets.backfill import materialize_command
from weather_assets.ingest.simulate import write_simulated_cycles
from weather_assets.settings import load_settings

pytestmark = pytest.mark.slow

T0 = datetime(2026, 1, 1, 6, tzinfo=UTC)
KEY = "2026-01-01T0600Z"
HP = {"n_modes": [8, 16], "hidden_channels": 16, "n_layers": 2}


def _materialize(env, select: str, config: dict | None = None, wait=True):
    cmd = materialize_command(select, KEY, config)
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    if wait:
        out, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, out[-3000:]
    return proc


def _store_bytes(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_sigkill_mid_write_then_rerun_is_byte_identical(wx_env, tmp_path):
    registry = tmp_path / "registry"
    registry.mkdir()
    entry = yaml.safe_load((DEFAULT_REGISTRY_DIR / "persistence.yaml").read_text())
    artifact = untrained_artifact(
        tmp_path / "slow-fno.zip", hyperparameters=HP, start="2026-01-01T00", name="slow-fno"
    )
    # A long rollout, so that the kill lands while lead times are being written.
    entry.update(
        name="slow-fno",
        architecture="fno",
        artifact={"uri": str(artifact)},
        max_lead_time="480h",
        description="long rollout",
    )
    (registry / "slow-fno.yaml").write_text(yaml.safe_dump(entry))
    env = {**os.environ, **wx_env, "WXPLAT_REGISTRY_DIR": str(registry)}
    settings = load_settings({**wx_env, "WXPLAT_REGISTRY_DIR": str(registry)})
    write_simulated_cycles(settings.upstream_url, T0, T0)
    _materialize(env, "raw_inputs/simulator,normalized/slow-fno")
    storage = Storage(settings.storage_root)
    assert storage.exists(raw_inputs_relpath(settings, T0))
    forecast_dir = Path(settings.storage_root) / "slow-fno"
    staging = Path(settings.storage_root) / ".staging"

    proc = _materialize(env, "forecast/slow-fno", wait=False)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        chunks = [p for p in staging.rglob("*") if p.is_file() and p.name[0].isdigit()]
        if len(chunks) > 20:  # lead times are being written
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the forecast finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    # Nothing visible: no forecast store at all under the model's path.
    assert not list(forecast_dir.rglob("forecast.zarr"))

    _materialize(env, "forecast/slow-fno")
    stores = list(forecast_dir.rglob("forecast.zarr"))
    assert len(stores) == 1
    first = _store_bytes(stores[0])
    ds = xr.open_zarr(stores[0])
    assert ds.sizes["lead_time"] == 480 // 6 + 1 or ds.sizes["lead_time"] == 480 // 6
    _materialize(
        env,
        "forecast/slow-fno",
        config={"ops": {"forecast__slow_fno": {"config": {"force": True}}}},
    )
    second = _store_bytes(stores[0])
    assert first.keys() == second.keys()
    differing = [k for k in first if first[k] != second[k]]
    assert differing == [], f"not byte-identical: {differing[:5]}"
