"""The blocking ``input_drift`` check of ``normalized/<model>`` and the forecast's cost metadata.

A units mistake upstream that ingest let through (the raw store holds temperatures in degC,
geopotential divided by g) is refused before the commit: the check fails naming the
features, nothing is written, and the forecast never runs. A normal cycle passes, and its
forecast records what it cost.
"""

# No `from __future__ import annotations`: Dagster inspects annotations at runtime.

import dagster as dg
import pytest

from resources.layout import raw_inputs_relpath, store_relpath
from tests.integration.test_forecast_assets import (
    GRID,
    T0,
    env,  # noqa: F401 - the fixture
    fno_spec,
    make_artifact,
    run,
)
from weather_assets.forecast.assets import build_model_assets
from weather_assets.forecast.drift import G
from weather_assets.keys import forecast_key, normalized_key
from weather_assets.partitions import analysis_time_partitions
from weather_assets.settings import load_settings
from weather_assets.simulator import simulate_state

RAW_KEY = dg.AssetKey(["raw_inputs", "simulator"])


def _assets(env, spec, settings=None):  # noqa: F811
    return build_model_assets(
        spec,
        partitions_def=analysis_time_partitions(),
        raw_inputs_key=RAW_KEY,
        settings=settings or env["settings"],
    )


def _setup(env):  # noqa: F811
    spec = fno_spec(env, make_artifact(env["tmp"] / "tiny.zip"))
    assets = _assets(env, spec)
    return spec, assets, [normalized_key(spec.name), forecast_key(spec.name)]


def _inject(env, **changes):  # noqa: F811
    """Rewrite the cycle's raw inputs in the store as a broken upstream would deliver them."""
    state = simulate_state(T0, GRID)
    for name, change in changes.items():
        state[name] = change(state[name])
    env["storage"].write_zarr(state, raw_inputs_relpath(env["settings"], T0))


def test_normal_cycle_passes_and_the_forecast_records_its_cost(env):  # noqa: F811
    spec, assets, keys = _setup(env)
    result = run(env, assets, selection=keys)
    assert result.success
    (drift,) = [e for e in result.get_asset_check_evaluations() if e.check_name == "input_drift"]
    assert drift.passed and drift.asset_key == normalized_key(spec.name)
    assert drift.description.startswith("All ")
    assert drift.metadata["failing_features"].value == "none"

    md = result.asset_materializations_for_node("forecast__tiny_fno")[0].metadata
    assert md["device"].value == "cpu"  # no GPU on the test machine
    assert md["gpus"].value == 0
    assert md["cpu_seconds"].value > 0 and "gpu_seconds" not in md
    assert md["peak_memory_bytes"].value > 0
    assert "ru_maxrss" in md["peak_memory_source"].value
    assert md["bytes"].value > 0 and md["bytes_written"].value > 0


@pytest.mark.parametrize(
    ("changes", "features", "cause"),
    [
        (
            {"temperature": lambda da: da - 273.15, "2m_temperature": lambda da: da - 273.15},
            ["temperature_500hPa", "temperature_850hPa", "2m_temperature"],
            "K vs degC",
        ),
        (
            {"geopotential": lambda da: da / G},
            ["geopotential_500hPa"],
            "geopotential height",
        ),
    ],
    ids=["degc-for-k", "height-for-geopotential"],
)
def test_wrong_units_upstream_are_refused_before_the_forecast(env, changes, features, cause):  # noqa: F811
    spec, assets, keys = _setup(env)
    _inject(env, **changes)
    result = run(env, assets, selection=keys, raise_on_error=False)
    assert not result.success

    (drift,) = result.get_asset_check_evaluations()
    assert drift.check_name == "input_drift" and not drift.passed
    assert drift.severity == dg.AssetCheckSeverity.ERROR
    for feature in features:
        assert feature in drift.description
        assert feature in drift.metadata["failing_features"].value
    assert cause in drift.description

    failure = result.failure_data_for_node("normalized__tiny_fno").error
    assert "input_drift" in failure.message and "refused before commit" in failure.message
    assert features[0] in failure.message

    # Nothing committed, no forecast run.
    assert result.asset_materializations_for_node("normalized__tiny_fno") == []
    assert result.asset_materializations_for_node("forecast__tiny_fno") == []
    for kind in ("normalized", "forecast"):
        assert not env["storage"].exists(store_relpath(spec, env["settings"], T0, "v1", kind))
    assert not [e for e in result.all_events if e.is_step_start and "forecast" in e.step_key]


def test_thresholds_come_from_the_settings(env, tmp_path):  # noqa: F811
    spec, _, keys = _setup(env)
    _inject(env, temperature=lambda da: da + 30.0)  # a warm spell? a bad upstream? 30 K
    settings = env["settings"]
    strict = load_settings(
        {
            "WXPLAT_HOME": str(settings.home),
            "WXPLAT_DOMAIN": settings.domain,
            "WXPLAT_RESOLUTION": settings.resolution,
            "WXPLAT_DRIFT_MAX_ABS_MEAN_Z": "0.5",
        }
    )
    result = run(env, _assets(env, spec, strict), selection=keys, raise_on_error=False)
    assert not result.success
    (drift,) = result.get_asset_check_evaluations()
    assert "|mean z|" in drift.description and "> 0.5" in drift.description
    assert "|mean z| <= 0.5" in drift.metadata["thresholds"].value


def test_a_backfill_run_refuses_only_the_drifted_cycle(tmp_path):
    """A range of four cycles: the one with degC temperatures is refused with its failed
    check on its own partition, the three others are committed and forecast."""
    from tests.integration import test_forecast_backfill as backfill

    spec = backfill.fno_spec(tmp_path)
    env_ = backfill.home(tmp_path, "drift")
    bad_time, bad_key = backfill.TIMES[1], backfill.KEYS[1]
    state = simulate_state(bad_time, backfill.GRID)
    state["temperature"] = state["temperature"] - 273.15
    env_["storage"].write_zarr(state, raw_inputs_relpath(env_["settings"], bad_time))
    assets = backfill.assets_for(env_, spec)
    instance = dg.DagsterInstance.ephemeral()
    result = backfill.materialize(
        env_,
        assets,
        instance=instance,
        selection=[normalized_key(spec.name), forecast_key(spec.name)],
        tags=backfill.range_tags(backfill.KEYS[0], backfill.KEYS[-1]),
        raise_on_error=False,
    )
    assert not result.success
    failure = result.failure_data_for_node("normalized__tiny_fno").error.message
    assert "1 of 4 cycle(s) failed" in failure and bad_key in failure
    assert "RefusedInputs" in failure and "temperature_850hPa" in failure
    good = [k for k in backfill.KEYS if k != bad_key]
    mats = result.asset_materializations_for_node("normalized__tiny_fno")
    assert sorted(m.partition for m in mats) == good
    drift = {
        e.partition: e
        for e in result.get_asset_check_evaluations()
        if e.check_name == "input_drift"
    }
    assert sorted(drift) == backfill.KEYS
    assert not drift[bad_key].passed and "temperature_500hPa" in drift[bad_key].description
    assert all(drift[k].passed for k in good)
    version = mats[0].metadata["artifact_version"].value
    assert env_["storage"].exists(
        store_relpath(spec, env_["settings"], backfill.TIMES[0], version, "normalized")
    )
    assert not env_["storage"].exists(
        store_relpath(spec, env_["settings"], bad_time, version, "normalized")
    )
    assert bad_key not in instance.get_materialized_partitions(normalized_key(spec.name))
    assert bad_key not in instance.get_materialized_partitions(forecast_key(spec.name))
