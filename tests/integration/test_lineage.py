"""Lineage that tells the truth: recorded root versions, staleness, partitioned checks, maps."""

# No `from __future__ import annotations`: Dagster inspects annotations at runtime.

import base64
import re

import dagster as dg
from dagster._core.definitions.assets.graph.asset_graph import AssetGraph

from model_registry.artifact import sha256_file
from tests.integration.test_forecast_assets import (  # noqa: F401
    KEY,
    assets_for,
    env,
    fno_spec,
    make_artifact,
    run,
)
from weather_assets.forecast.sensors import build_artifact_sensor
from weather_assets.keys import artifact_key, forecast_key, normalized_key
from weather_assets.lineage import (
    DATA_VERSION_TAG,
    artifact_observation,
    recorded_version,
    report,
    stale_partitions,
)


def _setup(env):  # noqa: F811
    artifact = make_artifact(env["tmp"] / "tiny.zip")
    spec = fno_spec(env, artifact)
    assets = assets_for(env, spec)
    return artifact, spec, assets


def test_artifact_observation_carries_version_and_provenance(env):  # noqa: F811
    artifact, spec, _ = _setup(env)
    obs = artifact_observation(spec, env["settings"])
    assert obs.asset_key == artifact_key(spec.name)
    assert obs.tags[DATA_VERSION_TAG] == sha256_file(artifact)
    md = obs.metadata
    assert md["artifact_version"].value == "v1"
    assert md["artifact_name"].value == "tiny-fno"
    assert md["architecture"].value == "fno"
    assert md["pinned_in_registry"].value is False
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", md["created_utc"].value)
    assert md["created_by"].value and md["host"].value
    assert "torch" in md["packages"].value


def test_forecasts_are_stale_exactly_when_their_artifact_changed(env):  # noqa: F811
    artifact, spec, assets = _setup(env)
    instance = dg.DagsterInstance.ephemeral()
    keys = [normalized_key(spec.name), forecast_key(spec.name)]
    # The artifact's version is recorded before the first run (as the demo does): the runs
    # record it as their input version, not INITIAL.
    report(instance, [artifact_observation(spec, env["settings"])])
    assert run(env, assets, selection=keys, instance=instance).success
    graph = AssetGraph.from_assets(assets)
    assert stale_partitions(instance, graph, keys) == []
    # The sensor's first tick on this instance (a later `dagster dev`) reports nothing new.
    sensor = build_artifact_sensor([spec], settings=env["settings"])
    tick = sensor(dg.build_sensor_context(instance=instance, cursor=None))
    assert tick.asset_events == []
    assert stale_partitions(instance, graph, keys) == []

    old = sha256_file(artifact)
    make_artifact(artifact, version="v2")  # retrained in place
    tick = sensor(dg.build_sensor_context(instance=instance, cursor=tick.cursor))
    report(instance, tick.asset_events)
    assert recorded_version(instance, artifact_key(spec.name)) == sha256_file(artifact) != old
    found = stale_partitions(instance, graph, keys)
    assert {(s.asset, s.partition) for s in found} == {(k, KEY) for k in keys}
    forecast = next(s for s in found if s.asset == forecast_key(spec.name))
    assert forecast.made_with == f"artifact v1 (sha256 {old[:12]})"
    assert any("model_artifact/tiny-fno" in cause for cause in forecast.causes)

    # Re-running the cycle with the new artifact makes it fresh again.
    assert run(env, assets, selection=keys, instance=instance).success
    assert stale_partitions(instance, graph, keys) == []


def test_check_results_are_tied_to_their_cycle(env):  # noqa: F811
    _, spec, assets = _setup(env)
    instance = dg.DagsterInstance.ephemeral()
    keys = [normalized_key(spec.name), forecast_key(spec.name)]
    assert run(env, assets, selection=keys, instance=instance).success
    for name in ("schema", "no_nans", "physical_ranges"):
        check = dg.AssetCheckKey(forecast_key(spec.name), name)
        (record,) = instance.event_log_storage.get_asset_check_execution_history(check, limit=5)
        assert record.partition == KEY
        assert record.status.value == "SUCCEEDED"


def test_forecast_materialization_shows_a_map(env):  # noqa: F811
    _, spec, assets = _setup(env)
    instance = dg.DagsterInstance.ephemeral()
    keys = [normalized_key(spec.name), forecast_key(spec.name)]
    assert run(env, assets, selection=keys, instance=instance).success
    event = instance.get_latest_materialization_event(forecast_key(spec.name))
    markdown = event.asset_materialization.metadata["map"].value
    (data,) = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", markdown)
    assert base64.b64decode(data).startswith(b"\x89PNG\r\n\x1a\n")
