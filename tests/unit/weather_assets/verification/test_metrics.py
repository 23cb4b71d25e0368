"""Tests for weather_assets.verification.metrics against the independent `scores` package."""

from __future__ import annotations

import dask
import dask.array as dsa
import numpy as np
import pandas as pd
import pytest
import scores
import xarray as xr

from weather_assets.verification import metrics as m

SPATIAL = ["latitude", "longitude"]
RTOL = 1e-10


def _grid(nlat: int = 19, nlon: int = 24) -> dict[str, np.ndarray]:
    """A regular global grid including the poles."""
    return {
        "latitude": np.linspace(-90.0, 90.0, nlat),
        "longitude": np.linspace(0.0, 360.0, nlon, endpoint=False),
    }


def _field(
    rng: np.random.Generator, dims: tuple[str, ...], sizes: dict[str, int], offset: float = 0.0
) -> xr.DataArray:
    """Random float64 data on the test grid with the given leading dims."""
    coords = _grid(sizes.get("latitude", 19), sizes.get("longitude", 24))
    shape = tuple(sizes.get(d, len(coords.get(d, []))) for d in dims)
    da = xr.DataArray(rng.normal(offset, 1.0, size=shape), dims=dims)
    return da.assign_coords({d: coords[d] for d in dims if d in coords})


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(42)


@pytest.fixture
def pair(rng: np.random.Generator) -> tuple[xr.DataArray, xr.DataArray]:
    """Deterministic forecast and truth with time, lead_time, level and spatial dims."""
    dims = ("time", "lead_time", "level", "latitude", "longitude")
    sizes = {"time": 3, "lead_time": 4, "level": 2}
    return _field(rng, dims, sizes, offset=0.3), _field(rng, dims, sizes)


@pytest.fixture
def ensemble(rng: np.random.Generator) -> tuple[xr.DataArray, xr.DataArray]:
    """Ensemble forecast (5 members) and truth."""
    sizes = {"member": 5, "time": 2, "lead_time": 3}
    forecast = _field(rng, ("member", "time", "lead_time", "latitude", "longitude"), sizes)
    truth = _field(rng, ("time", "lead_time", "latitude", "longitude"), sizes, offset=0.2)
    return forecast, truth


def _close(actual: xr.DataArray | xr.Dataset, expected: xr.DataArray | xr.Dataset) -> None:
    xr.testing.assert_allclose(actual, expected, rtol=RTOL, atol=0)


# --- weights ----------------------------------------------------------------------------------


def test_area_weights_mean_one_symmetric_and_cell_area() -> None:
    lat = xr.DataArray(np.linspace(-90, 90, 181), dims="latitude")
    lat = lat.assign_coords(latitude=lat)
    w = m.area_weights(lat)
    assert w.dims == ("latitude",)
    assert float(w.mean()) == pytest.approx(1.0, rel=1e-14)
    np.testing.assert_allclose(w.values, w.values[::-1], rtol=1e-13)
    # polar cells are half cells: [89.5, 90]; by hand
    spacing = np.deg2rad(0.5)
    polar = 1 - np.sin(np.pi / 2 - spacing)
    equator = 2 * np.sin(spacing)
    assert w.values[0] / w.values[90] == pytest.approx(polar / equator, rel=1e-12)
    # interior weights are proportional to cos(latitude) to second order in the spacing
    cos_w = scores.functions.create_latitude_weights(lat)
    cos_w = cos_w / cos_w.mean()
    np.testing.assert_allclose(w.values[5:-5], cos_w.values[5:-5], rtol=1e-4)


def test_area_weights_descending_and_regional() -> None:
    ascending = np.linspace(-90, 90, 37)
    up = m.area_weights(xr.DataArray(ascending, dims="latitude"))
    down = m.area_weights(xr.DataArray(ascending[::-1], dims="latitude"))
    np.testing.assert_allclose(down.values, up.values[::-1], rtol=1e-13)
    # a regional grid: outer cells extend half a spacing outward, not to the poles
    regional = np.array([50.0, 51.0, 52.0])
    w = m.area_weights(xr.DataArray(regional, dims="latitude"))
    edges = np.deg2rad([49.5, 50.5, 51.5, 52.5])
    expected = np.diff(np.sin(edges))
    np.testing.assert_allclose(w.values, expected / expected.mean(), rtol=1e-13)


def test_area_weights_single_latitude_and_errors() -> None:
    assert m.area_weights(xr.DataArray([10.0], dims="latitude")).values.tolist() == [1.0]
    with pytest.raises(ValueError, match="monotonic"):
        m.area_weights(xr.DataArray([0.0, 10.0, 5.0], dims="latitude"))
    with pytest.raises(ValueError, match="within"):
        m.area_weights(xr.DataArray([0.0, 100.0], dims="latitude"))
    with pytest.raises(ValueError, match="1-D"):
        m.area_weights(xr.DataArray(np.zeros((2, 2)), dims=("y", "x")))


def test_latitude_weights_are_area_weights_and_cos_latitude_off_the_poles() -> None:
    lat = np.linspace(-90, 90, 19)
    w = m.latitude_weights(lat)
    np.testing.assert_array_equal(w, m.area_weights(xr.DataArray(lat, dims="latitude")).values)
    assert w.mean() == pytest.approx(1.0, rel=1e-14)
    # sin(lat + d/2) - sin(lat - d/2) = 2 cos(lat) sin(d/2): exactly cos(lat) between the poles
    cos = np.cos(np.deg2rad(lat[1:-1]))
    np.testing.assert_allclose(w[1:-1] / w[9], cos, rtol=1e-12)
    # the polar half cells [85, 90] have an area; cos(90) has none
    assert (
        w[0]
        == w[-1]
        == pytest.approx((1 - np.cos(np.deg2rad(5))) / (2 * np.sin(np.deg2rad(5))) * w[9])
    )
    regional = np.arange(30.0, 60.5, 0.5)  # no pole: proportional to cos(lat) everywhere
    cos = np.cos(np.deg2rad(regional))
    np.testing.assert_allclose(m.latitude_weights(regional), cos / cos.mean(), rtol=1e-12)
    with pytest.raises(ValueError, match="1-D"):
        m.latitude_weights(np.zeros((2, 2)))


def test_spatial_weights_latlon_vs_projected(pair: tuple[xr.DataArray, xr.DataArray]) -> None:
    forecast, _ = pair
    w = m.spatial_weights(forecast.to_dataset(name="t"))
    assert w is not None and w.dims == ("latitude",)
    lam = xr.Dataset(
        {"t": (("y", "x"), np.zeros((3, 4)))},
        coords={
            "latitude": (("y", "x"), np.zeros((3, 4))),
            "longitude": (("y", "x"), np.zeros((3, 4))),
        },
    )
    assert m.spatial_weights(lam) is None


# --- deterministic metrics vs scores ----------------------------------------------------------


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (m.mse, scores.continuous.mse),
        (m.rmse, scores.continuous.rmse),
        (m.mae, scores.continuous.mae),
        (m.bias, scores.continuous.additive_bias),
    ],
)
def test_deterministic_metrics_match_scores(
    pair: tuple[xr.DataArray, xr.DataArray], ours, theirs, weighted: bool
) -> None:
    forecast, truth = pair
    w = m.area_weights(forecast.latitude) if weighted else None
    _close(ours(forecast, truth, w), theirs(forecast, truth, reduce_dims=SPATIAL, weights=w))


def test_metrics_on_datasets(pair: tuple[xr.DataArray, xr.DataArray]) -> None:
    forecast, truth = pair
    fds = xr.Dataset({"a": forecast, "b": forecast.isel(level=0, drop=True) * 2})
    tds = xr.Dataset({"a": truth, "b": truth.isel(level=0, drop=True)})
    w = m.area_weights(forecast.latitude)
    expected = scores.continuous.rmse(fds, tds, reduce_dims=SPATIAL, weights=w)
    _close(m.rmse(fds, tds, w), expected)


def test_rmse_over_time_is_root_of_mean_mse(pair: tuple[xr.DataArray, xr.DataArray]) -> None:
    forecast, truth = pair
    w = m.area_weights(forecast.latitude)
    per_time = scores.continuous.mse(forecast, truth, reduce_dims=SPATIAL, weights=w)
    expected = np.sqrt(per_time.mean("time"))
    _close(m.rmse(forecast, truth, w, time_dims=("time",)), expected)
    _close(m.aggregate_rmse(m.mse(forecast, truth, w), "time"), expected)
    # not the mean of per-time RMSEs (which is smaller by Jensen's inequality)
    assert (np.sqrt(per_time).mean("time") < expected).all()


def test_projected_grid_dims(rng: np.random.Generator) -> None:
    f = xr.DataArray(rng.normal(size=(2, 5, 6)), dims=("time", "y", "x"))
    t = xr.DataArray(rng.normal(size=(2, 5, 6)), dims=("time", "y", "x"))
    _close(m.mae(f, t, dims=("y", "x")), scores.continuous.mae(f, t, reduce_dims=["y", "x"]))


def test_float32_inputs_match_scores(pair: tuple[xr.DataArray, xr.DataArray]) -> None:
    forecast, truth = (x.astype(np.float32) for x in pair)
    w = m.area_weights(forecast.latitude)
    expected = scores.continuous.rmse(forecast, truth, reduce_dims=SPATIAL, weights=w)
    xr.testing.assert_allclose(m.rmse(forecast, truth, w), expected.astype(np.float64), rtol=1e-5)


# --- ACC ----------------------------------------------------------------------------------------


def test_acc_perfect_anticorrelated_and_scaled(pair: tuple[xr.DataArray, xr.DataArray]) -> None:
    _, truth = pair
    clim = truth.mean("time") + 0.1
    w = m.area_weights(truth.latitude)
    anomaly = truth - clim
    np.testing.assert_allclose(m.acc(truth, truth, clim, w).values, 1.0, rtol=1e-12)
    np.testing.assert_allclose(m.acc(clim - anomaly, truth, clim, w).values, -1.0, rtol=1e-12)
    np.testing.assert_allclose(m.acc(clim + 3 * anomaly, truth, clim, w).values, 1.0, rtol=1e-12)


def test_acc_matches_hand_formula(pair: tuple[xr.DataArray, xr.DataArray]) -> None:
    forecast, truth = pair
    clim = truth.mean("time")
    w = m.area_weights(truth.latitude)
    f_anom = (forecast - clim).values
    o_anom = (truth - clim).values
    w_full = np.broadcast_to(w.values[:, None], f_anom.shape[-2:])

    def wsum(x: np.ndarray) -> np.ndarray:
        return (x * w_full).sum(axis=(-2, -1))

    expected = wsum(f_anom * o_anom) / np.sqrt(wsum(f_anom**2) * wsum(o_anom**2))
    result = m.acc(forecast, truth, clim, w)
    np.testing.assert_allclose(result.values, expected, rtol=RTOL)
    np.testing.assert_allclose(
        m.acc(forecast, truth, clim, w, time_dims=("time",)).values, expected.mean(0), rtol=RTOL
    )


# --- ensemble metrics ---------------------------------------------------------------------------


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize(("ours", "method"), [(m.crps_fair, "fair"), (m.crps_ensemble, "ecdf")])
def test_crps_matches_scores(
    ensemble: tuple[xr.DataArray, xr.DataArray], ours, method: str, weighted: bool
) -> None:
    forecast, truth = ensemble
    w = m.area_weights(forecast.latitude) if weighted else None
    expected = scores.probability.crps_for_ensemble(
        forecast, truth, "member", method=method, reduce_dims=SPATIAL, weights=w
    )
    _close(ours(forecast, truth, w), expected)


def _one_point(values: list[float]) -> xr.DataArray:
    return xr.DataArray(
        np.array(values, dtype=float)[:, None, None],
        dims=("member", "latitude", "longitude"),
        coords={"latitude": [0.0], "longitude": [0.0]},
    )


@pytest.mark.parametrize(
    ("members", "obs", "fair", "ecdf"),
    [
        # |X-y| mean = 1; sum_ij |Xi-Xj| = 4 -> fair 4/(2*2) = 1, ecdf 4/(2*4) = 0.5
        ([0.0, 2.0], 1.0, 0.0, 0.5),
        ([0.0, 2.0], 3.0, 1.0, 1.5),
        # three members 0, 1, 5; y = 2: skill (2+1+3)/3 = 2; sum_ij = 2*(1+5+4) = 20
        ([5.0, 0.0, 1.0], 2.0, 2.0 - 20 / 12, 2.0 - 20 / 18),
    ],
)
def test_crps_small_cases_by_hand(members: list[float], obs: float, fair: float, ecdf: float):
    forecast = _one_point(members)
    truth = forecast.isel(member=0, drop=True) * 0 + obs
    assert float(m.crps_fair(forecast, truth)) == pytest.approx(fair, abs=1e-14)
    assert float(m.crps_ensemble(forecast, truth)) == pytest.approx(ecdf, abs=1e-14)


def test_ensemble_mean_rmse_spread_and_ratio(ensemble: tuple[xr.DataArray, xr.DataArray]) -> None:
    forecast, truth = ensemble
    w = m.area_weights(forecast.latitude)
    time = ("time",)
    expected_rmse = scores.continuous.rmse(
        forecast.mean("member"), truth, reduce_dims=SPATIAL + ["time"], weights=w
    )
    result_rmse = m.ensemble_mean_rmse(forecast, truth, w, time_dims=time)
    _close(result_rmse, expected_rmse)

    variance = forecast.var("member", ddof=1)
    expected_spread = np.sqrt(variance.weighted(w).mean(SPATIAL).mean("time"))
    _close(m.spread(forecast, w, time_dims=time), expected_spread)

    n = forecast.sizes["member"]
    expected_ratio = np.sqrt((n + 1) / n) * expected_spread / expected_rmse
    _close(m.spread_skill_ratio(forecast, truth, w, time_dims=time), expected_ratio)


def test_spread_skill_ratio_near_one_for_a_reliable_ensemble() -> None:
    rng = np.random.default_rng(1)
    sizes = {"member": 4, "time": 200}
    coords = _grid(10, 12)
    shape = (sizes["member"], sizes["time"], 10, 12)
    centre = rng.normal(size=shape[1:])
    # truth and members are exchangeable draws around the same centre
    forecast = xr.DataArray(centre + rng.normal(size=shape), dims=("member", "time", *SPATIAL))
    truth = xr.DataArray(centre + rng.normal(size=shape[1:]), dims=("time", *SPATIAL))
    forecast, truth = (x.assign_coords(coords) for x in (forecast, truth))
    ratio = float(m.spread_skill_ratio(forecast, truth, time_dims=("time",)))
    assert ratio == pytest.approx(1.0, abs=0.02)


def test_spread_skill_from_its_parts_is_nan_where_the_mean_is_exact() -> None:
    spread = xr.DataArray([1.0, 2.0, 3.0], dims="lead_time")
    skill = xr.DataArray([2.0, 0.0, np.nan], dims="lead_time")
    ratio = m.spread_skill(spread, skill, 4)
    np.testing.assert_allclose(ratio.values, [np.sqrt(5 / 4) * 0.5, np.nan, np.nan])
    # pandas, with the ensemble size per row (the aggregation over a period)
    table = pd.Series([1.0, 1.0, 1.0])
    got = m.spread_skill(table, pd.Series([1.0, 2.0, 0.0]), pd.Series([3, 8, 8]))
    np.testing.assert_allclose(got, [np.sqrt(4 / 3), np.sqrt(9 / 8) / 2, np.nan])


def test_ensemble_errors(ensemble: tuple[xr.DataArray, xr.DataArray]) -> None:
    forecast, truth = ensemble
    with pytest.raises(ValueError, match="ensemble dim 'realization'"):
        m.crps_fair(forecast, truth, member_dim="realization")
    with pytest.raises(ValueError, match="at least 2 members"):
        m.crps_fair(forecast.isel(member=[0]), truth)
    with pytest.raises(ValueError, match="at least 2 members"):
        m.spread(forecast.isel(member=[0]))
    with pytest.raises(ValueError, match="truth must not have"):
        m.crps_ensemble(forecast, forecast)
    # a 1-member "ensemble" CRPS is the absolute error
    single = m.crps_ensemble(forecast.isel(member=[0]), truth)
    _close(single, m.mae(forecast.isel(member=0, drop=True), truth))


# --- dask: same numbers, lazy -------------------------------------------------------------------


def _refuse_to_compute(*args: object, **kwargs: object) -> None:
    raise AssertionError("a metric triggered a dask computation while building its graph")


def test_dask_inputs_stay_lazy_and_agree(ensemble: tuple[xr.DataArray, xr.DataArray]) -> None:
    forecast, truth = ensemble
    clim = truth.mean("time")
    w = m.area_weights(forecast.latitude)
    lazy_f = forecast.chunk({"member": 2, "lead_time": 1})
    lazy_t = truth.chunk({"lead_time": 1})
    lazy_c = clim.chunk({"lead_time": 1})
    det_f = forecast.isel(member=0, drop=True)
    lazy_det_f = lazy_f.isel(member=0, drop=True)
    weighted = {"weights": w}
    calls = {
        "rmse": (
            m.rmse,
            (det_f, truth),
            (lazy_det_f, lazy_t),
            {**weighted, "time_dims": ("time",)},
        ),
        "bias": (m.bias, (det_f, truth), (lazy_det_f, lazy_t), weighted),
        "mae": (m.mae, (det_f, truth), (lazy_det_f, lazy_t), weighted),
        "acc": (m.acc, (det_f, truth, clim), (lazy_det_f, lazy_t, lazy_c), weighted),
        "crps_fair": (m.crps_fair, (forecast, truth), (lazy_f, lazy_t), weighted),
        "crps_ensemble": (m.crps_ensemble, (forecast, truth), (lazy_f, lazy_t), weighted),
        "spread_skill_ratio": (m.spread_skill_ratio, (forecast, truth), (lazy_f, lazy_t), weighted),
        "count_valid": (m.count_valid, (det_f, truth), (lazy_det_f, lazy_t), {}),
    }
    for name, (func, eager_args, lazy_args, kwargs) in calls.items():
        with dask.config.set(scheduler=_refuse_to_compute):
            lazy = func(*lazy_args, **kwargs)
            assert lazy.chunks is not None, name
            with pytest.raises(AssertionError, match="triggered a dask computation"):
                lazy.compute()  # the guard is live: computing now would be caught
        with dask.config.set(scheduler="synchronous"):
            xr.testing.assert_allclose(lazy.compute(), func(*eager_args, **kwargs), rtol=RTOL)


def test_dask_weights(pair: tuple[xr.DataArray, xr.DataArray]) -> None:
    forecast, truth = pair
    w = m.area_weights(forecast.latitude)
    lazy_w = w.copy(data=dsa.from_array(w.values, chunks=5))
    with dask.config.set(scheduler="synchronous"):
        _close(m.mse(forecast, truth, lazy_w).compute(), m.mse(forecast, truth, w))


# --- NaN handling --------------------------------------------------------------------------------


def test_nan_propagates_by_default_and_skipna_uses_valid_points(
    pair: tuple[xr.DataArray, xr.DataArray],
) -> None:
    forecast, truth = pair
    forecast = forecast.copy()
    forecast[0, 0, 0, 3, 4] = np.nan
    w = m.area_weights(forecast.latitude)
    for func in (m.mse, m.rmse, m.mae, m.bias):
        result = func(forecast, truth, w)
        assert np.isnan(result[0, 0, 0]), func.__name__
        assert int(np.isnan(result).sum()) == 1, func.__name__
        # over a period the NaN propagates to that lead time and level
        assert np.isnan(func(forecast, truth, w, time_dims=("time",))[0, 0])
        skipped = func(forecast, truth, w, skipna=True)
        assert np.isfinite(skipped).all()
    expected = scores.continuous.mse(forecast, truth, reduce_dims=SPATIAL, weights=w)
    _close(m.mse(forecast, truth, w, skipna=True), expected)
    n = m.count_valid(forecast, truth)
    assert int(n[0, 0, 0]) == 19 * 24 - 1 and int(n[1, 0, 0]) == 19 * 24
    clim = truth.mean("time")
    assert np.isnan(m.acc(forecast, truth, clim, w)[0, 0, 0])


def test_nan_in_ensemble_member_propagates(ensemble: tuple[xr.DataArray, xr.DataArray]) -> None:
    forecast, truth = ensemble
    forecast = forecast.copy()
    forecast[2, 0, 0, 1, 1] = np.nan  # the middle member, whose rank coefficient may be 0
    for func in (m.crps_fair, m.crps_ensemble, m.spread, m.ensemble_mean_rmse):
        args = (forecast,) if func is m.spread else (forecast, truth)
        result = func(*args)
        assert np.isnan(result[0, 0]) and int(np.isnan(result).sum()) == 1, func.__name__


# --- bad input -----------------------------------------------------------------------------------


def test_missing_dims_and_mismatched_grids(pair: tuple[xr.DataArray, xr.DataArray]) -> None:
    forecast, truth = pair
    with pytest.raises(ValueError, match=r"spatial dims \['y'\] not found"):
        m.rmse(forecast, truth, dims=("y", "longitude"))
    with pytest.raises(ValueError, match=r"time dims \['valid_time'\] not found"):
        m.rmse(forecast, truth, time_dims=("valid_time",))
    shifted = truth.assign_coords(latitude=truth.latitude + 0.5)
    with pytest.raises(ValueError, match="must share coordinates exactly"):
        m.rmse(forecast, shifted)
    regional = truth.isel(latitude=slice(0, 10))
    with pytest.raises(ValueError, match="must share coordinates exactly"):
        m.mae(forecast, regional)
    other_w = m.area_weights(forecast.latitude.isel(latitude=slice(0, 10)))
    with pytest.raises(ValueError, match="must share coordinates exactly"):
        m.mse(forecast, truth, other_w)
