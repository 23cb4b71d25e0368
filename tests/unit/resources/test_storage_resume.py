"""Resumable staging: a dead or failed writer's progress is kept, adopted by a rerun of the
same inputs (and only by it), and cleaned once superseded or too old; live writes are never
taken over."""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from resources.storage import LEASE, PROGRESS, STAGING, Storage, s3_options

RELS = ["m/c/2026-01-01T0000Z/member0/forecast.zarr", "m/c/2026-01-01T0000Z/member1/forecast.zarr"]


def _ago(seconds: float) -> str:
    return (datetime.now(UTC) - timedelta(seconds=seconds)).isoformat()


def _ds(value: float) -> xr.Dataset:
    return xr.Dataset({"t": (("x",), np.full(4, value, "f4"))}, coords={"x": np.arange(4)})


def _partial(url: str, store: Storage, complete: int) -> None:
    """A staged store a forecast writer left: no consolidated metadata, a progress journal."""
    _ds(1.0).to_zarr(
        url,
        mode="w",
        zarr_format=2,
        consolidated=False,
        storage_options=store.storage_options or None,
    )
    journal = {"complete": complete, "updated": _ago(0)}
    store.fs.pipe_file(f"{store.fs._strip_protocol(url)}/{PROGRESS}", json.dumps(journal).encode())


def _finish(url: str, store: Storage, value: float) -> None:
    _ds(value).to_zarr(
        url,
        mode="w",
        zarr_format=2,
        consolidated=True,
        storage_options=store.storage_options or None,
    )


def _stop_after_progress(store: Storage, key: str, complete: int = 2) -> list[str]:
    """A write that stops (raises) with ``complete`` parts recorded; its staged URLs."""
    seen = []
    with pytest.raises(RuntimeError, match="stopped"):
        with store.staged_zarrs(RELS, resume_key=key) as urls:
            seen = urls
            for url in urls:
                _partial(url, store, complete)
            raise RuntimeError("stopped")
    return seen


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path) -> Storage:
    if request.param == "local":
        return Storage(str(tmp_path / "root"))
    bucket, endpoint = request.getfixturevalue("s3_bucket")
    return Storage(f"s3://{bucket}/root", s3_options(endpoint))


def test_a_stopped_resumable_write_is_kept_and_adopted_by_the_same_key(store, caplog):
    with caplog.at_level(logging.WARNING, logger="wxplat.storage"):
        first = _stop_after_progress(store, "key-1")
    assert "its staging is kept" in caplog.text
    assert len(store.list_dir(STAGING)) == 1
    report = store.clean_staging()  # the cleanup keeps it: it can be resumed
    assert len(report.resumable) == 1 and not report.removed
    with caplog.at_level(logging.WARNING, logger="wxplat.storage"):
        with store.staged_zarrs(RELS, resume_key="key-1") as urls:
            # The rerun writes into the same staged stores, their progress there.
            for url in urls:
                path = store.fs._strip_protocol(url)
                assert json.loads(store.fs.cat_file(f"{path}/{PROGRESS}"))["complete"] == 2
                store.fs.rm_file(f"{path}/{PROGRESS}")
                _finish(url, store, 5.0)
    assert "resuming" in caplog.text
    if store._local:
        assert urls != first  # renamed to the rerun's own token: an atomic claim
    assert [float(store.open_zarr(r)["t"].max()) for r in RELS] == [5.0, 5.0]
    assert store.list_dir(STAGING) == []


def test_other_inputs_do_not_adopt_and_supersede_it(store):
    _stop_after_progress(store, "key-1")
    with store.staged_zarrs(RELS, resume_key="key-2") as urls:
        for url in urls:
            assert not store.fs.exists(f"{store.fs._strip_protocol(url)}/{PROGRESS}")
        # The older inputs' staging is gone already: it can never be resumed now.
        assert len(store.list_dir(STAGING)) == 1
        for url in urls:
            _finish(url, store, 3.0)
    assert store.list_dir(STAGING) == []


def test_a_commit_drops_older_resumable_staging(store):
    _stop_after_progress(store, "key-1")
    with store.staged_zarrs(RELS) as urls:  # no key (a forced rerun, say): nothing adopted
        for url in urls:
            _finish(url, store, 4.0)
    assert store.list_dir(STAGING) == []


def test_without_progress_or_key_staging_is_removed_as_before(store):
    _stop_after_progress(store, "key-1", complete=0)
    assert store.list_dir(STAGING) == []
    with pytest.raises(RuntimeError):
        with store.staged_zarrs(RELS) as urls:
            for url in urls:
                _partial(url, store, 3)
            raise RuntimeError("stopped")
    assert store.list_dir(STAGING) == []


def test_cleanup_removes_resumable_staging_once_too_old_or_superseded(tmp_path):
    store = Storage(str(tmp_path / "root"))
    _stop_after_progress(store, "key-1")
    (token,) = store.list_dir(STAGING)
    assert store.clean_staging().resumable
    # A newer lease for the same stores (a live run of other inputs) supersedes it.
    newer = Path(store.path(f"{STAGING}/newer"))
    newer.mkdir()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lease = {
            "host": socket.gethostname(),
            "pid": live.pid,
            "started": _ago(-60),  # a minute from now: newer than the dead writer's
            "relpaths": RELS,
            "resume_key": "key-2",
        }
        (newer / LEASE).write_text(json.dumps(lease))
        report = store.clean_staging()
        assert [Path(u).name for u in report.removed] == [token]
        assert [Path(u).name for u in report.kept] == ["newer"]
    finally:
        live.kill()
        live.wait()
    # And one with no progress for longer than the age limit goes too.
    for name in store.list_dir(STAGING):
        store.fs.rm(store.path(f"{STAGING}/{name}"), recursive=True)
    _stop_after_progress(store, "key-1")
    assert store.clean_staging(max_age=timedelta(hours=1)).resumable
    assert store.clean_staging(max_age=timedelta(0)).removed


def test_a_live_writer_is_never_taken_over(tmp_path):
    store = Storage(str(tmp_path / "root"))
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        area = Path(store.path(f"{STAGING}/live"))
        (area / "0" / "forecast.zarr").mkdir(parents=True)
        (area / "0" / "forecast.zarr" / PROGRESS).write_text(json.dumps({"complete": 5}))
        lease = {"host": socket.gethostname(), "pid": live.pid, "started": _ago(0)}
        (area / LEASE).write_text(json.dumps({**lease, "relpaths": RELS[:1], "resume_key": "k"}))
        with store.staged_zarr(RELS[0], resume_key="k") as url:
            assert "/live/" not in url
            _finish(url, store, 1.0)
        assert "live" in store.list_dir(STAGING)
        assert store.clean_staging().kept
    finally:
        live.kill()
        live.wait()


def test_a_pod_that_stopped_progressing_is_taken_over(tmp_path):
    """On another host the pid means nothing: no progress for ``resume_stale_after``."""
    store = Storage(str(tmp_path / "root"), resume_stale_after=timedelta(minutes=30))
    area = Path(store.path(f"{STAGING}/pod"))
    (area / "0" / "forecast.zarr").mkdir(parents=True)
    journal = area / "0" / "forecast.zarr" / PROGRESS
    lease = {"host": "forecast-pod-x", "pid": 1, "relpaths": RELS[:1], "resume_key": "k"}
    (area / LEASE).write_text(json.dumps({**lease, "started": _ago(2 * 3600)}))
    journal.write_text(json.dumps({"complete": 3, "updated": _ago(60)}))
    with store.staged_zarr(RELS[0], resume_key="k") as url:
        assert "/pod/" not in url and not Path(url, PROGRESS).exists()  # still progressing
        _finish(url, store, 1.0)
    journal.write_text(json.dumps({"complete": 3, "updated": _ago(3600)}))
    with store.staged_zarr(RELS[0], resume_key="k") as url:
        assert json.loads(Path(url, PROGRESS).read_text())["complete"] == 3
        Path(url, PROGRESS).unlink()
        _finish(url, store, 2.0)
    assert float(store.open_zarr(RELS[0])["t"].max()) == 2.0
