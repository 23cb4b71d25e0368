"""Reforecast backfills: runs of K partitions of normalized/<model> and forecast/<model>.

A multi-run backfill (``BackfillPolicy.multi_run(K)``, K = the entry's
``runtime.backfill_partitions``) gives each run a partition range; these tests launch such a
run the way the backfill daemon does (the range tags on one run) and check that every
partition gets its own materialization, stores and partitioned check results, that the run
loads the artifact and builds the network once, that batched cycles keep their own forcing
times, and that a cycle refused by its checks is not committed while the others are.
"""

# No `from __future__ import annotations`: Dagster inspects annotations at runtime.

from datetime import UTC, datetime, timedelta

import dagster as dg
import numpy as np
import pytest
import xarray as xr
import yaml
from dagster._core.definitions.observe import observe  # in-process observation for tests
from dagster._utils.test.data_versions import get_stale_status_resolver

import model_registry.resolve as resolve
import resources.runners as runners
import weather_assets.forecast.assets as forecast_assets
from model_registry.registry import DEFAULT_REGISTRY_DIR, load_registry, load_spec
from model_registry.training import untrained_artifact
from resources.layout import open_forecast, raw_inputs_relpath, store_relpath
from resources.storage import Storage, StorageResource
from weather_assets.forecast.assets import build_model_assets, build_registry_assets
from weather_assets.keys import forecast_key, normalized_key
from weather_assets.lineage import recorded_version
from weather_assets.partitions import analysis_time_partitions, time_to_partition_key
from weather_assets.settings import load_settings
from weather_assets.simulator import Grid, simulate_state

GRID = Grid(-90.0, 90.0, 0.0, 340.0, 20.0)  # 10 x 18, matching the settings below
T0 = datetime(2026, 1, 1, 0, tzinfo=UTC)
TIMES = [T0 + timedelta(hours=6 * k) for k in range(4)]  # 00Z, 06Z, 12Z, 18Z
KEYS = [time_to_partition_key(t) for t in TIMES]
RAW_KEY = dg.AssetKey(["raw_inputs", "simulator"])
PARTS = analysis_time_partitions("2026-01-01T0000Z")
HP = {"n_modes": [4, 8], "hidden_channels": 4, "n_layers": 1}
FORCINGS = ["cos_local_hour", "sin_local_hour"]


def range_tags(first: str, last: str) -> dict[str, str]:
    """The tags the backfill daemon puts on a run of a partition range."""
    return {
        "dagster/asset_partition_range_start": first,
        "dagster/asset_partition_range_end": last,
    }


def home(tmp_path, name: str) -> dict:
    settings = load_settings(
        {
            "WXPLAT_HOME": str(tmp_path / name),
            "WXPLAT_DOMAIN": "w0_s-90_e340_n90",
            "WXPLAT_RESOLUTION": "dx20deg_dy20deg",
        }
    )
    storage = Storage(settings.storage_root)
    for t in TIMES:
        storage.write_zarr(simulate_state(t, GRID), raw_inputs_relpath(settings, t))
    return {"settings": settings, "storage": storage}


def entry(tmp_path, name: str, **overrides):
    data = yaml.safe_load((DEFAULT_REGISTRY_DIR / "persistence.yaml").read_text())
    data.update(name=name, description=f"test model {name}", max_lead_time="24h", **overrides)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_spec(path)


def fno_spec(tmp_path, *, batch_cycles: int = 1, backfill_partitions: int = 4):
    artifact = tmp_path / "tiny-fno.zip"
    if not artifact.exists():
        untrained_artifact(
            artifact, grid=GRID, hyperparameters=HP, forcings=FORCINGS, name="tiny-fno"
        )
    return entry(
        tmp_path,
        "tiny-fno",
        architecture="fno",
        artifact={"uri": str(artifact)},
        forcings=FORCINGS,
        runtime={"backfill_partitions": backfill_partitions, "batch_cycles": batch_cycles},
    )


def assets_for(env, spec):
    return build_model_assets(
        spec, partitions_def=PARTS, raw_inputs_key=RAW_KEY, settings=env["settings"]
    )


def materialize(env, assets, *, instance, selection=None, config=None, **kw):
    return dg.materialize(
        assets,
        instance=instance,
        resources={"storage": StorageResource(root=env["settings"].storage_root)},
        selection=selection,
        run_config={"ops": {"forecast__tiny_fno": {"config": config}}} if config else None,
        **kw,
    )


def record_raw_inputs(instance, version: str) -> None:
    """What ingest records: each cycle's raw inputs with their data version."""
    for key in KEYS:
        instance.report_runless_asset_event(
            dg.AssetMaterialization(
                asset_key=RAW_KEY, partition=key, tags={"dagster/data_version": version}
            )
        )


@pytest.fixture
def counted(monkeypatch):
    """Counts of artifact loads (from the zip) and network builds in this process."""
    counts = {"load_artifact": 0, "build_model": 0}
    load, build = resolve.load_artifact, runners.build_model

    def counting_load(*args, **kwargs):
        counts["load_artifact"] += 1
        return load(*args, **kwargs)

    def counting_build(*args, **kwargs):
        counts["build_model"] += 1
        return build(*args, **kwargs)

    resolve._load_cached.cache_clear()
    monkeypatch.setattr(resolve, "load_artifact", counting_load)
    monkeypatch.setattr(runners, "build_model", counting_build)
    yield counts
    resolve._load_cached.cache_clear()


def test_shipped_models_backfill_in_runs_of_their_registry_k(tmp_path):
    settings = load_settings({"WXPLAT_HOME": str(tmp_path / "home")})
    specs = load_registry()
    assets = build_registry_assets(
        specs, partitions_def=PARTS, raw_inputs_key=RAW_KEY, settings=settings
    )
    by_key = {a.key: a for a in assets if isinstance(a, dg.AssetsDefinition) and a.is_executable}
    for spec in specs:
        k = spec.runtime.backfill_partitions
        assert k == 16  # the default; an entry's runtime may set another
        for key in (normalized_key(spec.name), forecast_key(spec.name)):
            assert by_key[key].backfill_policy == dg.BackfillPolicy.multi_run(k)


@pytest.mark.parametrize("batch_cycles", [1, 4], ids=["one-by-one", "batched"])
def test_partition_range_in_one_run(tmp_path, counted, batch_cycles):
    """Four cycles (00Z, 06Z, 12Z, 18Z) of a forced FNO in one run, as a backfill runs them."""
    spec = fno_spec(tmp_path, batch_cycles=batch_cycles)
    env = home(tmp_path, "range")
    assets = assets_for(env, spec)
    instance = dg.DagsterInstance.ephemeral()
    observe([assets[0]], instance=instance)  # the artifact's sha256, as its sensor records it
    result = materialize(
        env,
        assets,
        instance=instance,
        selection=[normalized_key(spec.name), forecast_key(spec.name)],
        tags=range_tags(KEYS[0], KEYS[-1]),
    )
    assert result.success
    # The artifact is read from its zip once and the network built once for the whole run.
    assert counted == {"load_artifact": 1, "build_model": 1}

    for node in ("normalized__tiny_fno", "forecast__tiny_fno"):
        mats = result.asset_materializations_for_node(node)
        assert sorted(m.partition for m in mats) == KEYS
    forecasts = {
        m.partition: m for m in result.asset_materializations_for_node("forecast__tiny_fno")
    }
    for key, t in zip(KEYS, TIMES, strict=True):
        md = forecasts[key].metadata
        assert f"/{key}/member0/forecast.zarr" in md["path"].value  # its own store
        assert md["steps"].value == 4 and md["stores"].value == 1
        if batch_cycles > 1:
            assert md["batch_cycles"].value == 4
        assert "map" not in md  # no maps in backfill runs (a run of one draws it)
        # Its cost: its share of the batch's CPU time, the batch's peak, its own bytes.
        assert md["device"].value == "cpu" and md["gpus"].value == 0
        assert md["cpu_seconds"].value > 0 and md["peak_memory_bytes"].value > 0
        assert md["bytes"].value > 0
        fc = open_forecast(env["storage"], spec, env["settings"], t)
        assert fc["time"].values[0] == np.datetime64(t.replace(tzinfo=None), "ns")
        assert not fc["2m_temperature"].isnull().any()
    normalized = {
        m.partition: m for m in result.asset_materializations_for_node("normalized__tiny_fno")
    }
    assert len({m.metadata["sha256"].value for m in normalized.values()}) == 4

    evaluations = result.get_asset_check_evaluations()
    checks = ("input_drift", "schema", "no_nans", "physical_ranges")
    assert sorted((e.partition, e.check_name) for e in evaluations) == sorted(
        (key, check) for key in KEYS for check in checks
    )
    assert all(e.passed for e in evaluations if e.check_name != "physical_ranges")
    for e in evaluations:  # each tied to the materialization of its own partition
        record = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=e.asset_key, asset_partitions=[e.partition]),
            limit=1,
        ).records[0]
        assert e.target_materialization_data.storage_id == record.storage_id
    assert instance.get_materialized_partitions(forecast_key(spec.name)) == set(KEYS)
    assert env["storage"].list_dir(".staging") == []

    # Lineage: every partition is fresh, and each forecast is the one a run of its partition
    # alone makes (same artifact, same cycle): the batch kept each cycle's forcing times.
    status = get_stale_status_resolver(instance, assets)
    for key in KEYS:
        assert status.get_status(forecast_key(spec.name), key).value == "FRESH"
    alone = home(tmp_path, "alone")
    single = dg.DagsterInstance.ephemeral()
    for key in KEYS:
        assert materialize(
            alone, assets_for(alone, spec), instance=single, partition_key=key
        ).success
    for t in TIMES:
        got = open_forecast(env["storage"], spec, env["settings"], t).load()
        want = open_forecast(alone["storage"], spec, alone["settings"], t).load()
        if batch_cycles == 1:
            xr.testing.assert_identical(got, want)  # the same code path, byte for byte
        else:  # batched kernels sum in another order: float32 rounding, nothing more
            xr.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)

    # A retrained artifact makes every cycle of the run stale (its lineage names it).
    untrained_artifact(
        tmp_path / "tiny-fno.zip",
        grid=GRID,
        hyperparameters=HP,
        forcings=FORCINGS,
        name="tiny-fno",
        seed=1,
    )
    observe([assets[0]], instance=instance)
    status = get_stale_status_resolver(instance, assets)
    for key in KEYS:
        assert status.get_status(forecast_key(spec.name), key).value == "STALE"


def test_one_partition_range_is_recorded_like_a_partition_run(tmp_path):
    """Automation launches ranges of one partition for assets with a backfill policy."""
    spec = entry(tmp_path, "pers")
    ranged_env, single_env = home(tmp_path, "ranged"), home(tmp_path, "single")
    ranged, single = dg.DagsterInstance.ephemeral(), dg.DagsterInstance.ephemeral()
    a = dg.materialize(
        assets_for(ranged_env, spec),
        instance=ranged,
        resources={"storage": StorageResource(root=ranged_env["settings"].storage_root)},
        tags=range_tags(KEYS[1], KEYS[1]),
    )
    b = dg.materialize(
        assets_for(single_env, spec),
        instance=single,
        resources={"storage": StorageResource(root=single_env["settings"].storage_root)},
        partition_key=KEYS[1],
    )
    assert a.success and b.success
    for node in ("normalized__pers", "forecast__pers"):
        (ma,), (mb,) = (
            a.asset_materializations_for_node(node),
            b.asset_materializations_for_node(node),
        )
        assert ma.partition == mb.partition == KEYS[1]
        assert set(ma.metadata) == set(mb.metadata)
    norm_a = recorded_version(ranged, normalized_key("pers"), KEYS[1])
    norm_b = recorded_version(single, normalized_key("pers"), KEYS[1])
    assert norm_a == norm_b is not None  # the store's checksum, as a partition run records it

    def checks(r):
        return sorted(
            (e.partition, e.check_name, e.passed) for e in r.get_asset_check_evaluations()
        )

    assert checks(a) == checks(b)


def test_refused_cycle_is_not_committed_and_the_others_are(tmp_path, monkeypatch):
    """A cycle failing a blocking check keeps its stored version; the rest of the run commits."""
    spec = entry(tmp_path, "pers", runtime={"backfill_partitions": 4})
    env = home(tmp_path, "refused")
    assets = assets_for(env, spec)
    instance = dg.DagsterInstance.ephemeral()
    resources = {"storage": StorageResource(root=env["settings"].storage_root)}
    record_raw_inputs(instance, "v1")
    assert dg.materialize(
        assets, instance=instance, resources=resources, tags=range_tags(KEYS[0], KEYS[-1])
    ).success
    before = open_forecast(env["storage"], spec, env["settings"], TIMES[1]).load()

    checks = forecast_assets.forecast_check_results

    def nan_at_06z(ds, spec_, t):  # the 06Z cycle's forecast "has NaNs"
        results = checks(ds, spec_, t)
        if t == TIMES[1]:
            results[1] = dg.AssetCheckResult(
                check_name="no_nans", passed=False, description="NaNs in: 2m_temperature"
            )
        return results

    monkeypatch.setattr(forecast_assets, "forecast_check_results", nan_at_06z)
    # The raw inputs change (a republished analysis), so every cycle is forecast again.
    for t in TIMES:
        state = simulate_state(t, GRID)
        state["2m_temperature"] += 1.0
        env["storage"].write_zarr(state, raw_inputs_relpath(env["settings"], t))
    record_raw_inputs(instance, "v2")
    result = dg.materialize(
        assets,
        instance=instance,
        resources=resources,
        tags=range_tags(KEYS[0], KEYS[-1]),
        raise_on_error=False,
    )
    assert not result.success
    failure = result.failure_data_for_node("forecast__pers").error
    assert "1 of 4 cycle(s) failed" in failure.message
    assert (
        f"{KEYS[1]}: StagedWriteRefused: forecast of pers for {KEYS[1]} was refused"
        in failure.message
    )
    assert "no_nans: NaNs in: 2m_temperature" in failure.message

    # The three good cycles are committed and recorded, the refused one neither.
    mats = result.asset_materializations_for_node("forecast__pers")
    assert sorted(m.partition for m in mats) == [KEYS[0], KEYS[2], KEYS[3]]
    for t in (TIMES[0], TIMES[2], TIMES[3]):
        fc = open_forecast(env["storage"], spec, env["settings"], t)
        want = simulate_state(t, GRID)["2m_temperature"].values[0] + 1.0
        np.testing.assert_allclose(fc["2m_temperature"].values[0, 0], want, rtol=1e-6)
    after = open_forecast(env["storage"], spec, env["settings"], TIMES[1]).load()
    xr.testing.assert_identical(after, before)  # the stored version is untouched
    assert env["storage"].list_dir(".staging") == []

    # Every cycle's checks are reported on its own partition, the refused one's failed.
    evaluations = {(e.partition, e.check_name): e for e in result.get_asset_check_evaluations()}
    assert len(evaluations) == 16  # 4 cycles: input_drift, schema, no_nans, physical_ranges
    assert not evaluations[(KEYS[1], "no_nans")].passed
    assert all(
        e.passed for (k, c), e in evaluations.items() if k != KEYS[1] and c != "physical_ranges"
    )

    # The committed cycles carry their lineage: fresh, while the refused one is stale (its
    # normalized input changed and no forecast was made from it).
    status = get_stale_status_resolver(instance, assets)
    for key in (KEYS[0], KEYS[2], KEYS[3]):
        assert status.get_status(forecast_key("pers"), key).value == "FRESH"
    assert status.get_status(forecast_key("pers"), KEYS[1]).value == "STALE"


def test_missing_input_fails_only_its_cycle(tmp_path):
    spec = entry(tmp_path, "pers")
    env = home(tmp_path, "missing")
    assets = assets_for(env, spec)
    instance = dg.DagsterInstance.ephemeral()
    resources = {"storage": StorageResource(root=env["settings"].storage_root)}
    for key in (KEYS[0], KEYS[2], KEYS[3]):  # no normalized input for 06Z
        assert dg.materialize(
            assets,
            instance=instance,
            resources=resources,
            partition_key=key,
            selection=[normalized_key("pers")],
        ).success
    result = dg.materialize(
        assets,
        instance=instance,
        resources=resources,
        tags=range_tags(KEYS[0], KEYS[-1]),
        selection=[forecast_key("pers")],
        raise_on_error=False,
    )
    assert not result.success
    message = result.failure_data_for_node("forecast__pers").error.message
    assert (
        f"{KEYS[1]}: FileNotFoundError: normalized input of pers for {KEYS[1]} is missing"
        in message
    )
    assert sorted(
        m.partition for m in result.asset_materializations_for_node("forecast__pers")
    ) == [KEYS[0], KEYS[2], KEYS[3]]
    assert not env["storage"].exists(
        store_relpath(spec, env["settings"], TIMES[1], "default", "forecast")
    )
