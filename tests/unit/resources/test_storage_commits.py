"""Commits that lose nothing: all members or none, killed writers, a silent S3 endpoint,
staging left behind, a full disk."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from resources.storage import (
    JOURNAL,
    LEASE,
    STAGING,
    Storage,
    StorageFullError,
    s3_options,
)
from tests.conftest import ROOT

MEMBERS = 4


def _ds(value: float, n: int = 8) -> xr.Dataset:
    return xr.Dataset(
        {"2m_temperature": (("time", "latitude", "longitude"), np.full((1, n, n), value, "f4"))},
        coords={
            "time": [np.datetime64("2026-01-01T00", "ns")],
            "latitude": np.arange(n, dtype="f8"),
            "longitude": np.arange(n, dtype="f8"),
        },
    )


def _rels(members: int = MEMBERS) -> list[str]:
    return [f"raw/c/2026-01-01T0000Z/member{m}/analysis.zarr" for m in range(members)]


def _values(store: Storage, members: int = MEMBERS) -> list[float]:
    return [float(store.open_zarr(r)["2m_temperature"].max()) for r in _rels(members)]


def _staging(store: Storage) -> list[str]:
    return store.list_dir(STAGING)


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path) -> Storage:
    if request.param == "local":
        return Storage(str(tmp_path / "root"))
    bucket, endpoint = request.getfixturevalue("s3_bucket")
    return Storage(f"s3://{bucket}/root", s3_options(endpoint))


def test_a_refused_write_commits_no_member(store):
    store.write_zarrs({r: _ds(1.0) for r in _rels()})

    def refuse(staged: list[xr.Dataset]) -> None:
        assert len(staged) == MEMBERS and float(staged[-1]["2m_temperature"].max()) == 2.0
        raise ValueError("member 3 has NaNs")

    with pytest.raises(ValueError, match="member 3 has NaNs"):
        store.write_zarrs({r: _ds(2.0) for r in _rels()}, validate=refuse)
    assert _values(store) == [1.0] * MEMBERS
    assert _staging(store) == []
    store.write_zarrs({r: _ds(3.0) for r in _rels()}, validate=lambda staged: None)
    assert _values(store) == [3.0] * MEMBERS


# A writer killed at a chosen point: after `after` members are staged ("staging"), or after
# the `after`-th call of a Storage method of the commit.
WRITER = textwrap.dedent(
    """
    import os, signal, sys
    sys.path.insert(0, {root!r})
    from resources.storage import Storage, s3_options
    from tests.unit.resources.test_storage_commits import _ds, _rels

    kill_in, after, calls = {kill_in!r}, {after}, []
    store = Storage({url!r}, s3_options({endpoint!r}) if {endpoint!r} else {{}})

    def count():
        calls.append(1)
        if len(calls) == after:
            os.kill(os.getpid(), signal.SIGKILL)

    if kill_in != "staging":
        original = getattr(Storage, kill_in)

        def dying(self, *args, **kwargs):
            out = original(self, *args, **kwargs)
            count()
            return out

        setattr(Storage, kill_in, dying)
    with store.staged_zarrs(_rels()) as urls:
        for url in urls:
            _ds(2.0).to_zarr(url, mode="w", zarr_format=2, consolidated=True,
                             storage_options=store.storage_options or None)
            if kill_in == "staging":
                count()
    """
)


def _killed_writer(store: Storage, kill_in: str, after: int) -> None:
    endpoint = (store.storage_options.get("client_kwargs") or {}).get("endpoint_url")
    script = WRITER.format(
        root=str(ROOT), url=store.root, endpoint=endpoint, kill_in=kill_in, after=after
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, timeout=120)
    assert proc.returncode == -signal.SIGKILL


def test_writer_killed_while_staging_changes_nothing(store):
    store.write_zarrs({r: _ds(1.0) for r in _rels()})
    _killed_writer(store, "staging", after=2)  # two of four members staged
    assert _values(store) == [1.0] * MEMBERS
    # The dead writer's staging is abandoned (its process is gone), so cleanup removes it.
    assert len(_staging(store)) == 1
    report = store.clean_staging()
    assert len(report.removed) == 1 and not report.rolled_forward
    assert _staging(store) == []


@pytest.mark.parametrize("after", [1, 3])
def test_writer_killed_mid_commit_is_rolled_forward(store, after):
    """Past the commit point a partition only goes forward: the next writer finishes it."""
    store.write_zarrs({r: _ds(1.0) for r in _rels()})
    switch = "_switch_local" if store._local else "_switch_object_store"
    _killed_writer(store, switch, after=after)
    (token,) = _staging(store)
    journal = json.loads(store.fs.cat_file(store.path(f"{STAGING}/{token}/{JOURNAL}")))
    assert len(journal["pairs"]) == MEMBERS
    # The next write anywhere under the root completes the interrupted commit first.
    store.write_zarr(_ds(9.0), "other/x.zarr")
    assert _values(store) == [2.0] * MEMBERS
    assert _staging(store) == []


def test_cleanup_keeps_live_writes_and_removes_abandoned_ones(tmp_path):
    store = Storage(str(tmp_path / "root"))
    staging = Path(store.path(STAGING))
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    try:
        host = socket.gethostname()
        now = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
        for name, lease in {
            "live": {"host": host, "pid": live.pid, "started": now},
            "dead": {"host": host, "pid": dead.pid, "started": now},
            "elsewhere-old": {
                "host": "other-pod",
                "pid": 1,
                "started": "2020-01-01T00:00:00+00:00",
            },
            "elsewhere-new": {"host": "other-pod", "pid": 1, "started": now},
        }.items():
            (staging / name / "0").mkdir(parents=True)
            (staging / name / LEASE).write_text(json.dumps(lease))
        # A staging area without a lease (an older version's): judged by its files' age.
        for name, age in (("legacy-old", 7 * 3600), ("legacy-new", 0)):
            (staging / name).mkdir()
            chunk = staging / name / "0.0"
            chunk.write_bytes(b"x")
            os.utime(chunk, (time.time() - age, time.time() - age))
            os.utime(staging / name, (time.time() - age, time.time() - age))
        report = store.clean_staging()
        removed = sorted(Path(u).name for u in report.removed)
        assert removed == ["dead", "elsewhere-old", "legacy-old"]
        assert sorted(_staging(store)) == ["elsewhere-new", "legacy-new", "live"]
    finally:
        live.kill()
        live.wait()


# -- a silent S3 endpoint ----------------------------------------------------------------


@pytest.fixture
def moto_process(tmp_path):
    """A moto S3 server in its own process (so that it can be stopped with SIGSTOP)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    exe = Path(sys.executable).with_name("moto_server")
    proc = subprocess.Popen(
        [str(exe), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    import boto3

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    for _ in range(100):
        try:
            client.create_bucket(Bucket="silent")
            break
        except Exception:  # noqa: BLE001 - the server is still starting
            time.sleep(0.1)
    else:
        proc.kill()
        pytest.fail("the moto server did not start")
    yield proc, endpoint
    os.kill(proc.pid, signal.SIGCONT)
    proc.kill()
    proc.wait()


def test_s3_endpoint_silent_at_commit_keeps_the_old_store(moto_process, caplog, monkeypatch):
    proc, endpoint = moto_process
    store = Storage("s3://silent/root", s3_options(endpoint, timeout_seconds=1))
    store.write_zarrs({r: _ds(1.0) for r in _rels()})
    monkeypatch.setattr("resources.storage.time.sleep", lambda s: None)  # retries back-to-back
    original = Storage._apply

    def stop_then_apply(self, token_dir, pairs):
        os.kill(proc.pid, signal.SIGSTOP)  # the endpoint stops answering at the commit
        return original(self, token_dir, pairs)

    monkeypatch.setattr(Storage, "_apply", stop_then_apply)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="wxplat.storage"):
        with pytest.raises(OSError, match="failed 3 times"):
            store.write_zarrs({r: _ds(2.0) for r in _rels()})
    elapsed = time.monotonic() - started
    retries = [r.getMessage() for r in caplog.records if "retry" in r.getMessage()]
    assert len(retries) == 2 and "s3://silent/root/" in retries[0] and "Timeout" in retries[0]
    assert any("will be completed" in r.getMessage() for r in caplog.records)
    monkeypatch.setattr(Storage, "_apply", original)
    os.kill(proc.pid, signal.SIGCONT)
    # The old version stayed readable and whole; the interrupted commit completes later.
    fresh = Storage("s3://silent/root", s3_options(endpoint, timeout_seconds=5))
    assert _values(fresh) == [1.0] * MEMBERS, f"after {elapsed:.0f} s"
    assert fresh.recover_commits() == [", ".join(_rels())]
    assert _values(fresh) == [2.0] * MEMBERS
    assert _staging(fresh) == []


# -- a full disk -------------------------------------------------------------------------


@pytest.fixture
def tiny_filesystem(tmp_path):
    """A 1 MiB tmpfs (needs root, as in CI); skipped where mounting is not allowed."""
    mount = tmp_path / f"tiny-{uuid.uuid4().hex[:6]}"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_full_disk_names_the_root_and_what_was_written(tiny_filesystem):
    store = Storage(str(tiny_filesystem / "root"))
    store.write_zarrs({r: _ds(1.0) for r in _rels()})
    noise = np.random.default_rng(0).normal(size=(1, 256, 256)).astype("f4")
    big = _ds(2.0, n=256).copy(data={"2m_temperature": noise})
    with pytest.raises(StorageFullError) as err:
        store.write_zarrs({r: big for r in _rels()}, label="raw_inputs/era5 partition X")
    message = str(err.value)
    assert str(tiny_filesystem / "root") in message
    assert "raw_inputs/era5 partition X" in message and "No space left" in message
    assert _values(store) == [1.0] * MEMBERS
    assert _staging(store) == []


def test_cleanup_sensor_and_cli_remove_a_dead_writers_staging(wx_env, settings):
    import dagster as dg

    from resources.storage import StorageResource
    from weather_assets.maintenance import build_staging_cleanup_sensor

    store = Storage(settings.storage_root)
    for name in ("first", "second"):
        dead = subprocess.Popen([sys.executable, "-c", "pass"])
        dead.wait()
        lease = {
            "host": socket.gethostname(),
            "pid": dead.pid,
            "started": "2026-01-01T00:00:00+00:00",
        }
        Path(store.path(f"{STAGING}/{name}/0")).mkdir(parents=True)
        Path(store.path(f"{STAGING}/{name}/{LEASE}")).write_text(json.dumps(lease))
    sensor = build_staging_cleanup_sensor()
    with dg.build_sensor_context(
        resources={"storage": StorageResource(root=settings.storage_root)}
    ) as context:
        result = sensor(context)
    assert "2 abandoned staging area(s) removed" in str(result.skip_message)
    assert _staging(store) == []
    Path(store.path(f"{STAGING}/third/0")).mkdir(parents=True)
    Path(store.path(f"{STAGING}/third/{LEASE}")).write_text(json.dumps(lease))
    exe = Path(sys.executable).with_name("wxplat")
    out = subprocess.run(
        [str(exe), "storage", "clean"], env={**os.environ, **wx_env}, capture_output=True, text=True
    )
    assert out.returncode == 0 and "1 removed" in out.stdout, out.stderr
    assert _staging(store) == []
