"""The raw_inputs asset and its blocking checks, through Dagster."""

import os
import subprocess
from datetime import UTC, datetime

import dagster as dg
import numpy as np
import pytest

from resources.layout import open_raw_inputs, raw_inputs_relpath
from resources.storage import Storage
from tests.conftest import ROOT
from weather_assets.backfill import materialize_command
from weather_assets.ingest.simulate import write_simulated_cycles
from weather_assets.settings import load_settings

T0 = datetime(2026, 1, 1, 6, tzinfo=UTC)
KEY = "2026-01-01T0600Z"


def _defs(settings):
    import definitions

    return definitions.build_definitions(settings)


def _materialize(settings, partition=KEY, raise_on_error=True):
    defs = _defs(settings)
    job = defs.resolve_implicit_global_asset_job_def()
    graph = defs.resolve_asset_graph()
    selection = dg.AssetSelection.assets(["raw_inputs", settings.upstream_name])
    return job.execute_in_process(
        partition_key=partition,
        instance=dg.DagsterInstance.ephemeral(),
        asset_selection=list(selection.resolve(graph)),
        raise_on_error=raise_on_error,
    )


def test_asset_graph_has_upstream_raw_inputs_and_checks(settings):
    defs = _defs(settings)
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {"upstream/simulator", "raw_inputs/simulator"} <= keys
    checks = {c.name for c in graph.asset_check_keys}
    assert {"schema", "no_missing_values", "physical_ranges"} <= checks
    raw = graph.get(dg.AssetKey(["raw_inputs", "simulator"]))
    assert raw.partitions_def.get_first_partition_key() == "2026-01-01T0000Z"


def test_materialize_writes_canonical_zarr_with_metadata(settings):
    write_simulated_cycles(settings.upstream_url, T0, T0)
    result = _materialize(settings)
    assert result.success
    mat = result.asset_materializations_for_node("raw_inputs__simulator")[0]
    meta = mat.metadata
    assert meta["analysis_time"].value == KEY
    assert meta["bytes"].value > 0 and len(meta["sha256"].value) == 64
    assert "geopotential" in meta["variables"].value
    assert raw_inputs_relpath(settings, T0) in meta["path"].value
    # The freshness check (late data) runs separately on its own sensor; it is not ours here.
    checks = [c for c in result.get_asset_check_evaluations() if c.check_name != "freshness_check"]
    assert {c.check_name for c in checks} == {"schema", "no_missing_values", "physical_ranges"}
    assert all(c.passed for c in checks)
    ds = open_raw_inputs(Storage(settings.storage_root), settings, T0)
    assert ds["time"].values[0] == np.datetime64("2026-01-01T06:00", "ns")
    # Same input, same data version: re-materializing is idempotent.
    again = _materialize(settings).asset_materializations_for_node("raw_inputs__simulator")[0]
    assert again.metadata["sha256"].value == meta["sha256"].value


def test_missing_cycle_fails_clearly_and_writes_nothing(settings):
    result = _materialize(settings, raise_on_error=False)
    assert not result.success
    err = result.failure_data_for_node("raw_inputs__simulator").error
    assert "has not arrived" in err.cause.message if err.cause else "has not arrived" in err.message
    assert not Storage(settings.storage_root).exists(raw_inputs_relpath(settings, T0))


def test_bad_units_upstream_keep_existing_raw_inputs(settings):
    write_simulated_cycles(settings.upstream_url, T0, T0)
    assert _materialize(settings).success
    storage = Storage(settings.storage_root)
    before = storage.open_zarr(raw_inputs_relpath(settings, T0)).load()
    # The provider republishes the cycle with pressure in hPa.
    up = Storage(settings.upstream_url)
    bad = up.open_zarr("2026-01-01T0600Z/member0/analysis.zarr").load()
    bad["mean_sea_level_pressure"] = bad["mean_sea_level_pressure"] / 100
    bad["mean_sea_level_pressure"].attrs["units"] = "hPa"
    up.write_zarr(bad, "2026-01-01T0600Z/member0/analysis.zarr")
    result = _materialize(settings, raise_on_error=False)
    assert not result.success
    text = str(result.failure_data_for_node("raw_inputs__simulator").error)
    assert "mean_sea_level_pressure" in text and "'hPa'" in text
    after = storage.open_zarr(raw_inputs_relpath(settings, T0)).load()
    assert after.identical(before)


def test_failing_cycle_never_replaces_the_stored_one(settings):
    """A republished cycle with missing values is checked while staged and refused."""
    write_simulated_cycles(settings.upstream_url, T0, T0)
    assert _materialize(settings).success
    storage = Storage(settings.storage_root)
    before = open_raw_inputs(storage, settings, T0).load()
    up = Storage(settings.upstream_url)
    ds = up.open_zarr("2026-01-01T0600Z/member0/analysis.zarr").load()
    ds["temperature"][0, 1, 5, 5] = np.nan
    ds["2m_temperature"][0, 3, 3] = np.nan
    up.write_zarr(ds, "2026-01-01T0600Z/member0/analysis.zarr")
    result = _materialize(settings, raise_on_error=False)
    assert not result.success
    evals = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert not evals["no_missing_values"].passed
    assert evals["no_missing_values"].description == "NaNs in: 2m_temperature, temperature@850"
    error = str(result.failure_data_for_node("raw_inputs__simulator").error)
    assert "refused before commit" in error and up.url("2026-01-01T0600Z") in error
    assert open_raw_inputs(storage, settings, T0).load().identical(before)
    assert storage.list_dir(".staging") == []


@pytest.mark.parametrize("defect", ["nan", "range", "time"])
def test_checks_fail_on_bad_data(settings, defect):
    write_simulated_cycles(settings.upstream_url, T0, T0)
    up = Storage(settings.upstream_url)
    ds = up.open_zarr("2026-01-01T0600Z/member0/analysis.zarr").load()
    if defect == "nan":
        ds["temperature"][0, 1, 5, 5] = np.nan
    elif defect == "range":
        ds["2m_temperature"][0, 5, 5] = 400.0
    else:
        ds = ds.assign_coords(time=[np.datetime64("2026-01-01T06:00", "ns")])
        ds["latitude"] = ds["latitude"]  # unchanged: the partition check is on time below
    up.write_zarr(ds, "2026-01-01T0600Z/member0/analysis.zarr")
    if defect == "time":
        # A store claiming another time than its path is refused before anything is written.
        shifted = ds.assign_coords(time=[np.datetime64("2026-01-01T12:00", "ns")])
        up.write_zarr(shifted, "2026-01-01T0600Z/member0/analysis.zarr")
        result = _materialize(settings, raise_on_error=False)
        assert not result.success
        assert "its path says" in str(result.failure_data_for_node("raw_inputs__simulator").error)
        return
    result = _materialize(settings, raise_on_error=False)
    evals = {c.check_name: c for c in result.get_asset_check_evaluations()}
    failing = "no_missing_values" if defect == "nan" else "physical_ranges"
    assert not evals[failing].passed
    assert evals["schema"].passed
    if defect == "nan":
        assert "temperature@850" in evals[failing].description


def test_era5_grib_source_through_dagster(wx_env, era5_grib, monkeypatch):
    monkeypatch.setenv("WXPLAT_UPSTREAM_KIND", "grib")
    monkeypatch.setenv("WXPLAT_UPSTREAM_URL", str(era5_grib))
    monkeypatch.setenv("WXPLAT_UPSTREAM_NAME", "era5")
    monkeypatch.setenv("WXPLAT_UPSTREAM_ENSEMBLE", "true")
    monkeypatch.setenv("WXPLAT_PARTITIONS_START", "2017-01-01T0000Z")
    monkeypatch.setenv("WXPLAT_PARTITIONS_CRON", "0 */12 * * *")
    monkeypatch.setenv("WXPLAT_DOMAIN", "w-30_s30_e60_n72")
    monkeypatch.setenv("WXPLAT_RESOLUTION", "dx3deg_dy3deg")
    settings = load_settings()
    result = _materialize(settings, partition="2017-01-01T1200Z")
    assert result.success
    evals = result.get_asset_check_evaluations()
    assert all(c.passed for c in evals if c.check_name != "freshness_check")
    t = datetime(2017, 1, 1, 12, tzinfo=UTC)
    ds = open_raw_inputs(Storage(settings.storage_root), settings, t)
    assert ds.sizes["member"] == 10
    assert ds["longitude"].values[0] == -30 and ds["latitude"].values[-1] == 72
    assert "/member9/analysis.zarr" in raw_inputs_relpath(settings, t, 9)


def test_dagster_cli_materialize(wx_env, settings):
    """The demo path through `dagster asset materialize` in a subprocess."""
    write_simulated_cycles(settings.upstream_url, T0, T0)
    env = {**os.environ, **wx_env}
    cmd = materialize_command("raw_inputs/simulator", KEY)
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "RUN_SUCCESS" in out.stderr + out.stdout
    assert Storage(settings.storage_root).exists(raw_inputs_relpath(settings, T0))
