"""Verification regions, bounding boxes across the dateline, LAM boundary masks, weights."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from weather_assets.verification import metrics
from weather_assets.verification import regions as R


def grid(step: float = 1.0, lon0: float = 0.0) -> xr.Dataset:
    lat = np.arange(-90, 90 + step / 2, step)
    lon = np.arange(lon0, lon0 + 360, step)
    return xr.Dataset(coords={"latitude": lat, "longitude": lon})


@pytest.mark.parametrize("lon0", [0.0, -180.0])
def test_named_region_point_counts(lon0):
    ds = grid(1.0, lon0)  # 181 x 360
    counts = {name: int(R.region_mask(ds, name).sum()) for name in R.REGIONS}
    assert counts == {
        "global": 181 * 360,
        "tropics": 41 * 360,  # -20..20 inclusive
        "northern_extratropics": 71 * 360,  # 20..90
        "southern_extratropics": 71 * 360,
    }
    assert R.region_mask(ds, "tropics").dims == ("latitude", "longitude")


@pytest.mark.parametrize("lon0", [0.0, -180.0])
@pytest.mark.parametrize(
    "box, n_lon",
    [
        ((170, -10, -170, 10), 21),  # crosses the dateline, -180..180 notation
        ((170, -10, 190, 10), 21),  # the same box, 0..360 notation
        ((-10, -10, 10, 10), 21),  # crosses Greenwich
        ((350, -10, 10, 10), 21),  # the same, 0..360
        ((0, -10, 30, 10), 31),
        ((-180, -10, 180, 10), 360),  # whole circle
        ((0, -10, 360, 10), 360),
    ],
)
def test_bbox_in_both_conventions(lon0, box, n_lon):
    ds = grid(1.0, lon0)
    mask = R.region_mask(ds, R.bbox("box", *box))
    assert int(mask.sum()) == 21 * n_lon


def test_dateline_box_points():
    ds = grid(1.0, -180.0)
    mask = R.region_mask(ds, R.bbox("pacific", 170, 0, -170, 0)).sel(latitude=0)
    lons = ds.longitude.values[mask.values]
    assert sorted(lons) == sorted([*range(170, 180), *range(-180, -169)])


def test_get_region_forms():
    assert R.get_region("tropics") is R.TROPICS
    box = R.get_region((0, 1, 2, 3), name="b")
    assert (box.lon_min, box.lat_min, box.lon_max, box.lat_max) == (0, 1, 2, 3)
    with pytest.raises(ValueError, match="unknown region"):
        R.get_region("mars")
    with pytest.raises(ValueError, match="lat_min"):
        R.bbox("bad", 0, 30, 10, 20)


def lam(ny: int = 20, nx: int = 30, dx_m: float = 2500.0) -> xr.Dataset:
    y = np.arange(ny) * dx_m
    x = np.arange(nx) * dx_m
    lat2d, lon2d = np.meshgrid(np.linspace(50, 60, ny), np.linspace(-5, 15, nx), indexing="ij")
    return xr.Dataset(
        {"t": (("y", "x"), np.ones((ny, nx)))},
        coords={
            "y": ("y", y, {"units": "m"}),
            "x": ("x", x, {"units": "m"}),
            "latitude": (("y", "x"), lat2d),
            "longitude": (("y", "x"), lon2d),
        },
    )


@pytest.mark.parametrize("width", [0, 1, 3, 5])
def test_lam_boundary_points(width):
    ds = lam()
    mask = R.boundary_mask(ds, width=width)
    assert mask.dims == ("y", "x")
    assert int(mask.sum()) == (20 - 2 * width) * (30 - 2 * width)
    if width:
        assert not mask.isel(y=width - 1).any() and not mask.isel(x=-width).any()
        assert bool(mask.isel(y=width, x=width))


def test_lam_boundary_km():
    ds = lam(dx_m=2500.0)
    # 10 km at 2.5 km spacing: points 0..3 (0, 2.5, 5, 7.5 km) are excluded, 10 km is kept.
    mask = R.boundary_mask(ds, width_km=10.0)
    assert int(mask.sum()) == (20 - 8) * (30 - 8)
    assert int(R.boundary_mask(ds, width_km=0).sum()) == 600
    ds_km = ds.assign_coords(
        x=("x", ds.x.values / 1000, {"units": "km"}), y=("y", ds.y.values / 1000, {"units": "km"})
    )
    assert (R.boundary_mask(ds_km, width_km=10.0) == mask).all()
    with pytest.raises(ValueError, match="exactly one"):
        R.boundary_mask(ds, width=1, width_km=1.0)


def test_regional_latlon_boundary_km():
    # A regional lat-lon grid at 0.5 degrees (55.6 km in latitude): 100 km excludes 2 rows.
    ds = xr.Dataset(
        coords={"latitude": np.arange(40, 60.01, 0.5), "longitude": np.arange(0, 20.01, 0.5)}
    )
    mask = R.boundary_mask(ds, width_km=100.0)
    assert mask.dims == ("latitude", "longitude")
    assert not mask.sel(latitude=40.5).any() and mask.sel(latitude=41, longitude=10).item()
    # In longitude, 0.5 degrees are 55.6 cos(lat) km: at 58N 29.5 km, so 4 columns go.
    row = mask.sel(latitude=58)
    assert int((~row).sum()) == 8


def test_lam_region_mask_uses_2d_coordinates():
    ds = lam()
    mask = R.region_mask(ds, R.bbox("west", -10, 40, 0, 70))
    assert mask.dims == ("y", "x")
    assert int(mask.sum()) == int((ds.longitude <= 0).sum())


def test_region_weights_are_cos_latitude_restricted():
    ds = grid(1.0)
    w = R.region_weights(ds, "tropics")
    full = metrics.latitude_weights(ds.latitude.values)
    assert w.dims == ("latitude", "longitude")
    assert (w.where(np.abs(ds.latitude) > 20, 0) == 0).all()
    np.testing.assert_allclose(w.sel(latitude=10).values, full[100])
    # A weighted mean with region weights is the mean over the region.
    field = xr.DataArray(
        np.broadcast_to(ds.latitude.values[:, None], (181, 360)),
        coords=ds.coords,
        dims=("latitude", "longitude"),
    )
    inside = metrics.mse(field, field * 0, weights=w)
    expected = np.average(ds.latitude.values[70:111] ** 2, weights=full[70:111])
    assert float(inside) == pytest.approx(expected)
    assert R.region_weights(lam(), "global", R.boundary_mask(lam(), width=2)).sum() == 16 * 26
    assert int(R.select(ds.assign(f=field), "tropics")["f"].notnull().sum()) == 41 * 360
