"""Readers of upstream files and stores: each returns one cycle as a canonical dataset."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import xarray as xr

from weather_assets.ingest.convert import select_time, to_canonical


def read_grib(path: str, analysis_time: np.datetime64) -> xr.Dataset:
    """One analysis time of a GRIB file (all its hypercubes merged) as a canonical dataset."""
    import cfgrib  # imported here: eccodes is only needed for GRIB sources

    if not os.path.exists(path):
        raise FileNotFoundError(f"GRIB file {path} does not exist")
    try:
        parts = cfgrib.open_datasets(
            path, backend_kwargs={"indexpath": "", "errors": "raise"}, cache_geo_coords=True
        )
    except Exception as exc:  # eccodes raises many unrelated types for broken files
        raise ValueError(f"GRIB file {path} is corrupt or truncated: {exc}") from None
    if not parts:
        raise ValueError(f"GRIB file {path} is corrupt or truncated: it holds no GRIB message")
    merged = xr.merge(
        [p.drop_vars("valid_time", errors="ignore") for p in parts],
        compat="override",
        join="outer",
    )
    if "time" not in merged.dims and "time" in merged.coords:
        merged = merged.expand_dims("time")
    ds = to_canonical(merged, source=f"GRIB file {path}")
    out = select_time(ds, analysis_time, source=f"GRIB file {path}")
    try:
        return out.load()
    except Exception as exc:
        raise ValueError(f"GRIB file {path} is corrupt or truncated: {exc}") from None


def read_netcdf(path: str, analysis_time: np.datetime64) -> xr.Dataset:
    """One analysis time of a NetCDF file as a canonical dataset."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"NetCDF file {path} does not exist")
    try:
        raw = xr.open_dataset(path)
    except Exception as exc:
        raise ValueError(f"NetCDF file {path} cannot be read: {exc}") from None
    with raw:
        ds = to_canonical(raw, source=f"NetCDF file {path}")
        return select_time(ds, analysis_time, source=f"NetCDF file {path}").load()


def read_zarr(url: str, storage_options: dict[str, Any] | None = None) -> xr.Dataset:
    """A zarr store (any fsspec URL, consolidated metadata) as a canonical dataset."""
    try:
        raw = xr.open_zarr(url, consolidated=True, storage_options=storage_options or None)
    except (FileNotFoundError, KeyError) as exc:
        raise FileNotFoundError(
            f"zarr store {url} does not exist or is incomplete ({exc})"
        ) from None
    return to_canonical(raw, source=f"zarr store {url}").load()
