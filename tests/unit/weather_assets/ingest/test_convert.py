"""Conversion to the canonical dataset copies data only where it must change.

Already-canonical input (float32, levels and latitudes ascending, one time taken from many)
comes back as views of the input; float64 data, descending or shuffled levels and north-to-
south latitudes are still converted, with exactly the values a sort and an ``astype`` give.
"""

from __future__ import annotations

from datetime import datetime

import eccodes
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

from weather_assets.ingest.convert import (
    as_float32,
    ascending,
    select_time,
    subset_domain,
    to_canonical,
)
from weather_assets.ingest.readers import read_grib
from weather_assets.simulator import Grid, simulate_state

T0 = np.datetime64("2026-01-01T06:00", "ns")
GRID = Grid(lat_min=-10, lat_max=10, lon_min=0, lon_max=30, step=5.0)


def _state(levels=(250, 500, 850), times: int = 1) -> xr.Dataset:
    states = [
        simulate_state(T0 + np.timedelta64(6 * i, "h"), grid=GRID, levels=levels)
        for i in range(times)
    ]
    return xr.concat(states, "time") if times > 1 else states[0]


def _shares(out: xr.Dataset, ds: xr.Dataset) -> bool:
    return all(np.shares_memory(out[v].values, ds[v].values) for v in out.data_vars)


def test_canonical_input_is_not_copied():
    ds = _state()
    out = to_canonical(ds, source="sim")
    assert _shares(out, ds)
    for v in out.data_vars:
        assert out[v].dtype == np.float32 and out[v].dims == ds[v].dims
        np.testing.assert_array_equal(out[v].values, ds[v].values)


def test_select_time_takes_a_view_equal_to_the_label_selection():
    ds = _state(times=3)
    t = T0 + np.timedelta64(6, "h")
    out = select_time(ds, t, source="sim")
    assert _shares(out, ds)
    xr.testing.assert_identical(out, ds.sel(time=[t]))
    with pytest.raises(ValueError, match="no analysis for 2026-01-02T00:00"):
        select_time(ds, T0 + np.timedelta64(18, "h"), source="sim")


def test_subset_of_a_canonical_grid_is_a_view():
    ds = _state()
    out = subset_domain(
        ds,
        {"lon_min": 5, "lat_min": -5, "lon_max": 25, "lat_max": 5},
        {"dx": 5, "dy": 5, "units": "deg"},
        source="sim",
    )
    assert _shares(out, ds) and out.sizes["longitude"] == 5 and out.sizes["latitude"] == 3


def test_float64_is_converted():
    ds = _state().astype(np.float64)
    out = to_canonical(ds, source="sim")
    for v in out.data_vars:
        assert out[v].dtype == np.float32
        np.testing.assert_array_equal(out[v].values, ds[v].values.astype(np.float32))


def test_descending_levels_and_latitudes_are_sorted():
    ds = _state().isel(level=[2, 1, 0], latitude=slice(None, None, -1))
    assert list(ds["level"].values) == [850, 500, 250]
    out = to_canonical(ds, source="sim")
    assert list(out["level"].values) == [250, 500, 850]
    assert np.all(np.diff(out["latitude"].values) > 0)
    np.testing.assert_array_equal(
        out["temperature"].values, ds["temperature"].values[:, ::-1, ::-1, :]
    )


def test_shuffled_levels_are_sorted():
    ds = _state().isel(level=[1, 0, 2])
    assert list(ds["level"].values) == [500, 250, 850]
    out = to_canonical(ds, source="sim")
    assert list(out["level"].values) == [250, 500, 850]
    np.testing.assert_array_equal(
        out["geopotential"].values, ds["geopotential"].values[:, [1, 0, 2]]
    )


def test_skipped_astype_leaves_no_variable_encoding_like_astype_does(tmp_path):
    # A file's float32 variable carries its on-disk encoding; astype dropped it, so must
    # skipping astype (the store written from the result must not depend on the dtype read).
    path = tmp_path / "x.nc"
    _state().to_netcdf(path)
    with xr.open_dataset(path) as raw:
        assert raw["temperature"].encoding
        out = to_canonical(raw, source="x.nc")
        assert all(out[v].encoding == {} for v in out.data_vars)
        assert out["time"].encoding == raw["time"].encoding  # coordinates keep theirs
        assert as_float32(raw["temperature"]).encoding == {}
        assert raw["temperature"].encoding  # the input is untouched


def _reference(ds: xr.Dataset) -> xr.Dataset:
    """What to_canonical did before it skipped no-op copies: sortby, flip, astype."""
    ds = ds.assign_coords(level=ds["level"].values.astype(np.int64)).sortby("level")
    if ds["latitude"].values[0] > ds["latitude"].values[-1]:
        ds = ds.isel(latitude=slice(None, None, -1))
    return ds.astype(np.float32)


@settings(max_examples=40, deadline=None)
@given(
    order=st.permutations([50, 250, 500, 850, 1000]),
    dtype=st.sampled_from([np.float32, np.float64]),
    flip=st.booleans(),
)
def test_conversion_equals_sort_and_astype(order, dtype, flip):
    ref_levels = sorted(order)
    ds = _state(levels=ref_levels).isel(level=[ref_levels.index(x) for x in order])
    ds = ds.astype(dtype)
    if flip:
        ds = ds.isel(latitude=slice(None, None, -1))
    out = to_canonical(ds, source="sim")
    ref = _reference(ds)
    for v in out.data_vars:
        assert out[v].dtype == np.float32
        np.testing.assert_array_equal(out[v].values, ref[v].values)
    for c in ("level", "latitude", "longitude", "time"):
        np.testing.assert_array_equal(out[c].values, ref[c].values)


@settings(max_examples=40, deadline=None)
@given(values=st.lists(st.integers(0, 6), min_size=1, max_size=6))
def test_ascending_equals_sortby(values):
    ds = xr.Dataset(
        {"a": (("level",), np.arange(len(values), dtype=np.float32))}, coords={"level": values}
    )
    xr.testing.assert_identical(ascending(ds, "level"), ds.sortby("level"))


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 5), data=st.data())
def test_select_time_equals_label_selection(n, data):
    times = pd.date_range("2026-01-01", periods=n, freq="6h").values.astype("datetime64[ns]")
    ds = xr.Dataset({"a": (("time", "x"), np.ones((n, 2), np.float32))}, coords={"time": times})
    t = data.draw(st.sampled_from(list(times)))
    xr.testing.assert_identical(select_time(ds, t, source="s"), ds.sel(time=[t]))


def test_grib_decodes_into_float32_as_astype_of_float64_would(era5_grib):
    t = np.datetime64("2017-01-01T12:00", "ns")
    ds = read_grib(str(era5_grib), t, ensemble=True)
    assert all(ds[v].dtype == np.float32 for v in ds.data_vars)
    with open(era5_grib, "rb") as f:
        while (h := eccodes.codes_grib_new_from_file(f)) is not None:
            try:
                stamp = f"{eccodes.codes_get(h, 'dataDate')}{eccodes.codes_get(h, 'dataTime'):04d}"
                when = np.datetime64(datetime.strptime(stamp, "%Y%m%d%H%M"), "ns")
                if when != t:
                    continue
                name = {"z": "geopotential", "t": "temperature"}[eccodes.codes_get(h, "shortName")]
                ni, nj = eccodes.codes_get(h, "Ni"), eccodes.codes_get(h, "Nj")
                field = eccodes.codes_get_values(h).astype(np.float64).reshape(nj, ni)
                got = (
                    ds[name]
                    .sel(
                        member=eccodes.codes_get(h, "number"),
                        level=eccodes.codes_get(h, "level"),
                    )
                    .values[0, ::-1]
                )  # GRIB runs north to south
                np.testing.assert_array_equal(got, field.astype(np.float32))
            finally:
                eccodes.codes_release(h)
