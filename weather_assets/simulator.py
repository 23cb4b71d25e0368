"""A deterministic synthetic atmosphere: the embedded default upstream source.

The state is an analytic function of time, so every analysis comes from one continuous
trajectory (the analysis at t+6h *is* the state at t+6h). Mid-latitude planetary waves
(zonal wavenumbers 2-8) drift eastward with wavenumber-dependent phase speeds and slowly
modulated amplitudes; temperature carries a diurnal wave that follows the sun and a seasonal
cycle; 10 m winds are the (friction-reduced) geostrophic wind of the pressure field. After 24 h
a wave has moved 8-15 degrees of longitude, so persistence is a poor 24 h forecast, while the
evolution is smooth and learnable (linear per Fourier mode), so a neural operator can beat it.

Units and ranges are realistic: K, Pa, m s-1, m2 s-2 (geopotential = g * height).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import xarray as xr

from weather_assets.canonical import cf_attrs

G = 9.80665  # m s-2
OMEGA = 7.292e-5  # s-1
EARTH_RADIUS = 6.371e6  # m
RHO_AIR = 1.225  # kg m-3
EPOCH = np.datetime64("2000-01-01T00:00:00", "ns")

DEFAULT_LEVELS: tuple[int, ...] = (500, 850)


@dataclass(frozen=True)
class Grid:
    """A regular lat-lon grid given by its first point, spacing and size (degrees)."""

    lat_min: float = -90.0
    lat_max: float = 90.0
    lon_min: float = 0.0
    lon_max: float = 358.0
    step: float = 2.0

    @property
    def latitude(self) -> np.ndarray:
        n = int(round((self.lat_max - self.lat_min) / self.step)) + 1
        return np.round(self.lat_min + self.step * np.arange(n), 6)

    @property
    def longitude(self) -> np.ndarray:
        n = int(round((self.lon_max - self.lon_min) / self.step)) + 1
        return np.round(self.lon_min + self.step * np.arange(n), 6)


DEFAULT_GRID = Grid()


@dataclass(frozen=True)
class _Waves:
    m: np.ndarray  # zonal wavenumber
    speed: np.ndarray  # angular phase speed, rad/day (of the pattern in longitude)
    phase: np.ndarray
    centre: np.ndarray  # latitude of the envelope centre, rad (signed: hemisphere)
    width: np.ndarray  # rad
    mod_period: np.ndarray  # days
    mod_phase: np.ndarray


def _waves(seed: int) -> _Waves:
    rng = np.random.default_rng(seed)
    n = 10
    m = rng.integers(2, 9, size=n).astype(np.float64)
    deg_per_day = rng.uniform(8.0, 15.0, size=n)
    hemisphere = np.where(np.arange(n) % 2 == 0, 1.0, -1.0)
    return _Waves(
        m=m,
        speed=np.deg2rad(deg_per_day),
        phase=rng.uniform(0, 2 * np.pi, size=n),
        centre=hemisphere * np.deg2rad(rng.uniform(38.0, 58.0, size=n)),
        width=np.deg2rad(rng.uniform(10.0, 18.0, size=n)),
        mod_period=rng.uniform(5.0, 17.0, size=n),
        mod_phase=rng.uniform(0, 2 * np.pi, size=n),
    )


def _wave_field(w: _Waves, phi: np.ndarray, lam: np.ndarray, days: float, shift: float):
    """Sum of drifting waves and its derivatives along latitude and longitude (per radian)."""
    amp = 1.0 + 0.35 * np.sin(2 * np.pi * days / w.mod_period + w.mod_phase)  # (n,)
    env = np.exp(-(((phi[None, :] - w.centre[:, None]) / w.width[:, None]) ** 2))  # (n, lat)
    denv = env * (-2.0 * (phi[None, :] - w.centre[:, None]) / w.width[:, None] ** 2)
    # Pattern moves eastward: longitude of a crest grows by speed*days.
    arg = w.m[:, None] * lam[None, :] - w.m[:, None] * w.speed[:, None] * days
    arg = arg + (w.phase + shift)[:, None]  # (n, lon)
    cos, sin = np.cos(arg), np.sin(arg)
    a_env = amp[:, None] * env
    value = np.einsum("nl,nk->lk", a_env, cos) / 2.5
    d_phi = np.einsum("nl,nk->lk", amp[:, None] * denv, cos) / 2.5
    d_lam = np.einsum("nl,nk->lk", a_env, -w.m[:, None] * sin) / 2.5
    return value, d_phi, d_lam


def _standard_height(p_hpa: float) -> float:
    """Height (m) of a pressure level in the ICAO standard atmosphere (troposphere formula)."""
    return 44330.8 * (1.0 - (p_hpa / 1013.25) ** 0.190263)


def simulate_state(
    time: datetime | np.datetime64 | pd.Timestamp | str,
    grid: Grid = DEFAULT_GRID,
    levels: Sequence[int] = DEFAULT_LEVELS,
    seed: int = 0,
) -> xr.Dataset:
    """The simulator's state at one time as a canonical dataset (dims time, level, lat, lon)."""
    ts = pd.Timestamp(time)
    if ts.tzinfo is not None:
        ts = ts.tz_convert(UTC).tz_localize(None)
    t64 = np.datetime64(ts.to_datetime64(), "ns")
    days = float((t64 - EPOCH) / np.timedelta64(1, "s")) / 86400.0
    w = _waves(seed)
    lat, lon = grid.latitude, grid.longitude
    phi, lam = np.deg2rad(lat), np.deg2rad(lon)
    sin2 = np.sin(phi)[:, None] ** 2
    coslat = np.cos(phi)[:, None]
    season = np.sin(2 * np.pi * (days - 80.0) / 365.25)  # +1 near northern summer solstice
    hemi_season = season * np.sin(phi)[:, None]

    psi, _, _ = _wave_field(w, phi, lam, days, shift=0.0)
    psi_surf, dp_phi, dp_lam = _wave_field(w, phi, lam, days, shift=-0.6)

    # Mean sea-level pressure: subtropical highs, subpolar lows, travelling systems.
    msl_clim = 101325.0 + 900.0 * np.cos(4 * phi)[:, None] - 300.0 * sin2
    msl = msl_clim + 1800.0 * psi_surf
    # Friction-reduced geostrophic wind, f bounded away from zero near the equator.
    f = 2 * OMEGA * np.sin(phi)[:, None]
    f_min = 2 * OMEGA * np.sin(np.deg2rad(12.0))
    f_eff = np.where(np.abs(f) < f_min, np.where(f < 0, -f_min, f_min), f)
    taper = np.clip(np.abs(np.rad2deg(phi))[:, None] / 12.0, 0.0, 1.0)
    u_geo = -(1800.0 * dp_phi) / (RHO_AIR * f_eff * EARTH_RADIUS)
    v_geo = (1800.0 * dp_lam) / (RHO_AIR * f_eff * EARTH_RADIUS * np.maximum(coslat, 0.05))
    trades = -6.0 * np.cos(phi)[:, None] ** 8 + 5.0 * np.sin(2 * phi)[:, None] ** 2
    u10 = np.clip(trades + 0.6 * taper * u_geo, -45.0, 45.0)
    v10 = np.clip(0.6 * taper * v_geo, -45.0, 45.0)

    # 2 m temperature: meridional gradient, season, a diurnal wave following the sun.
    hour_utc = (days % 1.0) * 24.0
    local_hour = (hour_utc + lon / 15.0)[None, :] % 24.0
    diurnal = 6.0 * coslat * np.cos(2 * np.pi * (local_hour - 15.0) / 24.0)
    t2m = 300.0 - 48.0 * sin2 + 12.0 * hemi_season + diurnal + 4.0 * psi_surf

    shape = (1, lat.size, lon.size)
    coords = {
        "time": ("time", np.array([t64])),
        "latitude": ("latitude", lat.astype(np.float64)),
        "longitude": ("longitude", lon.astype(np.float64)),
    }
    data: dict[str, tuple] = {
        "2m_temperature": (("time", "latitude", "longitude"), t2m.reshape(shape)),
        "10m_u_component_of_wind": (("time", "latitude", "longitude"), u10.reshape(shape)),
        "10m_v_component_of_wind": (("time", "latitude", "longitude"), v10.reshape(shape)),
        "mean_sea_level_pressure": (("time", "latitude", "longitude"), msl.reshape(shape)),
    }
    if levels:
        levs = np.asarray(sorted(levels), dtype=np.int64)
        z_list, t_list = [], []
        for p in levs:
            depth = 1.0 - p / 1000.0  # 0 near the surface, ~1 aloft
            z_std = _standard_height(float(p))
            height = z_std + (60.0 + 120.0 * depth) * np.cos(2 * phi)[:, None]
            height = height + (40.0 + 180.0 * depth) * psi + 30.0 * hemi_season * depth
            t_std = max(288.15 - 0.0065 * z_std, 216.65)
            temp = t_std + 15.0 - (30.0 + 10.0 * depth) * sin2 + 8.0 * hemi_season
            temp = temp + (2.0 + 3.0 * depth) * psi_surf
            z_list.append(G * height)
            t_list.append(temp)
        coords["level"] = ("level", levs)
        dims4 = ("time", "level", "latitude", "longitude")
        data["geopotential"] = (dims4, np.stack(z_list)[None])
        data["temperature"] = (dims4, np.stack(t_list)[None])

    ds = xr.Dataset(
        {k: (dims, np.asarray(v, dtype=np.float32)) for k, (dims, v) in data.items()},
        coords=coords,
    )
    for name in ds.data_vars:
        ds[name].attrs.update(cf_attrs(str(name)))
    ds["latitude"].attrs.update(units="degrees_north", standard_name="latitude")
    ds["longitude"].attrs.update(units="degrees_east", standard_name="longitude")
    if "level" in ds.coords:
        ds["level"].attrs.update(
            units="hPa", standard_name="air_pressure", long_name="pressure level"
        )
    ds.attrs.update(source="weather-platform synthetic atmosphere", simulator_seed=seed)
    return ds
