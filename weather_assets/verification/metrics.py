"""Verification metrics: plain functions on xarray objects, lazy with dask-backed inputs.

Every metric takes ``forecast`` and ``truth`` (DataArrays or Datasets with the same
variables), reduces the spatial ``dims`` with optional ``weights`` and, if ``time_dims`` is
given, then averages over those (unweighted). Other dims (``lead_time``, ``level``, ...) are
kept. Definitions follow WeatherBench 2 (WB2):

- ``mse``, ``bias`` (mean forecast - truth), ``mae``: weighted spatial means.
- ``rmse``: the square root of the spatially averaged squared error. Over a period the MSE is
  averaged over ``time_dims`` first and the root taken last (WB2's "RMSE"; the mean of
  per-time RMSEs is a different, smaller number): ``rmse(f, t, time_dims=("time",))`` or
  ``aggregate_rmse(mse(f, t), "time")``.
- ``acc``: WB2's uncentered anomaly correlation per time,
  ``sum(w f' o') / sqrt(sum(w f'^2) sum(w o'^2))`` with ``f' = f - c``, ``o' = o - c`` for a
  climatology ``c`` already aligned to valid time; averaged over ``time_dims`` after.
- Ensembles (dim ``member``): ``crps_fair`` (the fair estimator, M(M-1) in the spread term),
  ``crps_ensemble`` (the CRPS of the empirical distribution, M^2), ``ensemble_mean_rmse``,
  ``spread`` (sqrt of the spatially and time averaged unbiased ensemble variance) and
  ``spread_skill_ratio`` = sqrt((M+1)/M) * spread / ensemble-mean RMSE, the factor WB2 applies so
  that a perfectly reliable M-member ensemble scores 1 (Fortin et al. 2014); ``spread_skill``
  is that formula on already computed spread and RMSE (the scores tables use it).

The CRPS spread term uses the sorted-ensemble identity
``sum_{i,j} |x_i - x_j| = 2 sum_i (2i - M - 1) x_(i)``: O(M log M) time and O(M) memory per
point instead of materializing all M^2 pairs.

Missing data is never averaged over silently: with the default ``skipna=False`` a NaN
anywhere in a reduction makes that result NaN. ``skipna=True`` averages over the valid points
only (weights renormalized); ``count_valid`` gives how many there were. Inputs must share
coordinates exactly on common dims (a mismatched grid raises instead of being inner-joined
into a smaller domain).

Weights: ``latitude_weights`` (numpy) and ``area_weights`` (xarray) give cell-area weights for
regular latitude-longitude grids; training's held-out evaluation uses the same function.
Projected limited-area grids (dims ``y``/``x``) are treated as equal-area and left unweighted
(``spatial_weights`` returns None for them): on the conformal projections regional models use,
cell areas vary by only a few percent across a domain. Weights must be non-negative and free of NaN;
that is not checked, since checking would compute dask-backed weights.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import TypeVar

import numpy as np
import pandas as pd
import xarray as xr
from numpy.typing import ArrayLike

SPATIAL_DIMS: tuple[str, str] = ("latitude", "longitude")
MEMBER_DIM = "member"

T = TypeVar("T", xr.DataArray, xr.Dataset)
S = TypeVar("S", xr.DataArray, xr.Dataset, pd.Series)
R = TypeVar("R")


# ---------------------------------------------------------------------------------------------
# weights


def latitude_weights(latitude: ArrayLike) -> np.ndarray:
    """Cell-area weights of the rows of a regular lat-lon grid, normalized to mean 1.

    The one latitude weighting of the platform: verification (:func:`area_weights`) and the
    held-out evaluation of training use it, so their RMSEs agree. A cell spans half-way to its
    neighbours (the outer cells as far again outward, clipped to +-90 degrees); its area is
    proportional to sin(upper bound) - sin(lower bound) = 2 cos(lat) sin(step / 2), i.e. to
    cos(lat) except in a row at a pole, whose half cell has a positive area where cos(lat) is
    0. Works for ascending or descending latitude; a dask array stays lazy (and unchecked).
    """
    lat = latitude
    if not hasattr(lat, "dask"):
        lat = np.asarray(lat, dtype=np.float64)
        if lat.ndim != 1:
            raise ValueError(f"latitude weights need a 1-D latitude, got shape {lat.shape}")
        if np.any(np.abs(lat) > 90) or not np.isfinite(lat).all():
            raise ValueError("latitude values must be finite and within [-90, 90]")
        steps = np.diff(lat)
        if lat.size > 1 and not (np.all(steps > 0) or np.all(steps < 0)):
            raise ValueError("latitude must be strictly monotonic for area weights")
    if lat.shape[0] == 1:
        return np.ones_like(lat, dtype=np.float64)
    mid = (lat[:-1] + lat[1:]) / 2
    first = lat[:1] - (lat[1:2] - lat[:1]) / 2
    last = lat[-1:] + (lat[-1:] - lat[-2:-1]) / 2
    bounds = np.clip(np.concatenate([first, mid, last]), -90.0, 90.0)
    sin_bounds = np.sin(np.deg2rad(bounds))
    weights = np.abs(sin_bounds[1:] - sin_bounds[:-1])
    return weights / weights.mean()


def area_weights(latitude: xr.DataArray) -> xr.DataArray:
    """:func:`latitude_weights` as a DataArray along the latitude dim (mean 1)."""
    if latitude.ndim != 1:
        raise ValueError(f"area_weights needs a 1-D latitude, got dims {latitude.dims}")
    return xr.DataArray(
        latitude_weights(latitude.data),
        dims=latitude.dims,
        coords={latitude.dims[0]: latitude},
        name="area_weights",
        attrs={"long_name": "cell-area weights normalized to mean 1"},
    )


def spatial_weights(ds: xr.Dataset | xr.DataArray) -> xr.DataArray | None:
    """Area weights if ``ds`` has a 1-D ``latitude`` dim, else None (projected grid, unweighted)."""
    if "latitude" in ds.dims and ds["latitude"].ndim == 1:
        return area_weights(ds["latitude"])
    return None


# ---------------------------------------------------------------------------------------------
# helpers


def _check_dims(obj: xr.DataArray | xr.Dataset, dims: Iterable[Hashable], what: str) -> list:
    """``dims`` as a list; ValueError naming any that ``obj`` lacks."""
    dims = [dims] if isinstance(dims, str) else list(dims)
    missing = [d for d in dims if d not in obj.dims]
    if missing:
        raise ValueError(f"{what} dims {missing} not found; the data has dims {list(obj.dims)}")
    return dims


def _exact(func: Callable[..., R], *args: object) -> R:
    """Run ``func`` with exact coordinate alignment (mismatched grids raise, never shrink)."""
    with xr.set_options(arithmetic_join="exact"):
        try:
            return func(*args)
        except ValueError as err:
            if "join='exact'" in str(err):
                raise ValueError(
                    f"forecast, truth (and weights/climatology) must share coordinates exactly "
                    f"on common dims: {err}"
                ) from err
            raise


def _weighted_mean_da(
    da: xr.DataArray, weights: xr.DataArray | None, dims: Sequence[Hashable], skipna: bool
) -> xr.DataArray:
    """Weighted mean of one DataArray over ``dims``."""
    missing = [d for d in dims if d not in da.dims]
    if missing:
        raise ValueError(f"variable {da.name!r} lacks dims {missing}; it has {list(da.dims)}")
    if weights is None:
        return da.mean(dims, skipna=skipna)
    extra = [d for d in weights.dims if d not in da.dims]
    if extra:
        raise ValueError(f"weights dims {extra} are not dims of variable {da.name!r}")
    if skipna:
        return da.weighted(weights).mean(dims, skipna=True)
    # NaN-propagating fast path: one einsum for the numerator; the denominator depends on
    # the weights alone (no pass over the data to count valid points).
    numerator = xr.dot(da, weights, dim=list(dims))
    w_dims = [d for d in dims if d in weights.dims]
    n_unweighted = math.prod(da.sizes[d] for d in dims if d not in weights.dims)
    denominator = (weights.sum(w_dims) if w_dims else weights) * n_unweighted
    return numerator / denominator


def _spatial_mean(x: T, weights: xr.DataArray | None, dims: Sequence[Hashable], skipna: bool) -> T:
    """Weighted mean over the spatial ``dims`` of a DataArray or every variable of a Dataset."""
    if isinstance(x, xr.Dataset):
        return x.map(_weighted_mean_da, args=(weights, dims, skipna))
    return _weighted_mean_da(x, weights, dims, skipna)


def _time_mean(x: T, time_dims: Iterable[Hashable], skipna: bool) -> T:
    """Unweighted mean over ``time_dims`` (no-op if empty)."""
    time_dims = _check_dims(x, time_dims, "time")
    return x.mean(time_dims, skipna=skipna) if time_dims else x


def _n_members(forecast: xr.DataArray | xr.Dataset, truth: object, member_dim: str) -> int:
    """Ensemble size; ValueError if the member dim is missing or also in truth."""
    if member_dim not in forecast.dims:
        raise ValueError(
            f"forecast has no ensemble dim {member_dim!r}; it has dims {list(forecast.dims)}"
        )
    if isinstance(truth, xr.DataArray | xr.Dataset) and member_dim in truth.dims:
        raise ValueError(f"truth must not have the ensemble dim {member_dim!r}")
    return int(forecast.sizes[member_dim])


# ---------------------------------------------------------------------------------------------
# deterministic metrics


def count_valid(forecast: T, truth: T, dims: Sequence[Hashable] = SPATIAL_DIMS) -> T:
    """Number of points over ``dims`` where both forecast and truth are not NaN."""
    _check_dims(forecast, dims, "spatial")
    return _exact(lambda f, t: (f.notnull() & t.notnull()).sum(list(dims)), forecast, truth)


def mse(
    forecast: T,
    truth: T,
    weights: xr.DataArray | None = None,
    dims: Sequence[Hashable] = SPATIAL_DIMS,
    *,
    time_dims: Sequence[Hashable] = (),
    skipna: bool = False,
) -> T:
    """Mean squared error over ``dims`` (then averaged over ``time_dims``)."""
    _check_dims(forecast, dims, "spatial")
    squared = _exact(lambda f, t: (f - t) ** 2, forecast, truth)
    return _time_mean(_exact(_spatial_mean, squared, weights, dims, skipna), time_dims, skipna)


def aggregate_rmse(mse_values: T, dim: Hashable | Sequence[Hashable], skipna: bool = False) -> T:
    """RMSE over a period from per-time MSEs: the root of their mean over ``dim``."""
    return _time_mean(mse_values, _check_dims(mse_values, dim, "time"), skipna) ** 0.5


def rmse(
    forecast: T,
    truth: T,
    weights: xr.DataArray | None = None,
    dims: Sequence[Hashable] = SPATIAL_DIMS,
    *,
    time_dims: Sequence[Hashable] = (),
    skipna: bool = False,
) -> T:
    """Root mean squared error: sqrt of the MSE averaged over ``dims`` and then ``time_dims``."""
    return mse(forecast, truth, weights, dims, time_dims=time_dims, skipna=skipna) ** 0.5


def bias(
    forecast: T,
    truth: T,
    weights: xr.DataArray | None = None,
    dims: Sequence[Hashable] = SPATIAL_DIMS,
    *,
    time_dims: Sequence[Hashable] = (),
    skipna: bool = False,
) -> T:
    """Mean error (forecast - truth) over ``dims`` (then ``time_dims``)."""
    _check_dims(forecast, dims, "spatial")
    error = _exact(lambda f, t: f - t, forecast, truth)
    return _time_mean(_exact(_spatial_mean, error, weights, dims, skipna), time_dims, skipna)


def mae(
    forecast: T,
    truth: T,
    weights: xr.DataArray | None = None,
    dims: Sequence[Hashable] = SPATIAL_DIMS,
    *,
    time_dims: Sequence[Hashable] = (),
    skipna: bool = False,
) -> T:
    """Mean absolute error over ``dims`` (then ``time_dims``)."""
    _check_dims(forecast, dims, "spatial")
    error = _exact(lambda f, t: abs(f - t), forecast, truth)
    return _time_mean(_exact(_spatial_mean, error, weights, dims, skipna), time_dims, skipna)


def acc(
    forecast: T,
    truth: T,
    climatology: T,
    weights: xr.DataArray | None = None,
    dims: Sequence[Hashable] = SPATIAL_DIMS,
    *,
    time_dims: Sequence[Hashable] = (),
    skipna: bool = False,
) -> T:
    """Uncentered anomaly correlation (WB2) per time, then averaged over ``time_dims``.

    ``climatology`` must already be aligned to the valid times of ``forecast``/``truth``.
    """
    _check_dims(forecast, dims, "spatial")

    def _acc(f: T, t: T, c: T) -> T:
        f_anom = f - c
        t_anom = t - c
        covariance = _spatial_mean(f_anom * t_anom, weights, dims, skipna)
        f_var = _spatial_mean(f_anom**2, weights, dims, skipna)
        t_var = _spatial_mean(t_anom**2, weights, dims, skipna)
        return covariance / (f_var * t_var) ** 0.5

    return _time_mean(_exact(_acc, forecast, truth, climatology), time_dims, skipna)


# ---------------------------------------------------------------------------------------------
# ensemble metrics


def _sorted_rank_sum(x: np.ndarray) -> np.ndarray:
    """sum_i (2i - M - 1) x_(i) over the last axis, i.e. half of sum_{i,j} |x_i - x_j|.

    NaN sorts last and propagates (NaN * coefficient is NaN, even for a 0 coefficient).
    """
    m = x.shape[-1]
    coefficients = 2.0 * np.arange(1, m + 1) - m - 1
    return np.sort(x, axis=-1) @ coefficients


def _pointwise_crps(forecast: T, truth: T, member_dim: str, fair: bool) -> T:
    """CRPS at every point: mean|X - y| - sum_{i,j}|X_i - X_j| / (2K), K = M(M-1) or M^2."""
    m = _n_members(forecast, truth, member_dim)
    if fair and m < 2:
        raise ValueError(f"the fair CRPS needs at least 2 members, got {m}")
    skill = _exact(lambda f, t: abs(f - t).mean(member_dim, skipna=False), forecast, truth)
    half_pair_sum = xr.apply_ufunc(
        _sorted_rank_sum,
        forecast,
        input_core_dims=[[member_dim]],
        dask="parallelized",
        output_dtypes=[np.float64],
        dask_gufunc_kwargs={"allow_rechunk": True},
    )
    k = m * (m - 1) if fair else m * m
    return _exact(lambda s, p: s - p / k, skill, half_pair_sum)


def crps_fair(
    forecast: T,
    truth: T,
    weights: xr.DataArray | None = None,
    dims: Sequence[Hashable] = SPATIAL_DIMS,
    *,
    member_dim: str = MEMBER_DIM,
    time_dims: Sequence[Hashable] = (),
    skipna: bool = False,
) -> T:
    """Fair CRPS (unbiased for the ensemble's parent distribution, M(M-1) denominator)."""
    _check_dims(forecast, dims, "spatial")
    pointwise = _pointwise_crps(forecast, truth, member_dim, fair=True)
    return _time_mean(_exact(_spatial_mean, pointwise, weights, dims, skipna), time_dims, skipna)


def crps_ensemble(
    forecast: T,
    truth: T,
    weights: xr.DataArray | None = None,
    dims: Sequence[Hashable] = SPATIAL_DIMS,
    *,
    member_dim: str = MEMBER_DIM,
    time_dims: Sequence[Hashable] = (),
    skipna: bool = False,
) -> T:
    """CRPS of the ensemble's empirical distribution (the standard form, M^2 denominator)."""
    _check_dims(forecast, dims, "spatial")
    pointwise = _pointwise_crps(forecast, truth, member_dim, fair=False)
    return _time_mean(_exact(_spatial_mean, pointwise, weights, dims, skipna), time_dims, skipna)


def ensemble_mean_rmse(
    forecast: T,
    truth: T,
    weights: xr.DataArray | None = None,
    dims: Sequence[Hashable] = SPATIAL_DIMS,
    *,
    member_dim: str = MEMBER_DIM,
    time_dims: Sequence[Hashable] = (),
    skipna: bool = False,
) -> T:
    """RMSE of the ensemble mean (MSE averaged over ``time_dims`` before the root)."""
    _n_members(forecast, truth, member_dim)
    mean = forecast.mean(member_dim, skipna=skipna)
    return rmse(mean, truth, weights, dims, time_dims=time_dims, skipna=skipna)


def spread(
    forecast: T,
    weights: xr.DataArray | None = None,
    dims: Sequence[Hashable] = SPATIAL_DIMS,
    *,
    member_dim: str = MEMBER_DIM,
    time_dims: Sequence[Hashable] = (),
    skipna: bool = False,
) -> T:
    """Ensemble spread: sqrt of the unbiased (ddof=1) member variance averaged over space/time."""
    m = _n_members(forecast, None, member_dim)
    if m < 2:
        raise ValueError(f"the ensemble spread needs at least 2 members, got {m}")
    _check_dims(forecast, dims, "spatial")
    variance = forecast.var(member_dim, ddof=1, skipna=skipna)
    mean_variance = _exact(_spatial_mean, variance, weights, dims, skipna)
    return _time_mean(mean_variance, time_dims, skipna) ** 0.5


def spread_skill_ratio(
    forecast: T,
    truth: T,
    weights: xr.DataArray | None = None,
    dims: Sequence[Hashable] = SPATIAL_DIMS,
    *,
    member_dim: str = MEMBER_DIM,
    time_dims: Sequence[Hashable] = (),
    skipna: bool = False,
) -> T:
    """sqrt((M+1)/M) * spread / ensemble-mean RMSE (WB2); 1 for a reliable ensemble."""
    m = _n_members(forecast, truth, member_dim)
    kwargs = {"member_dim": member_dim, "time_dims": time_dims, "skipna": skipna}
    spread_ = spread(forecast, weights, dims, **kwargs)
    skill = ensemble_mean_rmse(forecast, truth, weights, dims, **kwargs)
    return spread_skill(spread_, skill, m)


def spread_skill(spread_: S, skill: S, members: int | S) -> S:
    """The spread/skill ratio from its parts: sqrt((M+1)/M) * spread / ensemble-mean RMSE.

    The one formula behind :func:`spread_skill_ratio` and the scores tables (per cycle, and
    over a period from the aggregated spread and RMSE). Works on xarray and pandas objects;
    ``members`` (M) is an int or aligned with the scores. Undefined (NaN, not infinite) where
    the RMSE is 0: an exact ensemble mean says nothing about the spread it should have.
    """
    factor = np.sqrt((members + 1) / members)
    return spread_ / skill.where(skill > 0) * factor
