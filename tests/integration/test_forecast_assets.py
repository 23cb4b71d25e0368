"""Per-model assets through Dagster: normalized, forecast, checks, artifact versions, failures."""

# No `from __future__ import annotations`: Dagster inspects annotations at runtime.

import json
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import numpy as np
import pytest
import torch
import xarray as xr
import yaml
from dagster._core.definitions.observe import observe  # in-process observation for tests
from dagster._utils.test.data_versions import get_stale_status_resolver

from model_registry.architectures import build_model, new_model
from model_registry.artifact import GridSummary, build_artifact, load_artifact, sha256_file
from model_registry.registry import DEFAULT_REGISTRY_DIR, k8s_config, load_registry, load_spec
from resources.layout import open_forecast, raw_inputs_relpath, store_relpath
from resources.storage import Storage, StorageResource
from weather_assets.forecast.assets import build_model_assets, build_registry_assets
from weather_assets.forecast.normalize import compute_stats, stack_features, standardize
from weather_assets.forecast.rollout import rollout
from weather_assets.keys import forecast_key
from weather_assets.partitions import analysis_time_partitions
from weather_assets.settings import load_settings
from weather_assets.simulator import Grid, simulate_state

GRID = Grid(-90.0, 90.0, 0.0, 340.0, 20.0)  # 10 x 18, matching the settings below
T0 = datetime(2026, 1, 1, 6, tzinfo=UTC)
KEY = "2026-01-01T0600Z"
RAW_KEY = dg.AssetKey(["raw_inputs", "simulator"])
PARTS = analysis_time_partitions()
HP = {"n_modes": [4, 8], "hidden_channels": 4, "n_layers": 1}


@pytest.fixture
def env(tmp_path):
    settings = load_settings(
        {
            "WXPLAT_HOME": str(tmp_path / "home"),
            "WXPLAT_DOMAIN": "w0_s-90_e340_n90",
            "WXPLAT_RESOLUTION": "dx20deg_dy20deg",
        }
    )
    storage = Storage(settings.storage_root)
    storage.write_zarr(simulate_state(T0, GRID), raw_inputs_relpath(settings, T0))
    registry = tmp_path / "models"
    registry.mkdir()
    return {"settings": settings, "storage": storage, "registry": registry, "tmp": tmp_path}


def write_entry(env, name, **overrides) -> Path:
    entry = yaml.safe_load((DEFAULT_REGISTRY_DIR / "persistence.yaml").read_text())
    entry.update(name=name, description=f"test model {name}", max_lead_time="24h", **overrides)
    path = env["registry"] / f"{name}.yaml"
    path.write_text(yaml.safe_dump(entry))
    return path


def make_artifact(
    path: Path,
    grid: Grid = GRID,
    version: str = "v1",
    forcings: tuple[str, ...] = (),
    nan_weights: bool = False,
) -> Path:
    hist = xr.concat([simulate_state(T0 + timedelta(hours=6 * k), grid) for k in range(3)], "time")
    features = [str(f) for f in stack_features(hist, _features()).state_feature.values]
    torch.manual_seed(0)
    weights = new_model("fno", HP, len(features) + len(forcings), len(features)).state_dict()
    if nan_weights:  # a broken training run: every output is NaN
        weights = {
            k: torch.full_like(v, float("nan")) if torch.is_tensor(v) else v
            for k, v in weights.items()
        }
    return build_artifact(
        path,
        name="tiny-fno",
        architecture="fno",
        hyperparameters=HP,
        input_features=features,
        output_features=features,
        forcings=forcings,
        timestep=timedelta(hours=6),
        stats=compute_stats(stack_features(hist, features)),
        state_dict=weights,
        grid=GridSummary.from_coords(grid.latitude, grid.longitude),
        version=version,
    )


def _features():
    return load_spec(DEFAULT_REGISTRY_DIR / "persistence.yaml").input_features


def fno_spec(env, artifact: Path, **overrides):
    path = write_entry(
        env, "tiny-fno", architecture="fno", artifact={"uri": str(artifact)}, **overrides
    )
    return load_spec(path)


def run(env, assets, *, selection=None, instance=None, raise_on_error=True, resources=None):
    return dg.materialize(
        assets,
        partition_key=KEY,
        instance=instance or dg.DagsterInstance.ephemeral(),
        resources={
            "storage": StorageResource(root=env["settings"].storage_root),
            **(resources or {}),
        },
        selection=selection,
        raise_on_error=raise_on_error,
    )


def assets_for(env, spec, **kw):
    return build_model_assets(
        spec, partitions_def=PARTS, raw_inputs_key=RAW_KEY, settings=env["settings"], **kw
    )


def test_shipped_registry_builds_without_artifacts(env):
    # fno-demo's artifact does not exist in a fresh checkout: definitions still load.
    assets = build_registry_assets(
        load_registry(), partitions_def=PARTS, raw_inputs_key=RAW_KEY, settings=env["settings"]
    )
    defs = dg.Definitions(
        assets=[a for a in assets if not isinstance(a, dg.AssetChecksDefinition)],
        asset_checks=[a for a in assets if isinstance(a, dg.AssetChecksDefinition)],
        resources={"storage": StorageResource(root=env["settings"].storage_root)},
    )
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {
        "model_artifact/fno-demo",
        "normalized/fno-demo",
        "forecast/fno-demo",
        "normalized/persistence",
        "forecast/persistence",
    } <= keys
    assert "model_artifact/persistence" not in keys
    fc = graph.get(dg.AssetKey(["forecast", "fno-demo"]))
    assert dg.AssetKey(["model_artifact", "fno-demo"]) in fc.parent_keys
    assert dg.AssetKey(["normalized", "fno-demo"]) in fc.parent_keys
    assert RAW_KEY in graph.get(dg.AssetKey(["normalized", "fno-demo"])).parent_keys
    assert fc.pools == {"cpu"}
    checks = {c.name for c in graph.asset_check_keys if c.asset_key == fc.key}
    assert checks == {"schema", "no_nans", "physical_ranges"}
    norm_key = dg.AssetKey(["normalized", "fno-demo"])
    assert {c.name for c in graph.asset_check_keys if c.asset_key == norm_key} == {"input_drift"}


def test_persistence_forecast_end_to_end(env):
    spec = load_spec(write_entry(env, "pers"))
    result = run(env, assets_for(env, spec))
    assert result.success
    mat = result.asset_materializations_for_node("forecast__pers")[0].metadata
    rel = store_relpath(spec, env["settings"], T0, "default", "forecast")
    assert mat["path"].value.endswith(rel)
    assert rel.startswith("pers/default/w0_s-90_e340_n90/dx20deg_dy20deg/2026-01-01T0600Z/member0")
    assert mat["steps"].value == 4 and mat["device"].value in ("cpu", "cuda")
    assert len(mat["step_seconds"].value) == 4 and mat["artifact_name"].value == "none"
    checks = result.get_asset_check_evaluations()
    assert {c.check_name for c in checks} == {
        "input_drift",
        "schema",
        "no_nans",
        "physical_ranges",
    }
    assert all(c.passed for c in checks), [(c.check_name, c.metadata) for c in checks]
    fc = open_forecast(env["storage"], spec, env["settings"], T0)
    raw = simulate_state(T0, GRID)
    assert fc.sizes["lead_time"] == 4
    for lead in range(4):
        np.testing.assert_allclose(
            fc["geopotential"].values[0, lead], raw["geopotential"].values[0]
        )
    norm = env["storage"].open_zarr(
        store_relpath(spec, env["settings"], T0, "default", "normalized")
    )
    assert list(norm["state_feature"].values) == spec.input_features


def test_fno_forecast_records_artifact_and_is_idempotent(env):
    artifact = make_artifact(env["tmp"] / "tiny.zip")
    spec = fno_spec(env, artifact)
    assets = assets_for(env, spec)
    fc_def = next(a for a in assets if getattr(a, "key", None) == forecast_key(spec.name))
    assert json.loads(fc_def.op.tags["dagster-k8s/config"]) == k8s_config(spec)
    instance = dg.DagsterInstance.ephemeral()
    observe([assets[0]], instance=instance)
    selection = [a.key for a in assets[1:3]]
    result = run(env, assets, selection=selection, instance=instance)
    assert result.success
    mat = result.asset_materializations_for_node("forecast__tiny_fno")[0].metadata
    assert mat["artifact_sha256"].value == sha256_file(artifact)
    assert mat["artifact_version"].value == "v1" and mat["artifact_name"].value == "tiny-fno"
    assert "/tiny-fno/v1/" in mat["path"].value
    assert all(c.passed for c in result.get_asset_check_evaluations())
    fc = open_forecast(env["storage"], spec, env["settings"], T0)
    assert fc.attrs["artifact_sha256"] == sha256_file(artifact)
    assert fc["2m_temperature"].encoding["chunks"] == (1, 1, 10, 18)

    again = run(env, assets, selection=[forecast_key(spec.name)], instance=instance)
    meta = again.asset_materializations_for_node("forecast__tiny_fno")[0].metadata
    assert meta["skipped"].value is True

    # A new artifact (new sha256 on observation) makes the forecast stale.
    status = get_stale_status_resolver(instance, assets[:3])
    assert status.get_status(forecast_key(spec.name), KEY).value == "FRESH"
    make_artifact(artifact, version="v2")
    observe([assets[0]], instance=instance)
    status = get_stale_status_resolver(instance, assets[:3])
    assert status.get_status(forecast_key(spec.name), KEY).value == "STALE"


FORCINGS = ("cos_local_hour", "sin_local_hour")


def test_fno_with_forcings_end_to_end(env):
    artifact = make_artifact(env["tmp"] / "forced.zip", forcings=FORCINGS)
    spec = fno_spec(env, artifact, forcings=list(FORCINGS))
    plain = fno_spec(env, make_artifact(env["tmp"] / "plain.zip"))
    assert spec.in_channels == len(spec.input_features) + 2
    from weather_assets.forecast.assets import _output_version

    assert _output_version(spec) != _output_version(plain)  # forcings change the numbers
    result = run(env, assets_for(env, spec)[1:])
    assert result.success
    md = result.asset_materializations_for_node("forecast__tiny_fno")[0].metadata
    assert md["steps"].value == 4
    assert all(c.passed for c in result.get_asset_check_evaluations())
    fc = open_forecast(env["storage"], spec, env["settings"], T0)
    assert fc.sizes["lead_time"] == 4 and not fc["2m_temperature"].isnull().any()
    # The asset rolls out with the forcings of the partition's analysis time.
    loaded = load_artifact(artifact)
    model = build_model("fno", HP, spec.in_channels, len(spec.output_features), loaded.state_dict)
    x0 = standardize(stack_features(simulate_state(T0, GRID), spec.input_features), loaded.stats)
    kw = dict(features=spec.input_features, timestep=spec.timestep, device="cpu")
    grid = dict(latitude=GRID.latitude, longitude=GRID.longitude, forcings=FORCINGS)
    expected = list(rollout(x0.values, model, loaded.stats, 4, analysis_time=T0, **kw, **grid))
    index = spec.input_features.index("2m_temperature")
    np.testing.assert_allclose(
        fc["2m_temperature"].values[0, -1], expected[-1].state[0, index], rtol=1e-5, atol=1e-3
    )


def test_artifact_forcings_must_match_the_registry(env):
    artifact = make_artifact(env["tmp"] / "plain.zip")  # trained without forcings
    spec = fno_spec(env, artifact, forcings=list(FORCINGS))
    result = run(env, assets_for(env, spec)[1:], raise_on_error=False)
    err = result.failure_data_for_node("normalized__tiny_fno").error
    message = str(err.cause or err)
    assert "does not fit model 'tiny-fno'" in message
    assert "forcings [] != registry ['cos_local_hour', 'sin_local_hour']" in message


def test_forecast_failing_a_blocking_check_is_never_committed(env):
    """Validate, then commit: a NaN forecast is refused and the stored one stays."""
    spec = fno_spec(env, make_artifact(env["tmp"] / "good.zip"))
    assert run(env, assets_for(env, spec)).success
    before = open_forecast(env["storage"], spec, env["settings"], T0).load()
    # The same artifact version retrained badly: NaN weights, so NaN everywhere.
    broken = fno_spec(env, make_artifact(env["tmp"] / "broken.zip", nan_weights=True))
    result = run(env, assets_for(env, broken), raise_on_error=False)
    assert not result.success
    evals = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert evals["schema"].passed and not evals["no_nans"].passed
    assert evals["no_nans"].description == (
        "NaNs in: 10m_u_component_of_wind, 10m_v_component_of_wind, 2m_temperature, "
        "geopotential@500, geopotential@850, mean_sea_level_pressure, temperature@500, "
        "temperature@850"
    )
    error = result.failure_data_for_node("forecast__tiny_fno").error
    assert "refused before commit" in str(error) and "no_nans" in str(error)
    after = open_forecast(env["storage"], spec, env["settings"], T0).load()
    xr.testing.assert_identical(after, before)
    assert env["storage"].list_dir(".staging") == []


def test_forecast_out_of_range_warns_and_is_committed(env):
    """physical_ranges only warns: the forecast is committed, the failed check shows."""
    hot = simulate_state(T0, GRID)
    hot["temperature"][0, 1, 4, 4] = 400.0  # persisted to every lead time
    env["storage"].write_zarr(hot, raw_inputs_relpath(env["settings"], T0))
    spec = load_spec(write_entry(env, "pers"))
    result = run(env, assets_for(env, spec))
    assert result.success
    evals = {c.check_name: c for c in result.get_asset_check_evaluations()}
    ranges = evals["physical_ranges"]
    assert not ranges.passed and ranges.severity == dg.AssetCheckSeverity.WARN
    assert ranges.description.startswith("out of range: temperature@850 [") and "400]" in (
        ranges.description
    )
    assert evals["schema"].passed and evals["no_nans"].passed
    fc = open_forecast(env["storage"], spec, env["settings"], T0)
    assert float(fc["temperature"].sel(level=850).max()) == 400.0


def test_missing_artifact_fails_only_that_model(env):
    fno = fno_spec(env, env["tmp"] / "absent.zip")
    pers = load_spec(write_entry(env, "pers"))
    assets = [*assets_for(env, fno)[1:], *assets_for(env, pers)]
    result = run(env, assets, raise_on_error=False)
    assert not result.success
    assert result.asset_materializations_for_node("forecast__pers")
    failure = result.failure_data_for_node("normalized__tiny_fno").error
    assert "artifact file not found" in str(failure.cause or failure)


def test_tampered_artifact_is_refused(env):
    artifact = make_artifact(env["tmp"] / "tiny.zip")
    digest = sha256_file(artifact)
    spec = fno_spec(env, artifact)
    make_artifact(artifact, version="v1b")  # replaced behind the registry's back
    pinned = load_spec(
        write_entry(
            env, "tiny-fno", architecture="fno", artifact={"uri": str(artifact), "sha256": digest}
        )
    )
    result = run(env, assets_for(env, pinned)[1:], raise_on_error=False)
    err = result.failure_data_for_node("normalized__tiny_fno").error
    assert "checksum mismatch" in str(err.cause or err)
    assert spec.artifact.sha256 is None


def test_grid_mismatch_names_both_grids(env):
    artifact = make_artifact(env["tmp"] / "coarse.zip", grid=Grid(-90.0, 90.0, 0.0, 330.0, 30.0))
    result = run(env, assets_for(env, fno_spec(env, artifact))[1:], raise_on_error=False)
    err = result.failure_data_for_node("normalized__tiny_fno").error
    message = str(err.cause or err)
    assert "input grid 10x18" in message and "artifact grid 7x12" in message


def test_ensemble_members_in_their_own_stores(env):
    spec = load_spec(write_entry(env, "ens", members=3))
    assert run(env, assets_for(env, spec)).success
    for m in range(3):
        assert env["storage"].exists(
            store_relpath(spec, env["settings"], T0, "default", "forecast", m)
        )
    fc = open_forecast(env["storage"], spec, env["settings"], T0)
    assert fc.sizes["member"] == 3
    control = fc["2m_temperature"].sel(member=0).values[0, 0]
    np.testing.assert_allclose(control, simulate_state(T0, GRID)["2m_temperature"].values[0])
    assert not np.allclose(fc["2m_temperature"].sel(member=1).values[0, 0], control)


ENTRY_POINT = textwrap.dedent(
    """
    import argparse
    from datetime import timedelta
    import xarray as xr
    from dagster_pipes import open_dagster_pipes
    from model_registry.networks import Persistence
    from weather_assets.forecast.normalize import identity_stats
    from resources.forecast_run import run_forecast

    parser = argparse.ArgumentParser()
    for arg in ("--input", "--output", "--analysis-time"):
        parser.add_argument(arg)
    args = parser.parse_args()
    with open_dagster_pipes() as pipes:
        state = xr.open_zarr(args.input)["state"].load()
        features = [str(f) for f in state["state_feature"].values]
        summary = run_forecast(state, Persistence(), identity_stats(features), steps=4,
                               timestep=timedelta(hours=6), stores=[args.output])
        pipes.report_asset_materialization(metadata={"steps": summary.steps, "image": "local"})
    """
)


def test_container_model_through_pipes(env):
    script = env["tmp"] / "entry.py"
    script.write_text(ENTRY_POINT)
    spec = load_spec(
        write_entry(
            env,
            "boxed",
            architecture="container",
            container={"command": [sys.executable, str(script)]},
        )
    )
    result = run(env, assets_for(env, spec), resources={"pipes_client": dg.PipesSubprocessClient()})
    assert result.success
    mats = result.asset_materializations_for_node("forecast__boxed")
    md = mats[-1].metadata
    assert md["runner"].value == "PipesSubprocessClient" and md["steps"].value == 4
    assert all(c.passed for c in result.get_asset_check_evaluations())
    fc = open_forecast(env["storage"], spec, env["settings"], T0)
    np.testing.assert_allclose(
        fc["temperature"].values[0, -1], simulate_state(T0, GRID)["temperature"].values[0]
    )
