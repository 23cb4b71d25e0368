"""Verification regions and masks: plain xarray functions used by the scores and the scorecard.

A :class:`Region` is a latitude band and a longitude range, both closed intervals in degrees.
Named regions (:data:`REGIONS`, the WeatherBench 2 conventions):

| name | latitudes | longitudes |
| --- | --- | --- |
| global | 90S-90N | all |
| tropics | 20S-20N | all |
| northern_extratropics | 20N-90N | all |
| southern_extratropics | 90S-20S | all |

:func:`bbox` makes a region from a bounding box ``(lon_min, lat_min, lon_max, lat_max)``.
Longitudes may be given in ``[0, 360)`` or ``[-180, 180)`` and the grid may use either
convention: both are compared modulo 360. A box with ``lon_min > lon_max`` after that (say
``170, ..., -170`` or ``350, ..., 10``) crosses the dateline (or the Greenwich meridian on a
``-180..180`` grid, or 0/360 on a ``0..360`` one) and holds the longitudes ``>= lon_min`` or
``<= lon_max``. A box spanning 360 degrees or more (``-180..180``, ``0..360``) holds every
longitude.

:func:`region_mask` gives a boolean mask over a dataset's spatial dims, from its 1-D
``latitude``/``longitude`` dims or from 2-D ``latitude``/``longitude`` coordinates on a
projected ``(y, x)`` grid. :func:`boundary_mask` is the limited-area (LAM) interior: False within
``width`` grid points of any edge, or within ``width_km`` kilometres of it (distance along the
grid's axes: great-circle on a lat-lon grid, ``R * dlat`` and ``R * cos(lat) * dlon`` with
R = 6371.0 km; projected ``x``/``y`` coordinates in metres unless their ``units`` say km).
:func:`region_weights` combines the cos-latitude cell-area weights of
``metrics.latitude_weights`` (ones on a projected grid) with both masks: zero outside, so a
weighted mean over the whole grid is the mean over the region. Select with :func:`select`
(``obj.where(mask)``), to also keep NaN outside the region from reaching the mean.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import xarray as xr

from weather_assets.verification.metrics import latitude_weights

EARTH_RADIUS_KM = 6371.0
KM_PER_DEGREE = EARTH_RADIUS_KM * math.pi / 180


@dataclass(frozen=True)
class Region:
    """Closed latitude band ``[lat_min, lat_max]`` and longitude range ``[lon_min, lon_max]``."""

    name: str
    lat_min: float = -90.0
    lat_max: float = 90.0
    lon_min: float = 0.0
    lon_max: float = 360.0

    def __post_init__(self) -> None:
        if not -90 <= self.lat_min <= self.lat_max <= 90:
            raise ValueError(
                f"region {self.name!r}: need -90 <= lat_min <= lat_max <= 90, "
                f"got {self.lat_min}, {self.lat_max}"
            )
        if not (np.isfinite(self.lon_min) and np.isfinite(self.lon_max)):
            raise ValueError(f"region {self.name!r}: longitudes must be finite")

    @property
    def all_longitudes(self) -> bool:
        return self.lon_max - self.lon_min >= 360

    def longitude_mask(self, lon: np.ndarray | xr.DataArray):
        """True where ``lon`` (any convention) lies in ``[lon_min, lon_max]`` modulo 360."""
        if self.all_longitudes:
            return lon == lon  # True everywhere (False for NaN)
        low, high = self.lon_min % 360, self.lon_max % 360
        wrapped = lon % 360
        if low <= high:
            return (wrapped >= low) & (wrapped <= high)
        return (wrapped >= low) | (wrapped <= high)  # crosses 0/360 in the wrapped frame

    def latitude_mask(self, lat: np.ndarray | xr.DataArray):
        return (lat >= self.lat_min) & (lat <= self.lat_max)


GLOBAL = Region("global")
TROPICS = Region("tropics", -20.0, 20.0)
NORTHERN_EXTRATROPICS = Region("northern_extratropics", 20.0, 90.0)
SOUTHERN_EXTRATROPICS = Region("southern_extratropics", -90.0, -20.0)
REGIONS: dict[str, Region] = {
    r.name: r for r in (GLOBAL, TROPICS, NORTHERN_EXTRATROPICS, SOUTHERN_EXTRATROPICS)
}
DEFAULT_REGIONS: tuple[str, ...] = tuple(REGIONS)


def bbox(name: str, lon_min: float, lat_min: float, lon_max: float, lat_max: float) -> Region:
    """A region from a bounding box (lon_min, lat_min, lon_max, lat_max), in degrees."""
    return Region(name, float(lat_min), float(lat_max), float(lon_min), float(lon_max))


def get_region(region: str | Region | Iterable[float], name: str | None = None) -> Region:
    """A :class:`Region` from a name in :data:`REGIONS`, a Region, or a 4-number bounding box."""
    if isinstance(region, Region):
        return region
    if isinstance(region, str):
        try:
            return REGIONS[region]
        except KeyError:
            raise ValueError(f"unknown region {region!r}; named regions: {list(REGIONS)}") from None
    box = [float(v) for v in region]
    if len(box) != 4:
        raise ValueError(f"a bounding box is (lon_min, lat_min, lon_max, lat_max), got {box}")
    return bbox(name or "bbox", *box)


def _lat_lon(obj: xr.Dataset | xr.DataArray) -> tuple[xr.DataArray, xr.DataArray]:
    if "latitude" not in obj.coords or "longitude" not in obj.coords:
        raise ValueError(
            "a region mask needs latitude and longitude coordinates (1-D dims or 2-D on y/x); "
            f"the data has coordinates {list(obj.coords)}"
        )
    return obj["latitude"], obj["longitude"]


def region_mask(obj: xr.Dataset | xr.DataArray, region: str | Region) -> xr.DataArray:
    """Boolean mask over the spatial dims of ``obj``: True inside ``region``."""
    region = get_region(region)
    lat, lon = _lat_lon(obj)
    mask = region.latitude_mask(lat) & region.longitude_mask(lon)  # broadcasts 1-D dims
    return mask.rename(f"region_{region.name}").assign_attrs(region=region.name)


def _spatial_dims(obj: xr.Dataset | xr.DataArray) -> tuple[str, str]:
    for dims in (("y", "x"), ("latitude", "longitude")):
        if all(d in obj.dims for d in dims):
            return dims
    raise ValueError(f"no spatial dims (y/x or latitude/longitude) in {list(obj.dims)}")


def _edge_distance_km(obj: xr.Dataset | xr.DataArray, dim: str) -> xr.DataArray:
    """Distance (km) from each point to the nearer edge of the grid along ``dim``."""
    values = np.asarray(obj[dim].values, dtype=np.float64)
    if dim == "longitude":
        values = np.rad2deg(np.unwrap(np.deg2rad(values)))  # continuous across the dateline
    steps = np.minimum(np.abs(values - values[0]), np.abs(values[-1] - values))
    distance = xr.DataArray(steps, dims=dim, coords={dim: obj[dim]})
    if dim in ("latitude", "longitude"):
        distance = distance * KM_PER_DEGREE
        if dim == "longitude":
            distance = distance * np.cos(np.deg2rad(obj["latitude"].astype(np.float64)))
        return distance
    units = str(obj[dim].attrs.get("units", "m")).strip()
    return distance * (1.0 if units in ("km", "kilometre", "kilometer") else 1e-3)


def boundary_mask(
    obj: xr.Dataset | xr.DataArray,
    width: int | None = None,
    width_km: float | None = None,
    dims: tuple[str, str] | None = None,
) -> xr.DataArray:
    """True in the interior of a limited-area grid, False in its boundary zone.

    ``width``: the number of grid points excluded at each of the four edges (0 keeps all).
    ``width_km``: exclude the points closer than this to an edge (module docstring).
    Exactly one of them. ``dims`` default to ``(y, x)``, else ``(latitude, longitude)``.
    """
    if (width is None) == (width_km is None):
        raise ValueError("give exactly one of width (grid points) and width_km")
    dims = dims or _spatial_dims(obj)
    masks = []
    for dim in dims:
        size = obj.sizes[dim]
        if width is not None:
            if width < 0:
                raise ValueError(f"boundary width must be >= 0, got {width}")
            index = xr.DataArray(np.arange(size), dims=dim)
            inside = (index >= width) & (index < size - width)
            masks.append(inside.assign_coords({dim: obj[dim]}) if dim in obj.coords else inside)
        else:
            if width_km < 0:
                raise ValueError(f"boundary width must be >= 0 km, got {width_km}")
            if dim not in obj.coords:
                raise ValueError(f"width_km needs a coordinate on {dim!r}")
            distance = _edge_distance_km(obj, dim)
            masks.append(distance >= width_km if width_km > 0 else distance == distance)
    mask = masks[0] & masks[1]
    return mask.transpose(*[d for d in obj.dims if d in mask.dims]).rename("interior")


def region_weights(
    obj: xr.Dataset | xr.DataArray,
    region: str | Region = "global",
    boundary: xr.DataArray | None = None,
) -> xr.DataArray:
    """Cell-area weights (mean 1 over the grid) restricted to ``region`` (and ``boundary``).

    Latitude weights come from ``metrics.latitude_weights`` on a 1-D ``latitude`` dim; a
    projected grid is equal-area (ones). Points outside the region or the LAM interior get 0.
    """
    mask = region_mask(obj, region)
    if boundary is not None:
        mask = mask & boundary
    if "latitude" in obj.dims and obj["latitude"].ndim == 1:
        base = xr.DataArray(
            latitude_weights(obj["latitude"].values),
            dims=("latitude",),
            coords={"latitude": obj["latitude"]},
        )
    else:
        base = xr.ones_like(mask, dtype=np.float64)
    weights = (base * mask).astype(np.float64)
    order = [d for d in obj.dims if d in weights.dims]
    return (
        weights.transpose(*order)
        .rename("region_weights")
        .assign_attrs(region=get_region(region).name)
    )


def select(obj, region: str | Region = "global", boundary: xr.DataArray | None = None):
    """``obj`` with NaN outside ``region`` (and outside ``boundary``, if given)."""
    mask = region_mask(obj, region)
    if boundary is not None:
        mask = mask & boundary
    return obj.where(mask)
