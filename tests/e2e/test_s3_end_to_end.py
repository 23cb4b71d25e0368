"""Production storage layout on S3 (a moto server on 127.0.0.1): upstream and storage root in a bucket.

Settings come from ``WXPLAT_*`` variables as in the cluster's ConfigMap; credentials only from
the standard AWS environment variables (set by the ``moto_server`` fixture), never from
settings, resource config or asset code. The result is read back through s3fs directly.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

import dagster as dg
import numpy as np
import s3fs
import xarray as xr

from resources.layout import raw_inputs_relpath
from weather_assets.ingest.simulate import write_simulated_cycles
from weather_assets.keys import raw_inputs_key
from weather_assets.settings import DEFAULT_BBOX, DEFAULT_RESOLUTION, load_settings

T0 = datetime(2026, 1, 1, 6, tzinfo=UTC)
KEY = "2026-01-01T0600Z"


def _s3_settings(bucket: str, endpoint: str, monkeypatch):
    env = {
        "WXPLAT_DEPLOYMENT": "kubernetes",
        "WXPLAT_STORAGE_ROOT": f"s3://{bucket}/storage",
        "WXPLAT_STORAGE_ENDPOINT_URL": endpoint,
        "WXPLAT_UPSTREAM_URL": (
            f"s3://{bucket}/upstream/simulator/analysis/{DEFAULT_BBOX}/{DEFAULT_RESOLUTION}"
        ),
        "WXPLAT_UPSTREAM_ENDPOINT_URL": endpoint,
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return load_settings()


def test_raw_inputs_end_to_end_on_s3(wx_env, s3_bucket, monkeypatch):
    import definitions

    bucket, endpoint = s3_bucket
    # A distinctive secret (moto accepts any), so that a leak below cannot be a coincidence.
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", f"wxplat-e2e-{os.getpid()}-do-not-log")
    settings = _s3_settings(bucket, endpoint, monkeypatch)
    # The upstream provider's cycle lands in the bucket.
    options = {"client_kwargs": {"endpoint_url": endpoint}}
    write_simulated_cycles(settings.upstream_url, T0, T0, storage_options=options)

    defs = definitions.build_definitions(settings)
    key = raw_inputs_key(settings.upstream_name)
    instance = dg.DagsterInstance.ephemeral()
    result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
        partition_key=KEY, instance=instance, asset_selection=[key]
    )
    assert result.success
    mat = result.asset_materializations_for_node("raw_inputs__simulator")[0]
    relpath = raw_inputs_relpath(settings, T0)
    assert mat.metadata["path"].value == f"s3://{bucket}/storage/{relpath}"

    # Read back with s3fs alone: the committed store, nothing left in staging.
    fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": endpoint})
    store = f"{bucket}/storage/{relpath}"
    assert fs.exists(f"{store}/.zmetadata")
    assert not fs.exists(f"{bucket}/storage/.staging") or not fs.find(f"{bucket}/storage/.staging")
    ds = xr.open_zarr(fs.get_mapper(store), consolidated=True).load()
    upstream = xr.open_zarr(
        fs.get_mapper(f"{settings.upstream_url.removeprefix('s3://')}/{KEY}/member0/analysis.zarr"),
        consolidated=True,
    ).load()
    assert ds["time"].values[0] == np.datetime64("2026-01-01T06:00", "ns")
    assert set(ds.data_vars) == set(upstream.data_vars)
    np.testing.assert_array_equal(ds["2m_temperature"].values, upstream["2m_temperature"].values)

    # Credentials reached S3 only through the environment: no resource config holds one, and
    # no event of the run (config, metadata, logs) contains the secret key.
    for resource in (defs.resources or {}).values():
        fields = getattr(resource, "model_dump", dict)()
        assert not any("secret" in k.lower() or "key_id" in k.lower() for k in fields)
    secret = os.environ["AWS_SECRET_ACCESS_KEY"]
    logs = instance.all_logs(result.run_id)
    assert logs and not any(secret in str(entry) for entry in logs)
    assert secret not in str(instance.get_run_by_id(result.run_id).run_config)
