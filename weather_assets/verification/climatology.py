"""Climatology from the history of analyses, for anomaly correlation (ACC).

Two methods, chosen by how much history there is:

- ``dayofyear_hour`` (at least ``min_span_days`` = 365 days of history): the mean state per
  day of year (1..366) and hour of day, smoothed with a circular ``window_days`` wide window
  along the day of year, as WeatherBench 2 builds its climatology (every year's analyses at
  that hour within +-window/2 days). Days whose window holds no analysis take the hourly
  mean below.
- ``hourly_mean`` (the fallback for shorter history): the mean state per hour of day over
  all history, without a seasonal cycle. Over a few weeks the seasonal drift is small next
  to synoptic anomalies, but ACC against it is biased towards 0 or 1 for a short history;
  the method is recorded in the dataset's ``attrs`` and shown in asset metadata so that ACC
  values are read accordingly. With a single analysis the climatology *is* that analysis.

Valid times at an hour the history never had use the mean over all hours
(:func:`climatology_at`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import xarray as xr

DAYS_IN_YEAR = 366
DEFAULT_WINDOW_DAYS = 61
MIN_SPAN_DAYS = 365.0
METHOD_SEASONAL = "dayofyear_hour"
METHOD_HOURLY = "hourly_mean"


def history_span_days(history: xr.Dataset) -> float:
    """Days between the first and last analysis of the history."""
    times = pd.DatetimeIndex(history["time"].values)
    return float((times.max() - times.min()) / pd.Timedelta(days=1)) if len(times) else 0.0


def _hourly_mean(history: xr.Dataset) -> xr.Dataset:
    return history.groupby(history["time"].dt.hour.rename("hour")).mean("time", keep_attrs=True)


def _circular_window_sum(da: xr.Dataset, dim: str, window: int) -> xr.Dataset:
    """Sum over a centred window along ``dim``, wrapping around its ends."""
    half = window // 2
    padded = da.pad({dim: (half, half)}, mode="wrap")
    summed = padded.rolling({dim: 2 * half + 1}, center=True).sum()
    return summed.isel({dim: slice(half, -half if half else None)})


def compute_climatology(
    history: xr.Dataset,
    *,
    window_days: int = DEFAULT_WINDOW_DAYS,
    min_span_days: float = MIN_SPAN_DAYS,
) -> xr.Dataset:
    """Climatology of ``history`` (dims time, [level], grid; no member dim), see module doc.

    The result has dims ``hour`` (and ``dayofyear`` for the seasonal method) in place of
    ``time``; ``attrs`` record the method, window and the history's span and size.
    """
    if "time" not in history.dims or history.sizes["time"] == 0:
        raise ValueError("a climatology needs a history with at least one analysis time")
    if "member" in history.dims:
        raise ValueError("select one member of the analyses before computing a climatology")
    if window_days < 1:
        raise ValueError(f"window_days must be at least 1, got {window_days}")
    history = history.sortby("time")
    span = history_span_days(history)
    hourly = _hourly_mean(history)
    attrs = {
        "history_start": str(pd.Timestamp(history["time"].values[0])),
        "history_end": str(pd.Timestamp(history["time"].values[-1])),
        "history_times": int(history.sizes["time"]),
        "window_days": int(window_days),
    }
    if span < min_span_days:
        clim = hourly
        attrs["method"] = METHOD_HOURLY
    else:
        doy = history["time"].dt.dayofyear.rename("dayofyear")
        hour = history["time"].dt.hour.rename("hour")
        key = ((doy - 1) * 24 + hour).rename("slot")
        valid = history.notnull().astype(np.float64)
        sums = history.fillna(0.0).groupby(key).sum("time")
        counts = valid.groupby(key).sum("time")
        slots = pd.MultiIndex.from_product(
            [np.arange(1, DAYS_IN_YEAR + 1), hourly["hour"].values], names=["dayofyear", "hour"]
        )
        full = (slots.get_level_values(0) - 1) * 24 + slots.get_level_values(1)

        def grid(x: xr.Dataset) -> xr.Dataset:
            x = x.reindex(slot=np.asarray(full), fill_value=0.0)
            x = x.assign_coords(
                dayofyear=("slot", slots.get_level_values(0)),
                hour=("slot", slots.get_level_values(1)),
            )
            return x.set_index(slot=["dayofyear", "hour"]).unstack("slot")

        smoothed_sum = _circular_window_sum(grid(sums), "dayofyear", window_days)
        smoothed_n = _circular_window_sum(grid(counts), "dayofyear", window_days)
        clim = (smoothed_sum / smoothed_n).where(smoothed_n > 0)
        clim = clim.fillna(hourly.reindex(hour=clim["hour"]))
        clim = clim.transpose("dayofyear", "hour", ...)
        attrs["method"] = METHOD_SEASONAL
    for name in clim.data_vars:
        clim[name].attrs = dict(history[name].attrs)
        clim[name] = clim[name].astype(history[name].dtype)
    clim.attrs = attrs
    return clim


def climatology_at(climatology: xr.Dataset, times: Sequence | pd.DatetimeIndex) -> xr.Dataset:
    """The climatology at ``times`` (naive UTC), with a ``time`` dim in their order."""
    times = pd.DatetimeIndex(times)
    hours_known = {int(h) for h in climatology["hour"].values}
    all_hours = climatology.mean("hour", keep_attrs=True)
    pieces = []
    for t in times:
        sub = climatology
        if "dayofyear" in sub.dims:
            sub = sub.sel(dayofyear=int(t.dayofyear))
            fallback = all_hours.sel(dayofyear=int(t.dayofyear))
        else:
            fallback = all_hours
        piece = sub.sel(hour=int(t.hour), drop=True) if t.hour in hours_known else fallback
        pieces.append(piece.drop_vars(["dayofyear", "hour"], errors="ignore"))
    out = xr.concat(pieces, dim="time", join="exact") if pieces else all_hours.expand_dims(time=0)
    return out.assign_coords(time=times.values)
