"""Pictures of forecasts (weather_assets.pictures): the PNG map and its markdown embedding.

Synthetic forecasts in the exact forecast layout (time, lead_time, [member], [level],
latitude, longitude) with ``valid_time``; the map is checked through its figure (one titled
axes per field and lead, the drawn values) and as PNG bytes (signature, decodes, bounded).
"""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Sequence

import dask.array
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from weather_assets.pictures import (
    HEADLINE_FIELDS,
    coastline_segments,
    coastlines_available,
    figure_png,
    forecast_map_figure,
    forecast_map_markdown,
    forecast_map_png,
    lead_label,
    png_markdown,
    short_name,
)

T0 = np.datetime64("2026-01-01T06:00", "ns")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SURFACE = {"2m_temperature": ("K", 280.0, 15.0), "mean_sea_level_pressure": ("Pa", 1.01e5, 2e3)}
LEVELLED = {"geopotential": ("m2 s-2", 5.5e4, 3e3), "temperature": ("K", 260.0, 20.0)}
LEVELS = (500, 850)


def forecast(
    lat: Sequence[float] = tuple(np.arange(-90.0, 90.1, 10.0)),
    lon: Sequence[float] = tuple(np.arange(0.0, 360.0, 10.0)),
    *,
    variables: Sequence[str] = ("geopotential", "temperature", "2m_temperature"),
    lead_hours: Sequence[int] = tuple(range(6, 121, 6)),
    members: int | None = None,
    levels: Sequence[int] = LEVELS,
) -> xr.Dataset:
    """A forecast in the platform's layout; values encode lead (and member) for checking."""
    lat = np.asarray(lat, dtype=np.float64)
    lon = np.asarray(lon, dtype=np.float64)
    leads = pd.to_timedelta(list(lead_hours), unit="h").to_numpy().astype("timedelta64[ns]")
    la, lo = np.meshgrid(np.deg2rad(lat), np.deg2rad(lon), indexing="ij")
    pattern = np.cos(la) * np.sin(2 * lo) + 0.5 * np.sin(la)
    lead_dim = ["time", "lead_time", *(["member"] if members else [])]
    data_vars = {}
    for var in variables:
        units, base, amp = {**SURFACE, **LEVELLED}[var]
        shape = [1, len(leads), *([members] if members else [])]
        dims = list(lead_dim)
        if var in LEVELLED:
            shape.append(len(levels))
            dims.append("level")
        values = np.empty((*shape, lat.size, lon.size), dtype=np.float32)
        for pos in np.ndindex(*shape):
            lead_k = pos[1]
            member_k = pos[2] if members else 0
            values[pos] = base + amp * pattern + lead_k + 1000.0 * member_k
        data_vars[var] = ((*dims, "latitude", "longitude"), values, {"units": units})
    coords: dict[str, object] = {
        "time": [T0],
        "lead_time": leads,
        "latitude": lat,
        "longitude": lon,
    }
    if members:
        coords["member"] = np.arange(members)
    if any(v in LEVELLED for v in variables):
        coords["level"] = np.asarray(levels)
    ds = xr.Dataset(data_vars, coords=coords)
    return ds.assign_coords(valid_time=(("time", "lead_time"), np.array([T0])[:, None] + leads))


def titles(fig) -> list[str]:
    return [ax.get_title() for ax in fig.axes if ax.get_title()]


def images(fig) -> list[np.ndarray]:
    out = []
    for ax in fig.axes:
        if ax.get_title():
            artist = (ax.images or ax.collections)[0]
            out.append(np.ma.filled(np.ma.asarray(artist.get_array(), dtype=float), np.nan))
    return out


def decode(png: bytes) -> Image.Image:
    assert png[:8] == PNG_SIGNATURE
    image = Image.open(io.BytesIO(png))
    image.load()
    return image


# --- markdown -----------------------------------------------------------------------------


@given(st.binary(max_size=2000), st.text(alphabet=st.characters(exclude_characters="]\n")))
def test_png_markdown_round_trips_the_bytes(png: bytes, alt: str) -> None:
    md = png_markdown(png, alt)
    match = re.fullmatch(r"!\[(.*)\]\(data:image/png;base64,([A-Za-z0-9+/=]*)\)", md, re.S)
    assert match is not None
    assert match.group(1) == alt
    assert base64.b64decode(match.group(2), validate=True) == png


def test_png_markdown_default_alt_is_the_scorecards() -> None:
    assert png_markdown(b"x") == "![scorecard](data:image/png;base64,eA==)"


def test_forecast_map_markdown_embeds_a_decodable_png() -> None:
    md = forecast_map_markdown(forecast(), title="fno 2026-01-01T0600Z", coastlines=False)
    assert md.startswith("![forecast map](data:image/png;base64,")
    png = base64.b64decode(md.split(",", 1)[1].rstrip(")"))
    assert decode(png).size[0] > 100


# --- the map ------------------------------------------------------------------------------


def test_map_is_a_small_png_with_one_panel_per_field_and_lead() -> None:
    ds = forecast(variables=("geopotential", "temperature", "2m_temperature"))
    fig = forecast_map_figure(ds)
    assert titles(fig) == [
        f"{f} {lead}" for f in ("z500", "t850", "t2m") for lead in ("+24h", "+72h", "+120h")
    ]
    assert fig._suptitle is not None and "2026-01-01 06:00" in fig._suptitle.get_text()
    png = figure_png(fig)
    image = decode(png)
    width, height = image.size
    assert 300 < width < 1200 and 200 < height < 900
    assert len(png) < 150_000


def test_default_rows_are_the_headline_fields_the_forecast_has_at_most_three() -> None:
    ds = forecast(
        variables=("geopotential", "temperature", "2m_temperature", "mean_sea_level_pressure")
    )
    assert HEADLINE_FIELDS[:3] == ("geopotential_500hPa", "temperature_850hPa", "2m_temperature")
    assert [t.split()[0] for t in titles(forecast_map_figure(ds, leads=["24h"]))] == [
        "z500",
        "t850",
        "t2m",
    ]
    some = forecast(variables=("2m_temperature", "mean_sea_level_pressure"))
    fig = forecast_map_figure(some, leads=["24h"])
    assert titles(fig) == ["t2m +24h", "msl +24h"]
    explicit = forecast_map_figure(some, fields=["mean_sea_level_pressure", "nope"], leads=["24h"])
    assert titles(explicit) == ["msl +24h"]


def test_without_headline_fields_the_first_channels_are_drawn() -> None:
    ds = forecast(variables=("geopotential",), levels=(250, 700))
    assert titles(forecast_map_figure(ds, leads=["24h"])) == ["z250 +24h", "z700 +24h"]
    with pytest.raises(ValueError, match="none of the fields"):
        forecast_map_figure(ds, fields=["2m_temperature"])


def test_nothing_to_draw_raises() -> None:
    ds = forecast().drop_vars(["geopotential", "temperature", "2m_temperature"])
    with pytest.raises(ValueError, match="no \\(latitude, longitude\\) field"):
        forecast_map_png(ds)


def test_leads_are_the_nearest_the_forecast_has_without_repeats() -> None:
    short = forecast(variables=("2m_temperature",), lead_hours=range(6, 73, 6))
    assert titles(forecast_map_figure(short)) == ["t2m +24h", "t2m +72h"]
    fig = forecast_map_figure(short, leads=[pd.Timedelta(hours=50), np.timedelta64(1, "h")])
    assert titles(fig) == ["t2m +6h", "t2m +48h"]
    drawn = images(fig)
    # the values carry the lead index: +6h is index 0, +48h index 7
    base = images(forecast_map_figure(short, leads=["6h"]))[0]
    assert np.allclose(drawn[1] - drawn[0], 7.0, atol=1e-3)
    assert np.allclose(drawn[0], base)


def test_units_of_the_colour_bars_are_what_forecasters_read() -> None:
    ds = forecast(variables=("geopotential", "2m_temperature", "mean_sea_level_pressure"))
    fig = forecast_map_figure(ds, leads=["24h"])
    labels = [ax.get_ylabel() for ax in fig.axes if not ax.get_title() and ax.get_ylabel()]
    assert labels == ["dam", "K", "hPa"]
    z500 = images(fig)[0]
    expected = ds["geopotential"].isel(time=0, level=0).sel(lead_time="24h").values / 98.0665
    assert np.allclose(z500, expected, rtol=1e-5)


def test_member_zero_is_drawn_from_an_ensemble() -> None:
    ens = forecast(variables=("2m_temperature",), members=3)
    control = forecast(variables=("2m_temperature",))
    drawn = images(forecast_map_figure(ens, leads=["24h", "48h"]))
    assert np.allclose(drawn, images(forecast_map_figure(control, leads=["24h", "48h"])))
    # the control is member 0 wherever it sits along the member dim
    shuffled = ens.isel(member=[2, 0, 1])
    assert np.allclose(images(forecast_map_figure(shuffled, leads=["24h", "48h"])), drawn)


def test_descending_latitudes_draw_the_same_picture() -> None:
    ds = forecast(variables=("2m_temperature",))
    flipped = ds.isel(latitude=slice(None, None, -1))
    assert flipped["latitude"].values[0] > flipped["latitude"].values[-1]
    fig, fig_flipped = forecast_map_figure(ds), forecast_map_figure(flipped)
    assert np.array_equal(images(fig), images(fig_flipped))
    south_row = images(fig_flipped)[0][0]  # origin="lower": row 0 is the southernmost
    assert np.allclose(south_row, ds["2m_temperature"].isel(time=0, lead_time=3).values[0])
    assert figure_png(fig) == figure_png(fig_flipped)


def test_longitudes_in_either_convention_and_across_greenwich() -> None:
    lat = np.arange(50.0, 60.1, 0.5)
    east = np.arange(0.0, 10.01, 0.5)
    west = np.arange(-10.0, 0.0, 0.5)
    ds_pm = forecast(lat, np.r_[west, east], variables=("2m_temperature",))
    ds_360 = forecast(lat, np.r_[east, west + 360.0], variables=("2m_temperature",))
    fig_pm, fig_360 = forecast_map_figure(ds_pm), forecast_map_figure(ds_360)
    ax_pm, ax_360 = fig_pm.axes[0], fig_360.axes[0]
    assert ax_pm.get_xlim() == pytest.approx((-10.25, 10.25))
    assert ax_360.get_xlim() == pytest.approx((-10.25, 10.25))  # unwrapped, not 0..360
    assert np.array_equal(images(fig_pm), images(fig_360))
    tick_labels = [t.get_text() for t in ax_pm.get_xticklabels()]
    assert any(label.endswith("W") for label in tick_labels)

    globe_360 = forecast(variables=("2m_temperature",))
    assert forecast_map_figure(globe_360).axes[0].get_xlim() == pytest.approx((-5.0, 355.0))
    globe_pm = forecast(lon=np.arange(-180.0, 180.0, 10.0), variables=("2m_temperature",))
    assert forecast_map_figure(globe_pm).axes[0].get_xlim() == pytest.approx((-185.0, 175.0))


def test_limited_area_grid_keeps_its_extent_and_aspect() -> None:
    lat = np.arange(71.0, 49.9, -0.25)  # descending, like many regional models
    lon = np.arange(-5.0, 25.01, 0.25)
    ds = forecast(lat, lon, variables=("mean_sea_level_pressure", "2m_temperature"), members=2)
    fig = forecast_map_figure(ds, leads=["12h", "24h"])
    assert titles(fig) == ["t2m +12h", "t2m +24h", "msl +12h", "msl +24h"]
    ax = fig.axes[0]
    assert ax.get_xlim() == pytest.approx((-5.125, 25.125))
    assert ax.get_ylim() == pytest.approx((49.875, 71.125))
    width, height = (
        ax.get_position().width * fig.get_figwidth(),
        ax.get_position().height * fig.get_figheight(),
    )
    assert 0.8 < height / width < 1.3  # 21° of latitude by 30° of longitude at 60°N
    assert len(forecast_map_png(ds)) < 150_000


def test_curvilinear_grid_with_two_dimensional_coordinates() -> None:
    y, x = np.meshgrid(np.arange(12), np.arange(16), indexing="ij")
    ds = forecast(variables=("2m_temperature",)).isel(latitude=slice(0, 12), longitude=slice(0, 16))
    values = ds["2m_temperature"].values
    lam = xr.Dataset(
        {"2m_temperature": (("time", "lead_time", "y", "x"), values, {"units": "K"})},
        coords={
            "time": ds["time"],
            "lead_time": ds["lead_time"],
            "latitude": (("y", "x"), 50.0 + 0.5 * y + 0.05 * x),
            "longitude": (("y", "x"), -5.0 + 0.5 * x - 0.1 * y),
        },
    )
    fig = forecast_map_figure(lam, leads=["24h"])
    assert titles(fig) == ["t2m +24h"]
    assert fig.axes[0].collections  # a QuadMesh on the 2-D coordinates
    assert decode(figure_png(fig)).size[0] > 100


def test_nans_are_drawn_as_gaps_and_an_all_nan_field_still_draws() -> None:
    ds = forecast(variables=("2m_temperature", "mean_sea_level_pressure"))
    ds["2m_temperature"][..., 3:6, 4:9] = np.nan
    ds["mean_sea_level_pressure"][:] = np.nan
    fig = forecast_map_figure(ds, leads=["24h"])
    t2m, msl = images(fig)
    assert np.isnan(t2m[3:6, 4:9]).all() and np.isfinite(t2m[:3]).all()
    assert np.isnan(msl).all()
    assert decode(figure_png(fig)).mode in ("P", "RGB", "RGBA")


def test_only_the_drawn_chunks_are_read() -> None:
    """Lazy data (dask, like an opened zarr store) is indexed before anything is computed."""
    ds = forecast(variables=("geopotential", "2m_temperature"), members=2)
    read: list[tuple[str, tuple[int, ...]]] = []

    def recorder(name: str):
        def block(x: np.ndarray, block_info=None) -> np.ndarray:
            read.append((name, tuple(block_info[0]["chunk-location"])))
            return x

        return block

    lazy = ds.copy()
    for name, da in ds.data_vars.items():
        chunks = tuple(1 if d in ("time", "lead_time", "member") else -1 for d in da.dims)
        arr = dask.array.from_array(da.values, chunks=chunks)
        lazy[name] = (da.dims, arr.map_blocks(recorder(str(name)), dtype=arr.dtype), da.attrs)
    forecast_map_png(lazy, leads=["24h", "72h"], coastlines=False)
    lead_k = {3, 11}  # +24h and +72h
    assert read, "nothing was computed"
    for name, location in read:
        assert location[0] == 0 and location[1] in lead_k and location[2] == 0, (name, location)
    assert len(read) == 4  # two fields x two leads, one chunk each


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n_lat=st.integers(1, 7),
    n_lon=st.integers(1, 9),
    lat0=st.floats(-80.0, 20.0),
    lon0=st.floats(-180.0, 350.0),
    step=st.sampled_from([0.25, 1.0, 2.5, 10.0]),
    descending=st.booleans(),
    n_leads=st.integers(1, 5),
)
def test_any_small_grid_makes_a_valid_bounded_png(
    n_lat: int, n_lon: int, lat0: float, lon0: float, step: float, descending: bool, n_leads: int
) -> None:
    lat = lat0 + step * np.arange(n_lat)
    lat = lat[lat <= 90.0] if (lat <= 90.0).any() else np.array([lat0])
    lon = lon0 + step * np.arange(n_lon)
    if descending:
        lat = lat[::-1]
    ds = forecast(
        lat, lon, variables=("2m_temperature",), lead_hours=[6 * (k + 1) for k in range(n_leads)]
    )
    png = forecast_map_png(ds, coastlines=False)
    width, height = decode(png).size
    assert width < 1200 and height < 900 and len(png) < 150_000


def test_labels() -> None:
    assert short_name("geopotential_500hPa", "geopotential", 500.0) == "z500"
    assert short_name("2m_temperature", "2m_temperature") == "t2m"
    assert short_name("foo_bar") == "foo_bar"
    assert lead_label(pd.Timedelta(hours=120)) == "+120h"
    assert lead_label(np.timedelta64(90, "m")) == "+90min"


# --- coastlines ---------------------------------------------------------------------------

needs_land_mask = pytest.mark.skipif(
    not coastlines_available(), reason="global-land-mask is not installed"
)


@needs_land_mask
def test_coastlines_lie_inside_the_extent_in_either_longitude_convention() -> None:
    europe_pm = coastline_segments((-10.0, 10.0, 45.0, 60.0))
    europe_360 = coastline_segments((350.0, 370.0, 45.0, 60.0))
    assert europe_pm and len(europe_pm) == len(europe_360)
    for a, b in zip(europe_pm, europe_360, strict=True):
        assert np.allclose(a + [360.0, 0.0], b)
    points = np.concatenate(europe_pm)
    assert points[:, 0].min() >= -10.0 and points[:, 0].max() <= 10.0
    assert points[:, 1].min() >= 45.0 and points[:, 1].max() <= 60.0
    assert coastline_segments((-150.0, -140.0, -40.0, -30.0)) == []  # open South Pacific


@needs_land_mask
def test_global_map_has_coastlines_in_every_panel() -> None:
    fig = forecast_map_figure(forecast(variables=("2m_temperature",)))
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert len(panels) == 3
    assert all(len(ax.collections) == 1 for ax in panels)  # the coastline LineCollection
    without = forecast_map_figure(forecast(variables=("2m_temperature",)), coastlines=False)
    assert all(not ax.collections for ax in without.axes if ax.get_title())


@needs_land_mask
def test_the_land_mask_is_read_once_and_then_from_the_cache(tmp_path, monkeypatch) -> None:
    from weather_assets import pictures

    first = pictures._ocean_mask()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    pictures._ocean_mask.cache_clear()
    try:
        built = pictures._ocean_mask()  # read from the package, then cached on disk
        (cached,) = (tmp_path / "wxplat").glob("ocean_*.npz")
        monkeypatch.setattr(pictures, "_read_ocean_mask", lambda path: pytest.fail("re-read"))
        pictures._ocean_mask.cache_clear()
        again = pictures._ocean_mask()  # a new process would find the file
        for a, b, c in zip(first, built, again, strict=True):
            assert np.array_equal(a, b) and np.array_equal(b, c)
        cached.write_bytes(b"not an npz")  # a damaged cache is rebuilt, never trusted
        monkeypatch.undo()
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
        pictures._ocean_mask.cache_clear()
        assert np.array_equal(pictures._ocean_mask()[0], first[0])
    finally:
        pictures._ocean_mask.cache_clear()
