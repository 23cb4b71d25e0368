"""Stores written chunk by chunk as plain files are, file for file, what xarray's
``to_zarr`` writes: the same metadata, the same chunk bytes, the same empty chunks left out;
and datasets whose values xarray would change on the way are left to xarray."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from resources.storage import to_zarr
from resources.zarr_files import write_dataset

FILES_SETTINGS = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def files_of(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def cycle(shape: tuple[int, int, int, int], seed: int, nan_level: bool) -> xr.Dataset:
    """A raw-input-like cycle: (time, level, latitude, longitude) and a surface field."""
    rng = np.random.default_rng(seed)
    nt, nl, ny, nx = shape
    upper = (280 + rng.standard_normal(shape)).astype(np.float32)
    if nan_level:
        upper[:, 0] = np.nan  # a whole chunk of missing values when chunked per level
    surface = rng.standard_normal((nt, ny, nx))  # float64
    times = pd.date_range("2026-01-01", periods=nt, freq="6h")
    return xr.Dataset(
        {
            "temperature": (
                ("time", "level", "latitude", "longitude"),
                upper,
                {"units": "K", "long_name": "temperature"},
            ),
            "mean_sea_level_pressure": (("time", "latitude", "longitude"), surface),
        },
        coords={
            "time": times,
            "level": np.arange(nl, dtype=np.int64) * 100 + 100,
            "latitude": np.linspace(-90, 90, ny),
            "longitude": np.linspace(0, 360, nx, endpoint=False),
            "valid_time": ("time", times + pd.Timedelta(hours=6)),
        },
        attrs={"source": "test", "analysis": "2026-01-01T00"},
    )


@FILES_SETTINGS
@given(
    shape=st.tuples(st.integers(1, 3), st.integers(1, 4), st.integers(1, 9), st.integers(1, 11)),
    chunk=st.tuples(st.integers(1, 4), st.integers(1, 9), st.integers(1, 11)),
    seed=st.integers(0, 2**16),
    nan_level=st.booleans(),
)
def test_written_chunk_by_chunk_is_to_zarr_file_for_file(
    tmp_path_factory: pytest.TempPathFactory,
    shape: tuple[int, int, int, int],
    chunk: tuple[int, int, int],
    seed: int,
    nan_level: bool,
) -> None:
    tmp = tmp_path_factory.mktemp("files")
    ds = cycle(shape, seed, nan_level)
    nl, ny, nx = chunk
    encoding = {
        "temperature": {"chunks": (1, min(nl, shape[1]), min(ny, shape[2]), min(nx, shape[3]))},
        "mean_sea_level_pressure": {"chunks": (1, min(ny, shape[2]), min(nx, shape[3]))},
    }
    to_zarr(ds, str(tmp / "xarray.zarr"), encoding=encoding)
    assert write_dataset(ds, str(tmp / "direct.zarr"), encoding=encoding)

    assert files_of(tmp / "direct.zarr") == files_of(tmp / "xarray.zarr")
    back = xr.open_zarr(tmp / "direct.zarr", consolidated=True, zarr_format=2).load()
    xr.testing.assert_identical(back, xr.open_zarr(tmp / "xarray.zarr", zarr_format=2).load())


def test_a_compressor_given_in_the_encoding_is_the_one_used(tmp_path: Path) -> None:
    from numcodecs import Blosc

    ds = cycle((2, 3, 5, 7), 0, False)
    codec = Blosc(cname="zstd", clevel=1, shuffle=Blosc.SHUFFLE)
    encoding = {
        "temperature": {"chunks": (1, 3, 5, 7), "compressors": (codec,)},
        "mean_sea_level_pressure": {"chunks": (1, 5, 7), "compressors": None},
    }
    to_zarr(ds, str(tmp_path / "xarray.zarr"), encoding=encoding)
    assert write_dataset(ds, str(tmp_path / "direct.zarr"), encoding=encoding)
    assert files_of(tmp_path / "direct.zarr") == files_of(tmp_path / "xarray.zarr")


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (lambda ds, enc: enc["temperature"].update(scale_factor=0.1), "scale factor"),
        (lambda ds, enc: enc["temperature"].update(dtype="float64"), "dtype change"),
        (lambda ds, enc: enc["temperature"].update(_FillValue=-9999.0), "fill value"),
        (lambda ds, enc: enc.pop("mean_sea_level_pressure"), "no chunks"),
        (lambda ds, enc: enc["temperature"].update(chunks=5), "chunks as an int"),
        (lambda ds, enc: enc["temperature"].update(chunks=(1, None, 5, 7)), "chunks of None"),
        (lambda ds, enc: enc["temperature"].update(_FillValue=None), "no fill value"),
        (lambda ds, enc: enc["temperature"].update(write_empty_chunks=True), "empty chunks"),
        (  # xarray replaces the variable's own encoding (and its chunks) with the entry
            lambda ds, enc: (
                ds["temperature"].encoding.update(chunks=(1, 3, 5, 7)),
                enc.__setitem__("temperature", {"compressors": None}),
            ),
            "an entry without chunks",
        ),
        (lambda ds, enc: ds.__setitem__("flag", ds["temperature"] > 280), "booleans"),
        (lambda ds, enc: ds.__setitem__("temperature", ds["temperature"].chunk()), "dask"),
    ],
)
def test_values_xarray_would_change_are_left_to_xarray(tmp_path: Path, change, why) -> None:
    ds = cycle((2, 3, 5, 7), 0, False)
    encoding = {
        "temperature": {"chunks": (1, 3, 5, 7)},
        "mean_sea_level_pressure": {"chunks": (1, 5, 7)},
    }
    change(ds, encoding)
    assert not write_dataset(ds, str(tmp_path / "direct.zarr"), encoding=encoding), why
    assert not (tmp_path / "direct.zarr").exists()


def test_on_s3_the_chunks_are_the_objects_to_zarr_writes(s3_bucket) -> None:
    import fsspec

    from resources.storage import s3_options

    bucket, endpoint = s3_bucket
    options = s3_options(endpoint)
    ds = cycle((2, 3, 5, 7), 1, True)
    encoding = {
        "temperature": {"chunks": (1, 1, 5, 7)},
        "mean_sea_level_pressure": {"chunks": (1, 3, 4)},
    }
    to_zarr(ds, f"s3://{bucket}/xarray.zarr", options, encoding=encoding)
    assert write_dataset(ds, f"s3://{bucket}/direct.zarr", options, encoding=encoding)

    fs = fsspec.filesystem("s3", **options)

    def objects(prefix: str) -> dict[str, bytes]:
        root = f"{bucket}/{prefix}"
        return {p[len(root) + 1 :]: fs.cat_file(p) for p in sorted(fs.find(root))}

    fs.invalidate_cache()
    assert objects("direct.zarr") == objects("xarray.zarr")
    assert "temperature/0.0.0.0" not in objects("direct.zarr")  # the all-NaN level's chunk
