"""The artifact sensor: sha256 as data version; a replaced artifact makes forecasts stale."""

import dagster as dg
from dagster._utils.test.data_versions import get_stale_status_resolver

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
from weather_assets.keys import artifact_key, forecast_key


def _tick(sensor, instance, cursor):
    result = sensor(dg.build_sensor_context(instance=instance, cursor=cursor))
    for event in result.asset_events:
        instance.report_runless_asset_event(event)  # what the daemon does with them
    return result


def test_sensor_observes_and_staleness_follows(env):  # noqa: F811
    artifact = make_artifact(env["tmp"] / "tiny.zip")
    spec = fno_spec(env, artifact)
    assets = assets_for(env, spec)
    sensor = build_artifact_sensor([spec], settings=env["settings"])
    instance = dg.DagsterInstance.ephemeral()
    first = _tick(sensor, instance, None)
    assert [e.asset_key for e in first.asset_events] == [artifact_key(spec.name)]
    assert first.asset_events[0].tags["dagster/data_version"] == sha256_file(artifact)
    assert run(env, assets, selection=[a.key for a in assets[1:3]], instance=instance).success
    status = get_stale_status_resolver(instance, assets[:3])
    assert status.get_status(forecast_key(spec.name), KEY).value == "FRESH"
    # Nothing changed: no new observation.
    assert _tick(sensor, instance, first.cursor).asset_events == []
    # The artifact is replaced by a retrained one: new sha256, the forecast turns stale.
    make_artifact(artifact, version="v2")
    third = _tick(sensor, instance, first.cursor)
    assert third.asset_events[0].tags["dagster/data_version"] == sha256_file(artifact)
    status = get_stale_status_resolver(instance, assets[:3])
    assert status.get_status(forecast_key(spec.name), KEY).value == "STALE"


def test_missing_artifact_is_reported_not_fatal(env, tmp_path):  # noqa: F811
    spec = fno_spec(env, tmp_path / "absent.zip")
    sensor = build_artifact_sensor([spec], settings=env["settings"])
    result = _tick(sensor, dg.DagsterInstance.ephemeral(), None)
    assert result.asset_events == []
