"""The storage root: atomic zarr commits on local disk and on a moto S3 server."""

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

from resources.storage import Storage, StorageResource, dataset_checksum
from resources.zarr_files import ZarrFiles


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


# -- the content checksum and the in-memory write path -----------------------------------


def _reference_checksum(ds: xr.Dataset) -> str:
    """The checksum as it was first defined (a whole copy of every variable's bytes)."""
    import hashlib

    h = hashlib.sha256()
    for name in sorted(map(str, ds.variables)):
        var = ds.variables[name]
        h.update(f"{name}|{var.dims}|{var.dtype.str}|{var.shape}".encode())
        values = np.ascontiguousarray(var.values)
        if values.dtype.kind == "O":
            h.update(repr(values.tolist()).encode())
        else:
            h.update(values.tobytes())
    return h.hexdigest()


_DTYPES = ["f4", "f8", "i8", "u1", "bool", "M8[ns]", "m8[ns]", "U3", "O"]


@st.composite
def _datasets(draw) -> xr.Dataset:
    """Random datasets: any dtype, 0-d to 3-d, views with strides, dask with any chunks."""
    sizes = {d: draw(st.integers(0 if d == "x" else 1, 4)) for d in ("time", "y", "x")}
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    variables = {}
    for i in range(draw(st.integers(1, 3))):
        dims = tuple(d for d in sizes if draw(st.booleans()))
        shape = tuple(sizes[d] for d in dims)
        kind = draw(st.sampled_from(_DTYPES))
        raw = rng.integers(-1000, 1000, size=shape)
        if kind in ("U3", "O"):
            data = raw.astype(str).astype(kind)
        elif kind.startswith(("M8", "m8")):
            data = raw.astype("i8").view(kind)
        else:
            data = raw.astype(kind)
        var = xr.Variable(dims, data)
        if var.ndim and draw(st.booleans()):  # a non-contiguous view
            var = var[(slice(None, None, -1),) + (slice(None),) * (var.ndim - 1)].transpose()
        if var.ndim and var.dtype.kind != "O" and draw(st.booleans()):
            var = var.chunk({d: draw(st.integers(1, 3)) for d in var.dims})
        variables[f"v{i}"] = var
    coords = {"x": np.arange(sizes["x"]) * 0.5} if draw(st.booleans()) else {}
    return xr.Dataset(variables, coords=coords)


@settings(max_examples=150, deadline=None)
@given(ds=_datasets())
def test_checksum_equals_its_first_definition(ds):
    assert dataset_checksum(ds) == _reference_checksum(ds)
    assert dataset_checksum(ds.load()) == _reference_checksum(ds)


def test_checksum_hashes_in_memory_data_in_place():
    """No copy of contiguous values (numpy allocations show in tracemalloc)."""
    import tracemalloc

    big = xr.Dataset(
        {
            "a": (("time", "y", "x"), np.ones((2, 1000, 2000), "f4")),
            "b": (("time",), np.array(["2026-01-01", "2026-01-02"], "datetime64[ns]")),
        }
    )
    tracemalloc.start()
    try:
        checksum = dataset_checksum(big)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000 < big["a"].nbytes
    assert checksum == _reference_checksum(big)


def _files(root) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


@pytest.mark.parametrize("members", [1, 3])
def test_in_memory_write_is_the_store_of_the_dask_write(tmp_path, members):
    """``write_zarrs(chunks=)`` on numpy data writes byte for byte what the dask-chunked
    dataset gave, with the same checksum (hashed in a thread while writing)."""
    rng = np.random.default_rng(0)
    ds = xr.Dataset(
        {
            "temperature": (("time", "level", "y", "x"), rng.random((2, 3, 4, 5), "f4")),
            "2m_temperature": (("time", "y", "x"), rng.random((2, 4, 5), "f4")),
        },
        coords={
            "time": np.array(["2026-01-01T00", "2026-01-01T06"], "datetime64[ns]"),
            "level": [250, 500, 850],
            "latitude": (("y", "x"), rng.random((4, 5))),
            "longitude": (("y", "x"), rng.random((4, 5))),
            "note": "scalar",
        },
        attrs={"source": "test"},
    )
    stores = {f"m{i}/analysis.zarr": ds + i for i in range(members)}
    by_dask = Storage(str(tmp_path / "dask")).write_zarrs(
        {rel: d.chunk({"time": 1}) for rel, d in stores.items()}
    )
    in_memory = Storage(str(tmp_path / "numpy")).write_zarrs(stores, chunks={"time": 1})
    assert [w.checksum for w in in_memory] == [w.checksum for w in by_dask]
    assert [w.checksum for w in in_memory] == [_reference_checksum(d) for d in stores.values()]
    assert _files(tmp_path / "numpy") == _files(tmp_path / "dask")


def test_chunks_given_in_the_encoding_win(tmp_path):
    store = Storage(str(tmp_path))
    ds = _ds(1.0)
    store.write_zarrs(
        {"a.zarr": ds},
        encoding={"2m_temperature": {"chunks": (1, 1, 4)}},
        chunks={"time": 1},
    )
    opened = store.open_zarr("a.zarr")
    assert opened["2m_temperature"].encoding["chunks"] == (1, 1, 4)
    store.write_zarrs({"b.zarr": ds}, chunks={"time": 1})
    assert store.open_zarr("b.zarr")["2m_temperature"].encoding["chunks"] == (1, 3, 4)


def test_a_failed_write_commits_nothing_and_waits_for_the_hash(tmp_path, monkeypatch):
    import resources.storage as storage_module

    store = Storage(str(tmp_path))
    store.write_zarrs({"a.zarr": _ds(1.0)}, chunks={"time": 1})

    def broken(*args, **kwargs):
        raise OSError("disk on fire")

    # In-memory data is written chunk by chunk: the disk fails after the metadata is laid
    # out, half way into the store; anything else goes through xarray's to_zarr.
    put = ZarrFiles.put

    def put_then_break(self, items):
        if any("/.z" not in key and not key.startswith(".z") for key, _ in items):
            raise OSError("disk on fire")
        put(self, items)

    monkeypatch.setattr(ZarrFiles, "put", put_then_break)
    monkeypatch.setattr(storage_module, "to_zarr", broken)
    for ds in (_ds(2.0), _ds(2.0).chunk()):
        with pytest.raises(OSError, match="disk on fire"):
            store.write_zarrs({"a.zarr": ds}, chunks={"time": 1})
        assert float(store.open_zarr("a.zarr")["2m_temperature"].max()) == 1.0
        assert not store.fs.find(store.path(".staging"))
