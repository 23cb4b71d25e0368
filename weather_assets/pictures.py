"""Pictures of forecasts: a small PNG map of a few headline fields at a few lead times.

:func:`forecast_map_png` draws a grid of panels, one row per headline field (z500, t850, t2m,
msl, whichever the forecast has) and one column per lead time (+24h, +72h, +120h or the
nearest the forecast has), with one colour scale per row shared by its leads, a colour bar
with units and plain latitude/longitude axes. Coastlines come from the land mask that the
``global-land-mask`` package ships inside its wheel (GLOBE, 1 km), point-sampled to 0.1° once
and kept in the user's cache directory; nothing is downloaded at run time, and without the
package the maps simply have no coastlines. :func:`forecast_map_markdown` embeds the PNG as markdown for a
``dg.MetadataValue.md`` entry; :func:`png_markdown` embeds any PNG.

Only the drawn slices are read: the forecast is indexed (time 0, the chosen leads, member 0,
the level) before any value is loaded, so a lazily opened zarr store reads one chunk per
panel. Matplotlib draws on the Agg canvas directly (no pyplot, no display, no global state).
"""

from __future__ import annotations

import base64
import functools
import importlib.util
import io
import os
import tempfile
import zipfile
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xarray as xr

from weather_assets.canonical import VARIABLES, feature_name

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# Rows tried in this order; the first MAX_FIELDS the forecast has are drawn.
HEADLINE_FIELDS: tuple[str, ...] = (
    "geopotential_500hPa",
    "temperature_850hPa",
    "2m_temperature",
    "mean_sea_level_pressure",
)
HEADLINE_LEADS: tuple[timedelta, ...] = (
    timedelta(hours=24),
    timedelta(hours=72),
    timedelta(hours=120),
)
MAX_FIELDS = 3
DPI = 80
PANEL_WIDTH_IN = 2.8  # one panel's width; its height follows the domain's aspect

_SHORT_NAMES = {
    "geopotential": "z",
    "temperature": "t",
    "u_component_of_wind": "u",
    "v_component_of_wind": "v",
    "specific_humidity": "q",
    "2m_temperature": "t2m",
    "mean_sea_level_pressure": "msl",
    "10m_u_component_of_wind": "u10",
    "10m_v_component_of_wind": "v10",
}
# (variable, stored units) -> (factor, displayed units): what forecasters read on a chart.
_DISPLAY_UNITS = {
    ("geopotential", "m2 s-2"): (1.0 / 98.0665, "dam"),
    ("mean_sea_level_pressure", "Pa"): (0.01, "hPa"),
}
_DIVERGING = {
    "u_component_of_wind",
    "v_component_of_wind",
    "10m_u_component_of_wind",
    "10m_v_component_of_wind",
}
_DEGREE_STEPS = [1, 1.5, 2, 2.5, 3, 4.5, 5, 6, 9, 10]  # ticks at 30°, 45°, 60°, 90° …
_COLORMAPS = {
    "temperature": "RdYlBu_r",
    "2m_temperature": "RdYlBu_r",
    "specific_humidity": "YlGnBu",
}


def png_markdown(png: bytes, alt: str = "scorecard") -> str:
    """Markdown embedding a PNG inline (a base64 data URI), for ``dg.MetadataValue.md``."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode('ascii')})"


# --- what to draw -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Field:
    feature: str
    variable: str
    level_index: int | None
    level: float | None


def _dataset_fields(ds: xr.Dataset) -> dict[str, _Field]:
    """Every drawable channel of ``ds`` by feature name (``temperature_850hPa``, ``msl`` …)."""
    out: dict[str, _Field] = {}
    for name, da in ds.data_vars.items():
        var = str(name)
        if not _spatial_dims(da):
            continue
        if "level" in da.dims:
            for k, lev in enumerate(np.atleast_1d(da["level"].values)):
                feature = feature_name(var, float(lev))
                out[feature] = _Field(feature, var, k, float(lev))
        else:
            out[var] = _Field(var, var, None, None)
    return out


def _choose_fields(ds: xr.Dataset, fields: Sequence[str] | None, max_fields: int) -> list[_Field]:
    available = _dataset_fields(ds)
    if not available:
        raise ValueError("the forecast has no (latitude, longitude) field to draw")
    if fields is None:
        chosen = [available[f] for f in HEADLINE_FIELDS if f in available]
        if not chosen:  # no headline field: the forecast's own first channels
            chosen = list(available.values())
        return chosen[:max_fields]
    chosen = [available[f] for f in fields if f in available]
    if not chosen:
        raise ValueError(
            f"none of the fields {list(fields)} is in the forecast; it has {sorted(available)}"
        )
    return chosen


def _choose_leads(ds: xr.Dataset, leads: Sequence[Any] | None) -> list[int]:
    """Indices along ``lead_time`` nearest to the wanted leads, ascending, without repeats."""
    if "lead_time" not in ds.dims:
        raise ValueError("the forecast has no lead_time dimension")
    have = pd.to_timedelta(np.atleast_1d(ds["lead_time"].values))
    wanted = [pd.Timedelta(x) for x in (HEADLINE_LEADS if leads is None else leads)]
    if not wanted:
        raise ValueError("no lead times asked for")
    seconds = np.asarray(have.total_seconds())
    picked = {int(np.argmin(np.abs(seconds - w.total_seconds()))) for w in wanted}
    return sorted(picked, key=lambda k: seconds[k])


def short_name(feature: str, variable: str | None = None, level: float | None = None) -> str:
    """Chart name of a channel: ``z500``, ``t850``, ``t2m``, ``msl`` (else the feature name)."""
    var = variable if variable is not None else feature
    short = _SHORT_NAMES.get(var)
    if short is None:
        return feature
    if level is None:
        return short
    return f"{short}{int(level) if float(level).is_integer() else level}"


def lead_label(lead: Any) -> str:
    """``+24h`` (whole hours), else ``+90min``."""
    seconds = pd.Timedelta(lead).total_seconds()
    if seconds % 3600 == 0:
        return f"+{int(seconds // 3600)}h"
    return f"+{seconds / 60:g}min"


# --- the grid -----------------------------------------------------------------------------


def _spatial_dims(da: xr.DataArray) -> tuple[Hashable, Hashable] | None:
    """(latitude dim, longitude dim): 1-D ``latitude``/``longitude`` or the dims of 2-D ones."""
    if "latitude" in da.dims and "longitude" in da.dims:
        return "latitude", "longitude"
    lat, lon = da.coords.get("latitude"), da.coords.get("longitude")
    if lat is not None and lon is not None and lat.ndim == 2 and lat.dims == lon.dims:
        if all(d in da.dims for d in lat.dims):
            return lat.dims[0], lat.dims[1]
    return None


def _contiguous_longitudes(lon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(order, longitudes along the axis): sorted, unwrapped across 0°/360° or ±180°.

    A regional grid stored in 0..360 that crosses Greenwich (350 … 359, 0 … 10) becomes
    -10 … 10; a global grid keeps its own convention.
    """
    order = np.argsort(lon, kind="stable")
    s = lon[order].astype(np.float64)
    if s.size < 2:
        return order, s
    gaps = np.diff(np.r_[s, s[0] + 360.0])  # the last one wraps around the globe
    k = int(np.argmax(gaps))
    if k == s.size - 1 or gaps[-1] >= gaps[k] - 1e-6:
        return order, s
    order = np.r_[order[k + 1 :], order[: k + 1]]
    s = np.r_[s[k + 1 :], s[: k + 1] + 360.0]
    if s[0] >= 180.0:
        s = s - 360.0
    return order, s


def _regular_step(values: np.ndarray) -> float | None:
    """The spacing of an evenly spaced ascending axis, else None (one point: 1°)."""
    if values.size < 2:
        return 1.0
    steps = np.diff(values)
    step = float(np.median(steps))
    if step > 0 and np.allclose(steps, step, rtol=1e-3, atol=1e-6):
        return step
    return None


@dataclass
class _Grid:
    """Where a field's values go: a regular image, 1-D axes or 2-D coordinates."""

    lon: np.ndarray  # 1-D (lon,) or 2-D (y, x)
    lat: np.ndarray
    lat_order: np.ndarray | None  # reorder rows/columns of 1-D grids (None for 2-D)
    lon_order: np.ndarray | None
    extent: tuple[float, float, float, float]  # lon0, lon1, lat0, lat1 (cell edges)
    regular: bool

    def arrange(self, values: np.ndarray) -> np.ndarray:
        if self.lat_order is None or self.lon_order is None:
            return values
        return values[np.ix_(self.lat_order, self.lon_order)]


def _grid_of(da: xr.DataArray, dims: tuple[Hashable, Hashable]) -> _Grid:
    if dims == ("latitude", "longitude"):
        lat_raw = np.asarray(da["latitude"].values, dtype=np.float64)
        lon_raw = np.asarray(da["longitude"].values, dtype=np.float64)
        lat_order = np.argsort(lat_raw, kind="stable")
        lat = lat_raw[lat_order]
        lon_order, lon = _contiguous_longitudes(lon_raw)
        dlat, dlon = _regular_step(lat), _regular_step(lon)
        half_lat = (dlat if dlat is not None else float(np.median(np.diff(lat)))) / 2
        half_lon = (dlon if dlon is not None else float(np.median(np.diff(lon)))) / 2
        extent = (
            float(lon[0] - half_lon),
            float(lon[-1] + half_lon),
            max(float(lat[0] - half_lat), -90.0),
            min(float(lat[-1] + half_lat), 90.0),
        )
        regular = dlat is not None and dlon is not None
        return _Grid(lon, lat, lat_order, lon_order, extent, regular)
    lat2 = np.asarray(da["latitude"].transpose(*dims).values, dtype=np.float64)
    lon2 = np.asarray(da["longitude"].transpose(*dims).values, dtype=np.float64)
    extent = (
        float(np.nanmin(lon2)),
        float(np.nanmax(lon2)),
        float(np.nanmin(lat2)),
        float(np.nanmax(lat2)),
    )
    return _Grid(lon2, lat2, None, None, extent, False)


def _panels(
    ds: xr.Dataset, field: _Field, lead_indices: Sequence[int]
) -> tuple[xr.DataArray, list[np.ndarray], tuple[Hashable, Hashable]]:
    """The field at the chosen leads, control member, first time: one load of just those."""
    da = ds[field.variable]
    dims = _spatial_dims(da)
    assert dims is not None  # _dataset_fields only keeps fields with spatial dims
    index: dict[Hashable, Any] = {"lead_time": list(lead_indices)}
    if field.level_index is not None:
        index["level"] = field.level_index
    if "member" in da.dims:
        members = np.atleast_1d(da["member"].values)
        control = np.flatnonzero(members == 0)
        index["member"] = int(control[0]) if control.size else 0
    for dim in da.dims:  # time and anything else unexpected: the first entry
        if dim not in index and dim not in dims:
            index[dim] = 0
    sub = da.isel(index).transpose("lead_time", *dims)
    values = np.asarray(sub.values, dtype=np.float64)  # the only read of the data
    return sub, list(values), dims


# --- coastlines ---------------------------------------------------------------------------

_MASK_STEP = 12  # of the GLOBE mask's 1/120°: 0.1°


def _mask_cache_dir() -> Path:
    """Where the downsampled land mask is kept between processes (``$XDG_CACHE_HOME/wxplat``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "wxplat"


@functools.lru_cache(maxsize=1)
def _ocean_mask() -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(ocean (lat, lon) bool at 0.1°, lat descending, lon -180..180) from global-land-mask.

    The package's own import decompresses its whole 1 km mask (930 MB); this streams the
    bundled ``.npz`` instead and keeps every 12th row and column (6 MB, about 0.7-1.1 s).
    Every materialization runs in its own process, so the result is also kept on disk
    (``_mask_cache_dir``, named by the package file's size and mtime, written atomically;
    reading it back is milliseconds). None when the package is not installed or its file
    is not as expected.
    """
    spec = importlib.util.find_spec("global_land_mask")  # finds it without importing it
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "globe_combined_mask_compressed.npz"
    try:
        info = path.stat()
    except OSError:
        return None
    cached = _mask_cache_dir() / f"ocean_{info.st_size}_{info.st_mtime_ns}_{_MASK_STEP}.npz"
    try:
        with np.load(cached) as npz:
            return npz["ocean"], npz["lat"], npz["lon"]
    except (OSError, KeyError, ValueError):
        pass
    mask = _read_ocean_mask(path)
    if mask is not None:
        _write_cache(cached, ocean=mask[0], lat=mask[1], lon=mask[2])
    return mask


def _read_ocean_mask(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The bundled mask at ``path``, every ``_MASK_STEP``-th row and column, streamed."""
    try:
        with np.load(path) as npz:
            lat = np.asarray(npz["lat"], dtype=np.float64)
            lon = np.asarray(npz["lon"], dtype=np.float64)
        with zipfile.ZipFile(path) as archive, archive.open("mask.npy") as fh:
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
            else:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
            if fortran or dtype != np.dtype(bool) or shape != (lat.size, lon.size):
                return None
            rows, cols = shape
            keep = []
            for _ in range(0, rows, _MASK_STEP):
                block = fh.read(cols * min(_MASK_STEP, rows - len(keep) * _MASK_STEP))
                keep.append(np.frombuffer(block[:cols], dtype=bool)[::_MASK_STEP])
        ocean = np.array(keep)
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None
    return ocean, lat[::_MASK_STEP], lon[::_MASK_STEP]


def _write_cache(target: Path, **arrays: np.ndarray) -> None:
    """Write ``arrays`` as ``target`` (.npz) atomically; a cache that cannot be written is skipped."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp.", suffix=".npz", dir=target.parent)
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)
        os.replace(tmp, target)
    except OSError:
        return


def coastlines_available() -> bool:
    """Whether maps get coastlines (the bundled land mask is installed and readable)."""
    return _ocean_mask() is not None


def coastline_segments(
    extent: tuple[float, float, float, float], *, max_points: int = 480
) -> list[np.ndarray]:
    """Coastlines inside ``extent`` (lon0, lon1, lat0, lat1) as (n, 2) lon/lat polylines.

    Longitudes in the extent's own convention (0..360, -180..180 or unwrapped past either);
    the land mask is sampled on at most ``max_points`` per axis and contoured at 1/2.
    An empty list without the land mask.
    """
    mask = _ocean_mask()
    if mask is None:
        return []
    import contourpy  # matplotlib's contouring library

    ocean, mlat, mlon = mask
    lon0, lon1, lat0, lat1 = extent
    lat0, lat1 = max(lat0, -90.0), min(lat1, 90.0)
    if not (lon1 > lon0 and lat1 > lat0):
        return []
    step = abs(float(mlon[1] - mlon[0]))
    nx = int(np.clip((lon1 - lon0) / step + 1, 2, max_points))
    ny = int(np.clip((lat1 - lat0) / step + 1, 2, max_points))
    lons = np.linspace(lon0, lon1, nx)
    lats = np.linspace(lat0, lat1, ny)
    wrapped = (lons + 180.0) % 360.0 - 180.0
    i = np.clip(np.rint((lats - mlat[0]) / (mlat[1] - mlat[0])).astype(int), 0, mlat.size - 1)
    j = np.rint((wrapped - mlon[0]) / (mlon[1] - mlon[0])).astype(int) % mlon.size
    land = (~ocean[np.ix_(i, j)]).astype(np.float64)
    if land.min() == land.max():
        return []
    generator = contourpy.contour_generator(lons, lats, land, line_type=contourpy.LineType.Separate)
    return [np.asarray(line) for line in generator.lines(0.5) if len(line) > 1]


# --- drawing ------------------------------------------------------------------------------


def _lon_label(value: float, _pos: Any = None) -> str:
    v = (value + 180.0) % 360.0 - 180.0
    if abs(v) < 1e-9 or abs(abs(v) - 180.0) < 1e-9:
        return f"{abs(v):g}°"
    return f"{abs(v):g}°{'E' if v > 0 else 'W'}"


def _lat_label(value: float, _pos: Any = None) -> str:
    if abs(value) < 1e-9:
        return "0°"
    return f"{abs(value):g}°{'N' if value > 0 else 'S'}"


def _display(field: _Field, units: str | None) -> tuple[float, str]:
    factor, shown = _DISPLAY_UNITS.get((field.variable, units or ""), (1.0, units or ""))
    return factor, shown


def _norm_and_cmap(values: np.ndarray, variable: str) -> tuple[Any, Any, np.ndarray]:
    import matplotlib as mpl
    from matplotlib.colors import BoundaryNorm
    from matplotlib.ticker import MaxNLocator

    finite = values[np.isfinite(values)]
    if finite.size:
        lo, hi = (float(v) for v in np.percentile(finite, [1.0, 99.0]))
    else:
        lo, hi = 0.0, 1.0
    if variable in _DIVERGING:
        hi = max(abs(lo), abs(hi), 1e-12)
        lo = -hi
    if not hi > lo:
        lo, hi = lo - 0.5 * max(abs(lo), 1.0), hi + 0.5 * max(abs(hi), 1.0)
    levels = MaxNLocator(nbins=12).tick_values(lo, hi)
    name = "RdBu_r" if variable in _DIVERGING else _COLORMAPS.get(variable, "viridis")
    cmap = mpl.colormaps[name].with_extremes(bad="0.8")
    norm = BoundaryNorm(levels, ncolors=cmap.N, extend="both")
    return norm, cmap, levels


def _aspect(extent: tuple[float, float, float, float]) -> float:
    """Height / width of a panel: equirectangular, squeezed by cos(latitude) in the middle."""
    lon0, lon1, lat0, lat1 = extent
    mid = np.deg2rad((lat0 + lat1) / 2)
    ratio = (lat1 - lat0) / max((lon1 - lon0) * max(float(np.cos(mid)), 0.2), 1e-9)
    return float(np.clip(ratio, 0.3, 1.2))


LeadLike = timedelta | pd.Timedelta | np.timedelta64 | str


def forecast_map_figure(
    forecast: xr.Dataset,
    *,
    fields: Sequence[str] | None = None,
    leads: Sequence[LeadLike] | None = None,
    title: str | None = None,
    max_fields: int = MAX_FIELDS,
    coastlines: bool = True,
    dpi: int = DPI,
) -> Figure:
    """The map as a matplotlib ``Figure`` on an Agg canvas (see :func:`forecast_map_png`).

    One axes per panel, titled ``z500 +24h``, plus one colour bar per row.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.collections import LineCollection
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    chosen = _choose_fields(forecast, fields, max_fields)
    lead_indices = _choose_leads(forecast, leads)
    lead_values = np.atleast_1d(forecast["lead_time"].values)

    rows = []
    for field in chosen:
        sub, panels, dims = _panels(forecast, field, lead_indices)
        units = sub.attrs.get("units") or (
            VARIABLES[field.variable].units if field.variable in VARIABLES else None
        )
        factor, shown_units = _display(field, units)
        grid = _grid_of(sub, dims)
        rows.append((field, [grid.arrange(p) * factor for p in panels], grid, shown_units))

    extents = [grid.extent for _, _, grid, _ in rows]
    extent = (
        min(e[0] for e in extents),
        max(e[1] for e in extents),
        min(e[2] for e in extents),
        max(e[3] for e in extents),
    )
    coast = coastline_segments(extent) if coastlines else []

    n_rows, n_cols = len(rows), len(lead_indices)
    panel_w = PANEL_WIDTH_IN
    panel_h = panel_w * _aspect(extent)
    left, gap_x, bar_gap, bar_w, right = 0.5, 0.12, 0.1, 0.12, 0.75
    top, title_h, bottom = 0.4, 0.22, 0.3
    width = left + n_cols * panel_w + (n_cols - 1) * gap_x + bar_gap + bar_w + right
    height = top + n_rows * (title_h + panel_h) + bottom
    fig = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(fig)
    if title is None:
        title = "Forecast"
        if "time" in forecast.coords and forecast["time"].size:
            t0 = pd.Timestamp(np.atleast_1d(forecast["time"].values)[0])
            title = f"Forecast from {t0:%Y-%m-%d %H:%M} UTC"
    fig.suptitle(title, y=1 - 0.08 / height, va="top", fontsize=10)

    for r, (field, panels, grid, units) in enumerate(rows):
        norm, cmap, levels = _norm_and_cmap(np.stack(panels), field.variable)
        y = 1 - (top + r * (title_h + panel_h) + title_h + panel_h) / height
        image = None
        for c, values in enumerate(panels):
            x = (left + c * (panel_w + gap_x)) / width
            ax = fig.add_axes((x, y, panel_w / width, panel_h / height))
            if grid.regular:
                image = ax.imshow(
                    values,
                    origin="lower",
                    extent=grid.extent,
                    aspect="auto",
                    interpolation="nearest",
                    cmap=cmap,
                    norm=norm,
                )
            else:
                image = ax.pcolormesh(
                    grid.lon, grid.lat, values, shading="nearest", cmap=cmap, norm=norm
                )
            if coast:
                ax.add_collection(LineCollection(coast, colors="k", linewidths=0.5, alpha=0.8))
            ax.set_xlim(grid.extent[0], grid.extent[1])
            ax.set_ylim(grid.extent[2], grid.extent[3])
            name = short_name(field.feature, field.variable, field.level)
            ax.set_title(
                f"{name} {lead_label(lead_values[lead_indices[c]])}", fontsize=8, pad=2, y=1.0
            )
            ax.xaxis.set_major_locator(MaxNLocator(nbins=4, steps=_DEGREE_STEPS))
            ax.yaxis.set_major_locator(MaxNLocator(nbins=4, steps=_DEGREE_STEPS))
            ax.xaxis.set_major_formatter(FuncFormatter(_lon_label))
            ax.yaxis.set_major_formatter(FuncFormatter(_lat_label))
            ax.tick_params(labelsize=6, length=2, pad=1)
            if r != n_rows - 1:
                ax.tick_params(labelbottom=False)
            if c != 0:
                ax.tick_params(labelleft=False)
        x_bar = (left + n_cols * panel_w + (n_cols - 1) * gap_x + bar_gap) / width
        cax = fig.add_axes((x_bar, y, bar_w / width, panel_h / height))
        bar = fig.colorbar(image, cax=cax, extend="both")
        bar.set_label(units, fontsize=7)
        bar.ax.tick_params(labelsize=6, length=2, pad=1)

    return fig


def figure_png(fig: Figure) -> bytes:
    """A figure drawn on its Agg canvas as a palette PNG (up to 256 colours)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from PIL import Image

    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    canvas.draw()
    rgb = np.asarray(canvas.buffer_rgba())[..., :3]
    # A palette PNG: the discrete colour levels and a little anti-aliasing fit in 256 colours.
    picture = Image.fromarray(rgb).quantize(colors=256, method=Image.Quantize.FASTOCTREE)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def forecast_map_png(
    forecast: xr.Dataset,
    *,
    fields: Sequence[str] | None = None,
    leads: Sequence[LeadLike] | None = None,
    title: str | None = None,
    max_fields: int = MAX_FIELDS,
    coastlines: bool = True,
    dpi: int = DPI,
) -> bytes:
    """A small PNG map: rows of headline fields, columns of lead times, member 0, time 0.

    ``fields`` are channel names (``geopotential_500hPa``, ``2m_temperature``); by default
    the first ``max_fields`` of :data:`HEADLINE_FIELDS` the forecast has (or, with none of
    them, its own first channels). ``leads`` default to +24h, +72h, +120h; each is drawn at
    the forecast's nearest lead time (repeats dropped). ``title`` defaults to the analysis
    time. Raises ``ValueError`` when there is nothing to draw.
    """
    fig = forecast_map_figure(
        forecast,
        fields=fields,
        leads=leads,
        title=title,
        max_fields=max_fields,
        coastlines=coastlines,
        dpi=dpi,
    )
    return figure_png(fig)


def forecast_map_markdown(
    forecast: xr.Dataset,
    *,
    fields: Sequence[str] | None = None,
    leads: Sequence[LeadLike] | None = None,
    title: str | None = None,
    alt: str = "forecast map",
    max_fields: int = MAX_FIELDS,
    coastlines: bool = True,
) -> str:
    """:func:`forecast_map_png` embedded as markdown, for the asset's ``map`` metadata entry."""
    png = forecast_map_png(
        forecast,
        fields=fields,
        leads=leads,
        title=title,
        max_fields=max_fields,
        coastlines=coastlines,
    )
    return png_markdown(png, alt)
