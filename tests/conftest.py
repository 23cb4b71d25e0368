"""Shared fixtures: isolated settings, a moto S3 server on 127.0.0.1, the ERA5 sample."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

# psycopg2-binary's bundled libldap crashes in its exit-time finalizer (SIGSEGV in free, seen
# with gdb) when it is loaded *after* ecCodes/HDF5 have been used in the same process. Dagster
# processes on a Postgres instance load it first (the instance comes before user code), so the
# test process does the same; otherwise pytest would pass every test and then exit with 139.
import psycopg2  # noqa: F401, E402  (load order matters, see above)
import pytest

ROOT = Path(__file__).resolve().parent.parent
ERA5_GRIB = ROOT.parent / "shared" / "data" / "era5-levels-members.grib"


@pytest.fixture
def persistence_registry(tmp_path, monkeypatch) -> Path:
    """A registry holding only the shipped persistence entry (no FNO training needed)."""
    from model_registry.registry import DEFAULT_REGISTRY_DIR

    registry = tmp_path / "registry"
    registry.mkdir()
    shutil.copy(DEFAULT_REGISTRY_DIR / "persistence.yaml", registry)
    monkeypatch.setenv("WXPLAT_REGISTRY_DIR", str(registry))
    return registry


@pytest.fixture
def wx_env(tmp_path, monkeypatch) -> dict[str, str]:
    """WXPLAT_* variables pointing every storage area into a temporary home."""
    env = {
        "WXPLAT_HOME": str(tmp_path / "home"),
        "DAGSTER_HOME": str(tmp_path / "dagster_home"),
    }
    Path(env["DAGSTER_HOME"]).mkdir(parents=True)
    for name in list(os.environ):
        if name.startswith("WXPLAT_"):
            monkeypatch.delenv(name)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return env


@pytest.fixture
def settings(wx_env):
    """Default settings of a fresh local deployment in a temporary home."""
    from weather_assets.settings import load_settings

    return load_settings()


@pytest.fixture(scope="session")
def moto_server():
    """A moto S3 server on 127.0.0.1 (random port); yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_bucket(moto_server):
    """A fresh, empty bucket on the moto server; yields (bucket name, endpoint URL)."""
    import uuid

    import boto3

    name = f"wx-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=moto_server, region_name="us-east-1").create_bucket(Bucket=name)
    return name, moto_server


@pytest.fixture(scope="session")
def era5_grib() -> Path:
    """The shared real ERA5 GRIB sample (10 members, z and t at 850/500 hPa, 12-hourly)."""
    if not ERA5_GRIB.exists():
        pytest.fail(f"the shared ERA5 sample is missing at {ERA5_GRIB}")
    return ERA5_GRIB
