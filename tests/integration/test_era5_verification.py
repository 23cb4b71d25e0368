"""Real data: a persistence ensemble from the ERA5 sample verified against later ERA5 analyses.

The shared GRIB holds 10 ERA5 ensemble members (z and t at 500/850 hPa, 3-degree global grid)
at 2017-01-01T00 .. 2017-01-02T12, 12-hourly. Each member's 00Z analysis is persisted to
+12/+24/+36 h and scored against the control analysis at the valid time.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from model_registry.registry import load_registry
from resources.layout import forecast_relpath, sibling
from resources.storage import Storage
from resources.upstream import UpstreamSource
from weather_assets.keys import verification_key
from weather_assets.settings import load_settings
from weather_assets.verification.factory import build_verification_assets
from weather_assets.verification.regions import DEFAULT_REGIONS
from weather_assets.verification.schemas import validate_scores
from weather_assets.verification.scores import verify_forecast

T0 = datetime(2017, 1, 1, tzinfo=UTC)
LEADS = pd.to_timedelta([12, 24, 36], unit="h")


@pytest.fixture(scope="module")
def era5_states(era5_grib) -> list[xr.Dataset]:
    source = UpstreamSource(name="era5", kind="grib", url=str(era5_grib), ensemble=True)
    return [source.read_cycle(T0 + timedelta(hours=12 * i)).load() for i in range(4)]


def persistence_ensemble(analysis: xr.Dataset) -> xr.Dataset:
    """Every member's analysis held at +12/+24/+36 h (dims time, lead_time, member, ...)."""
    state = analysis.isel(time=0, drop=True)
    fc = xr.concat([state] * len(LEADS), dim="lead_time").assign_coords(lead_time=LEADS.values)
    fc = fc.expand_dims(time=analysis["time"].values).transpose("time", "lead_time", "member", ...)
    valid = (pd.Timestamp(analysis["time"].values[0]) + LEADS).values[None, :]
    return fc.assign_coords(valid_time=(("time", "lead_time"), valid))


def _pick(table: pd.DataFrame, metric: str, variable: str, level: int) -> np.ndarray:
    rows = table[
        (table["metric"] == metric) & (table["variable"] == variable) & (table["level"] == level)
    ]
    return rows.sort_values("lead_time")["value"].to_numpy()


def test_persistence_ensemble_scores_are_finite_and_sensible(era5_states):
    forecast = persistence_ensemble(era5_states[0])
    truth = xr.concat(era5_states[1:], dim="time")
    result = verify_forecast(forecast, truth, model="persistence")
    table = validate_scores(result.table)
    assert result.members == 10 and result.missing_leads == []
    assert set(table["metric"]) == {"rmse", "bias", "mae", "crps_fair", "spread", "spread_skill"}
    assert np.isfinite(table["value"]).all()
    assert (table["n"] == 61 * 120).all()
    for variable in ("geopotential", "temperature"):
        for level in (500, 850):
            crps = _pick(table, "crps_fair", variable, level)
            rmse = _pick(table, "rmse", variable, level)
            mae = _pick(table, "mae", variable, level)
            ratio = _pick(table, "spread_skill", variable, level)
            assert (np.diff(crps) > 0).all() and (np.diff(rmse) > 0).all()  # worse with lead
            assert (crps > 0).all() and (crps <= mae).all()  # spread can only lower the CRPS
            # An analysis ensemble persisted for a day is far too narrow for its error.
            assert ((ratio > 0) & (ratio < 0.5)).all() and (np.diff(ratio) < 0).all()
    # Persistence error of Z500 over a day: tens of metres (RMSE / g).
    z500 = _pick(table, "rmse", "geopotential", 500) / 9.80665
    assert 20 < z500[1] < 120
    assert 1.0 < _pick(table, "rmse", "temperature", 850)[1] < 6.0


def test_era5_through_the_dagster_assets(wx_env, era5_grib, monkeypatch, era5_states):
    """raw_inputs/era5 ingested by its asset, then verification/persistence on 12-h cycles."""
    import definitions

    monkeypatch.setenv("WXPLAT_UPSTREAM_KIND", "grib")
    monkeypatch.setenv("WXPLAT_UPSTREAM_URL", str(era5_grib))
    monkeypatch.setenv("WXPLAT_UPSTREAM_NAME", "era5")
    monkeypatch.setenv("WXPLAT_UPSTREAM_ENSEMBLE", "true")
    monkeypatch.setenv("WXPLAT_PARTITIONS_START", "2017-01-01T0000Z")
    monkeypatch.setenv("WXPLAT_PARTITIONS_CRON", "0 */12 * * *")
    monkeypatch.setenv("WXPLAT_DOMAIN", "w0_s-90_e357_n90")
    monkeypatch.setenv("WXPLAT_RESOLUTION", "dx3deg_dy3deg")
    settings = load_settings()
    base = definitions.build_definitions(settings)
    raw_key = dg.AssetKey(["raw_inputs", "era5"])
    instance = dg.DagsterInstance.ephemeral()
    job = base.resolve_implicit_global_asset_job_def()
    for i in range(4):
        key = (T0 + timedelta(hours=12 * i)).strftime("%Y-%m-%dT%H%MZ")
        assert job.execute_in_process(
            partition_key=key, instance=instance, asset_selection=[raw_key]
        ).success

    spec = {s.name: s for s in load_registry()}["persistence"].model_copy(
        update={"timestep": timedelta(hours=12), "max_lead_time": timedelta(hours=36)}
    )
    forecast = persistence_ensemble(era5_states[0])
    store = Storage(settings.storage_root)
    path = forecast_relpath(spec, settings, T0)
    store.write_zarr(forecast, path)

    pdef = base.resolve_asset_graph().get(raw_key).partitions_def
    assets = build_verification_assets(
        [spec], settings=settings, partitions_def=pdef, raw_inputs_key=raw_key
    )
    defs = dg.Definitions(
        assets=[
            dg.AssetSpec(dg.AssetKey(["forecast", "persistence"]), partitions_def=pdef),
            *assets,
        ],
        resources=base.resources,
    )
    graph = defs.resolve_asset_graph()
    assert graph.get(verification_key("persistence")).partition_mappings[raw_key].end_offset == 3
    result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
        partition_key="2017-01-01T0000Z",
        instance=instance,
        asset_selection=[verification_key("persistence")],
    )
    assert result.success
    meta = next(
        e.event_specific_data.materialization.metadata
        for e in result.all_events
        if e.event_type_value == "ASSET_MATERIALIZATION"
    )
    assert meta["members"].value == 10 and meta["complete"].value is True
    assert np.isfinite(meta["crps_fair geopotential_500hPa +24h [m2 s-2]"].value)
    assert 0 < meta["spread_skill temperature_850hPa +24h [1]"].value < 0.5
    table = pd.read_parquet(store.url(sibling(path, "scores.parquet")))
    # Through storage and dask the same numbers, up to float32 summation order (the bias of
    # geopotential ~5e4 m2 s-2 differs in the 7th digit of the field).
    direct = verify_forecast(
        forecast,
        xr.concat(era5_states[1:], dim="time"),
        model="persistence",
        regions=DEFAULT_REGIONS,  # as the asset scores: global, tropics, extratropics
    ).table
    pd.testing.assert_frame_equal(table.drop(columns="value"), direct.drop(columns="value"))
    np.testing.assert_allclose(table["value"], direct["value"], rtol=1e-5, atol=0.02)
