"""The storage root: atomic zarr commits on local disk and on a moto S3 server."""

import numpy as np
import pytest
import xarray as xr

from resources.storage import Storage, StorageResource, dataset_checksum


def _ds(value: float) -> xr.Dataset:
    return xr.Dataset(
        {"2m_temperature": (("time", "latitude", "longitude"), np.full((1, 3, 4), value, "f4"))},
        coords={
            "time": [np.datetime64("2026-01-01T00", "ns")],
            "latitude": [0.0, 1.0, 2.0],
            "longitude": [0.0, 1.0, 2.0, 3.0],
        },
    )


def _roundtrip(store: Storage):
    rel = "m/c/w0_s0_e3_n2/dx1deg_dy1deg/2026-01-01T0000Z/member0/analysis.zarr"
    assert not store.exists(rel)
    written = store.write_zarr(_ds(280.0), rel)
    assert store.exists(rel) and written.nbytes > 0
    assert written.checksum == dataset_checksum(_ds(280.0))
    xr.testing.assert_identical(store.open_zarr(rel).load(), _ds(280.0))
    # Overwrite replaces the store completely.
    store.write_zarr(_ds(290.0), rel)
    assert float(store.open_zarr(rel)["2m_temperature"].max()) == 290.0
    # A write that fails half-way leaves the previous version intact and nothing staged.
    with pytest.raises(RuntimeError, match="boom"):
        with store.staged_zarr(rel) as url:
            _ds(300.0).to_zarr(
                url,
                mode="w",
                zarr_format=2,
                consolidated=False,
                storage_options=store.storage_options or None,
            )
            raise RuntimeError("boom")
    assert float(store.open_zarr(rel)["2m_temperature"].max()) == 290.0
    assert not [p for p in store.fs.find(store.path(".staging"))]
    # A staged store without consolidated metadata (an incomplete write) is never committed.
    with pytest.raises(RuntimeError, match="nothing complete"):
        with store.staged_zarr(rel) as url:
            pass
    assert float(store.open_zarr(rel)["2m_temperature"].max()) == 290.0


def test_local_roundtrip_and_atomicity(tmp_path):
    _roundtrip(Storage(str(tmp_path / "root")))


def test_s3_roundtrip_and_atomicity(s3_bucket):
    bucket, endpoint = s3_bucket
    res = StorageResource(root=f"s3://{bucket}/platform", endpoint_url=endpoint)
    _roundtrip(res.storage())


def test_missing_store_names_url(tmp_path):
    with pytest.raises(FileNotFoundError, match="no complete zarr store at .*nothing.zarr"):
        Storage(str(tmp_path)).open_zarr("nothing.zarr")


def test_incomplete_store_is_invisible(tmp_path):
    store = Storage(str(tmp_path))
    _ds(1.0).to_zarr(tmp_path / "half.zarr", zarr_format=2, consolidated=False)
    assert not store.exists("half.zarr")


def test_write_bytes_atomic_local_and_s3(tmp_path, s3_bucket):
    bucket, endpoint = s3_bucket
    for store in (
        Storage(str(tmp_path / "r")),
        StorageResource(root=f"s3://{bucket}/p", endpoint_url=endpoint).storage(),
    ):
        assert store.read_bytes("a/b.parquet") is None
        url = store.write_bytes(b"one", "a/b.parquet")
        assert url.endswith("a/b.parquet") and store.read_bytes("a/b.parquet") == b"one"
        store.write_bytes(b"two", "a/b.parquet")
        assert store.read_bytes("a/b.parquet") == b"two"
        assert not store.fs.exists(store.path(".staging")) or not store.fs.find(
            store.path(".staging")
        )
