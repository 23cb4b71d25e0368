"""Promotion and product assets through Dagster, on forecasts and scores written into storage:
decisions, the published GRIB2 read back by cfgrib, rollback, pins by the CLI, idempotence.

Three persistence-like registry entries (``champ``, ``chall``, ``base``) stand for the
champion, a challenger and the baseline; their scores are synthetic (see
``tests/unit/weather_assets/products/test_promotion.py``), so each case knows its answer.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import dagster as dg
import eccodes
import numpy as np
import pandas as pd
import pytest
import xarray as xr
import yaml
from typer.testing import CliRunner

from model_registry.registry import DEFAULT_REGISTRY_DIR, load_registry
from resources.layout import forecast_relpath, read_table, scores_relpath, write_table
from resources.storage import Storage
from tests.unit.weather_assets.products.test_promotion import scores
from tests.unit.weather_assets.verification.test_scores import persistence_forecast
from weather_assets import paths
from weather_assets.keys import forecast_key, product_key, promotion_key
from weather_assets.partitions import time_to_partition_key
from weather_assets.products.assets import grib_relpath, product_relpath
from weather_assets.products.grib2 import sidecar_path
from weather_assets.simulator import simulate_state

T0 = datetime(2026, 1, 1, tzinfo=UTC)
N = 12
CYCLES = [T0 + i * timedelta(hours=6) for i in range(N)]
LEADS = pd.to_timedelta([6, 12, 18, 24], unit="h")
PRODUCT = {
    "name": "test-product",
    "champion": "champ",
    "challengers": ["chall"],
    "baseline": "base",
    "headline_scores": [
        {"metric": "rmse", "variable": "geopotential", "level": 500, "lead_time": "24h"},
        {"metric": "rmse", "variable": "temperature", "level": 850, "lead_time": "24h"},
        {"metric": "rmse", "variable": "2m_temperature", "level": -1, "lead_time": "24h"},
    ],
    "guard_scores": [{"metric": "rmse", "lead_time": "24h"}],
    "window": 8,
    "min_cycles": 4,
    "rollback_after": 2,
}


@pytest.fixture
def env(tmp_path, wx_env, monkeypatch):
    """A registry of three 24 h persistence models and the product, in a temporary home."""
    registry = tmp_path / "registry" / "models"
    registry.mkdir(parents=True)
    entry = yaml.safe_load((DEFAULT_REGISTRY_DIR / "persistence.yaml").read_text())
    for name in ("champ", "chall", "base"):
        (registry / f"{name}.yaml").write_text(
            yaml.safe_dump({**entry, "name": name, "max_lead_time": "24h"})
        )
    products = registry.parent / "products"
    products.mkdir()
    (products / "test-product.yaml").write_text(yaml.safe_dump(PRODUCT))
    monkeypatch.setenv("WXPLAT_REGISTRY_DIR", str(registry))
    monkeypatch.setenv("WXPLAT_SCORECARD_BASELINE", "base")
    from weather_assets.settings import load_settings

    return load_settings()


def _fill(settings, offsets, *, skip=(), **kwargs) -> None:
    """Forecasts of every model and cycle (but ``skip``: (model, cycle index)) and scores."""
    store = Storage(settings.storage_root)
    specs = {s.name: s for s in load_registry(settings.registry_dir)}
    table = scores(offsets, n=N, **kwargs)
    for i, t in enumerate(CYCLES):
        analysis = simulate_state(t)
        for name, spec in specs.items():
            if (name, i) in skip:
                continue
            fc = persistence_forecast(analysis, LEADS)
            store.write_zarr(fc, forecast_relpath(spec, settings, t))
            own = table[
                (table["model"] == name) & (table["analysis_time"] == t.replace(tzinfo=None))
            ]
            write_table(store, own, scores_relpath(spec, settings, t))


def _defs(settings) -> dg.Definitions:
    import definitions

    return definitions.build_definitions(settings)


def _run(defs, instance, key, partition=None, ok=True):
    job = defs.resolve_implicit_global_asset_job_def()
    return job.execute_in_process(
        instance=instance, partition_key=partition, asset_selection=[key], raise_on_error=ok
    )


def _fail_forecast(defs, instance, model: str, cycle: datetime) -> None:
    """Record in ``instance`` a failed run of ``forecast/<model>`` for ``cycle`` (its blocking
    checks refused the forecast: nothing committed), as the UI shows it."""
    key = forecast_key(model)
    parts = defs.resolve_assets_def(key).partitions_def

    @dg.asset(key=key, partitions_def=parts)
    def refused():
        raise ValueError("blocking check no_nans failed: the forecast was not committed")

    partition = time_to_partition_key(cycle)
    dg.materialize([refused], instance=instance, partition_key=partition, raise_on_error=False)
    status = instance.get_status_by_partition(key, [partition], parts)
    assert status[partition] == dg.AssetPartitionStatus.FAILED


def _metadata(result, key) -> dict:
    [mat] = [m for m in result.asset_materializations_for_node(key.to_python_identifier())]
    return {k: v.value for k, v in mat.metadata.items()}


def _alerts(instance, result) -> list[dict]:
    logs = instance.all_logs(result.run_id)
    return [
        json.loads(e.user_message.split("ALERT ", 1)[1])
        for e in logs
        if e.user_message and "ALERT {" in e.user_message
    ]


def _cfgrib(path, **keys) -> xr.Dataset:
    return xr.open_dataset(
        path,
        engine="cfgrib",
        backend_kwargs={"filter_by_keys": keys, "indexpath": "", "read_keys": ["paramId"]},
    )


def test_a_better_challenger_is_promoted_and_published_as_grib2(env):
    _fill(env, {"champ": 0.0, "chall": -0.3, "base": 0.5})
    defs = _defs(env)
    with dg.instance_for_test() as instance:
        result = _run(defs, instance, promotion_key("test-product"))
        meta = _metadata(result, promotion_key("test-product"))
        assert meta["champion"] == "chall" and meta["previous_champions"] == "champ"
        assert meta["as_of"] == time_to_partition_key(CYCLES[-1])
        assert "promote" in meta["history"] and "champ -> chall" in meta["history"]
        assert "chall@default" in meta["artifact_versions"]
        alerts = _alerts(instance, result)
        assert [a["kind"] for a in alerts] == ["product_promote"]
        assert alerts[0]["old_champion"] == "champ" and alerts[0]["new_champion"] == "chall"
        store = Storage(env.storage_root)
        decisions = read_table(store, paths.promotion_path("test-product", "decisions.parquet"))
        # Idempotent: the same decisions again, and no second alert for the same promotion.
        again = _run(defs, instance, promotion_key("test-product"))
        pd.testing.assert_frame_equal(
            decisions,
            read_table(store, paths.promotion_path("test-product", "decisions.parquet")),
        )
        assert _alerts(instance, again) == []
        assert _metadata(again, promotion_key("test-product"))["champion"] == "chall"

        # The first cycle publishes the declared champion, the last one the promoted one.
        first = _metadata(
            _run(defs, instance, product_key("test-product"), time_to_partition_key(CYCLES[0])),
            product_key("test-product"),
        )
        assert first["model"] == "champ"
        key = time_to_partition_key(CYCLES[-1])
        last = _metadata(
            _run(defs, instance, product_key("test-product"), key), product_key("test-product")
        )
        assert last["model"] == "chall" and last["artifact_version"] == "default"
        assert last["published_as"] == "champion"
        rerun = _metadata(
            _run(defs, instance, product_key("test-product"), key), product_key("test-product")
        )
        assert rerun["model"] == "chall" and rerun["grib2_sha256"] == last["grib2_sha256"]

    zarr = store.open_zarr(product_relpath("test-product", env, CYCLES[-1]))
    assert (
        zarr.attrs["wxplat_model"] == "chall" and zarr.attrs["wxplat_artifact_version"] == "default"
    )
    grib = store.path(grib_relpath("test-product", env, CYCLES[-1]))
    assert last["grib2_path"].endswith(".grib2")
    side = json.loads(sidecar_path(grib).read_text())
    assert side["attrs"]["model"] == "chall" and side["attrs"]["artifact_version"] == "default"
    assert side["attrs"]["product"] == "test-product"
    assert side["sha256"] == last["grib2_sha256"]
    # Every message carries the generating process of (model, artifact version).
    with open(grib, "rb") as f:
        gpis = set()
        while (h := eccodes.codes_grib_new_from_file(f)) is not None:
            gpis.add(eccodes.codes_get(h, "generatingProcessIdentifier"))
            eccodes.codes_release(h)
    assert gpis == {side["generatingProcessIdentifier"]} == {last["generating_process_identifier"]}
    # cfgrib reads the canonical variables back under their GRIB names and levels.
    iso = _cfgrib(grib, typeOfLevel="isobaricInhPa")
    assert {"z", "t"} <= set(iso.data_vars)
    assert sorted(iso["isobaricInhPa"].values.tolist()) == [500.0, 850.0]
    assert iso["z"].attrs["GRIB_paramId"] == 129 and iso["t"].attrs["GRIB_paramId"] == 130
    msl = _cfgrib(grib, typeOfLevel="meanSea")["msl"]
    t2m = _cfgrib(grib, typeOfLevel="heightAboveGround", level=2)["t2m"]
    wind = _cfgrib(grib, typeOfLevel="heightAboveGround", level=10)
    assert {"u10", "v10"} <= set(wind.data_vars)
    assert list(t2m["step"].values) == list(LEADS.values)
    np.testing.assert_allclose(
        t2m.values, zarr["2m_temperature"].isel(time=0).values, atol=0.01 * 40
    )
    np.testing.assert_allclose(
        msl.values, zarr["mean_sea_level_pressure"].isel(time=0).values, rtol=1e-3
    )
    z500 = iso["z"].sel(isobaricInhPa=500).values
    np.testing.assert_allclose(
        z500, zarr["geopotential"].sel(level=500).isel(time=0).values, rtol=1e-3
    )


def test_a_worse_challenger_stays_in_shadow(env):
    _fill(env, {"champ": 0.0, "chall": 0.3, "base": 0.5})
    with dg.instance_for_test() as instance:
        meta = _metadata(
            _run(_defs(env), instance, promotion_key("test-product")), promotion_key("test-product")
        )
    assert meta["champion"] == "champ" and meta["decision"] == "keep"
    assert "worse" in meta["table"] and meta["changes"] == 0


def test_a_champion_failing_its_checks_rolls_back_to_the_baseline(env):
    # champ's forecast of cycle 5 is missing (its blocking checks refused to commit it).
    _fill(env, {"champ": 0.0, "chall": 0.3, "base": 0.5}, skip={("champ", 5)})
    defs = _defs(env)
    with dg.instance_for_test() as instance:
        _fail_forecast(defs, instance, "champ", CYCLES[5])
        result = _run(defs, instance, product_key("test-product"), time_to_partition_key(CYCLES[5]))
        meta = _metadata(result, product_key("test-product"))
        assert meta["model"] == "base" and meta["published_as"] == "rollback"
        assert "no committed forecast" in meta["reason"]
        [alert] = _alerts(instance, result)
        assert alert["kind"] == "product_rollback" and alert["new_champion"] == "base"
        # ... for the next cycles too, although champ's forecast is back.
        nxt = _metadata(
            _run(defs, instance, product_key("test-product"), time_to_partition_key(CYCLES[6])),
            product_key("test-product"),
        )
        assert nxt["model"] == "base" and nxt["champion"] == "base"


def test_a_champion_forecast_not_there_yet_is_waited_for_not_rolled_back(env):
    # champ's forecast of cycle 5 has not run yet (the baseline's was faster): nothing is
    # published, nobody is alerted; once it lands, the champion's forecast is published.
    _fill(env, {"champ": 0.0, "chall": 0.3, "base": 0.5}, skip={("champ", 5)})
    defs = _defs(env)
    key, partition = product_key("test-product"), time_to_partition_key(CYCLES[5])
    with dg.instance_for_test() as instance:
        early = _run(defs, instance, key, partition)
        assert early.success and not early.asset_materializations_for_node(
            key.to_python_identifier()
        )
        assert _alerts(instance, early) == []
        store = Storage(env.storage_root)
        spec = {s.name: s for s in load_registry(env.registry_dir)}["champ"]
        store.write_zarr(
            persistence_forecast(simulate_state(CYCLES[5]), LEADS),
            forecast_relpath(spec, env, CYCLES[5]),
        )
        meta = _metadata(_run(defs, instance, key, partition), key)
        assert meta["model"] == "champ" and meta["published_as"] == "champion"


def test_degraded_scores_roll_back_after_k_cycles(env):
    # champ is worse than the baseline on cycles 2 and 3: rolled back when cycle 3 is verified
    # (24 h later: cycle 7).
    _fill(env, {"champ": 0.0, "chall": 0.3, "base": 0.5}, per_cycle={"champ": {2: 1.0, 3: 1.0}})
    defs = _defs(env)
    with dg.instance_for_test() as instance:
        before = _run(defs, instance, product_key("test-product"), time_to_partition_key(CYCLES[6]))
        assert _metadata(before, product_key("test-product"))["model"] == "champ"
        after = _run(defs, instance, product_key("test-product"), time_to_partition_key(CYCLES[7]))
        assert _metadata(after, product_key("test-product"))["model"] == "base"
        meta = _metadata(
            _run(defs, instance, promotion_key("test-product")), promotion_key("test-product")
        )
    assert "rollback" in meta["history"] and "2 consecutive" in meta["history"]


def test_pin_and_unpin_by_the_cli(env):
    from weather_assets.cli import app

    _fill(env, {"champ": 0.0, "chall": 0.3, "base": 0.5})
    runner = CliRunner()
    out = runner.invoke(
        app,
        [
            "product",
            "pin",
            "test-product",
            "chall",
            "--from",
            "2026-01-02T1200Z",
            "--reason",
            "test",
        ],
    )
    assert out.exit_code == 0, out.output
    bad = runner.invoke(app, ["product", "pin", "test-product", "nope"])
    assert bad.exit_code == 1 and "not a model of test-product" in bad.output
    defs = _defs(env)
    with dg.instance_for_test() as instance:
        pinned = _run(defs, instance, product_key("test-product"), time_to_partition_key(CYCLES[8]))
        assert _metadata(pinned, product_key("test-product"))["model"] == "chall"
        unpinned_early = _run(
            defs, instance, product_key("test-product"), time_to_partition_key(CYCLES[5])
        )
        assert _metadata(unpinned_early, product_key("test-product"))["model"] == "champ"
        _run(defs, instance, promotion_key("test-product"))
    shown = runner.invoke(app, ["product", "show", "test-product"])
    assert shown.exit_code == 0, shown.output
    assert (
        "pin chall from 2026-01-02T1200Z" in shown.output and "champion now: chall" in shown.output
    )
    out = runner.invoke(app, ["product", "unpin", "test-product", "--from", "2026-01-03T0000Z"])
    assert out.exit_code == 0, out.output
    with dg.instance_for_test() as instance:
        meta = _metadata(
            _run(defs, instance, promotion_key("test-product")), promotion_key("test-product")
        )
    # Unpinned, the better declared champion is promoted back over the pinned challenger.
    assert meta["pinned"] == "none" and meta["champion"] == "champ"


def _requested(result, key: dg.AssetKey) -> set[str]:
    for res in result.results:
        if res.key == key:
            subset = res.true_subset
            if subset.is_partitioned:
                return set(subset.expensively_compute_partition_keys())
            return {"all"} if subset.size else set()
    return set()


def test_automation_publishes_after_a_forecast_and_decides_after_new_scores(env):
    from weather_assets.keys import forecast_key, verification_key

    defs = _defs(env)
    latest = defs.resolve_asset_graph().get(product_key("test-product")).partitions_def
    latest = latest.get_last_partition_key()
    with dg.instance_for_test() as instance:
        first = dg.evaluate_automation_conditions(defs=defs, instance=instance)
        # The champion's forecast of the latest cycle lands (the challenger's has not yet):
        # the product runs without waiting for every model's forecast.
        instance.report_runless_asset_event(
            dg.AssetMaterialization(forecast_key("champ"), partition=latest)
        )
        instance.report_runless_asset_event(
            dg.AssetMaterialization(verification_key("chall"), partition=latest)
        )
        second = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, cursor=first.cursor
        )
    assert _requested(second, product_key("test-product")) == {latest}
    assert _requested(second, promotion_key("test-product")) == {"all"}


def test_pins_recorded_at_the_same_moment_are_all_kept(tmp_path):
    """Each pin is its own object: two operators pinning at once never lose one."""
    from weather_assets.products.assets import read_pins, record_pin
    from weather_assets.products.promotion import Pin

    store = Storage(str(tmp_path / "storage"))
    assert read_pins(store, "p") == []
    pins = [Pin("pin", CYCLES[1], "chall", by="a"), Pin("unpin", CYCLES[2], by="b")]
    pins.append(Pin("pin", CYCLES[3], "base", by="c"))
    for p in pins:
        record_pin(store, "p", p)
    assert read_pins(store, "p") == pins  # all of them, in the order recorded
