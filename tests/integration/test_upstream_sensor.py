"""The upstream sensor: complete cycles only, idempotent run keys, cursor, bad input, outages."""

import json
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest

from resources.sources import SOURCES, SourceConfig
from resources.storage import Storage, s3_options
from resources.upstream import UpstreamSource
from weather_assets.ingest.sensors import build_upstream_sensor, evaluate_upstream
from weather_assets.ingest.simulate import write_simulated_cycles
from weather_assets.partitions import analysis_time_partitions
from weather_assets.settings import load_settings
from weather_assets.simulator import Grid, simulate_state

SMALL = Grid(lat_min=-10, lat_max=10, lon_min=0, lon_max=20, step=2)
T0 = datetime(2026, 1, 1, tzinfo=UTC)
PARTS = analysis_time_partitions("2026-01-01T0000Z")


def _tick(sensor, upstream, instance, cursor=None):
    ctx = dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"upstream": upstream}
    )
    return sensor(ctx), ctx


def _sensor(settings):
    return build_upstream_sensor(
        settings=settings,
        partitions_def=PARTS,
        raw_inputs_key=dg.AssetKey(["raw_inputs", "simulator"]),
        upstream_key=dg.AssetKey(["upstream", "simulator"]),
    )


def test_new_cycles_requested_once_with_observations(settings):
    up = UpstreamSource(url=settings.upstream_url)
    write_simulated_cycles(settings.upstream_url, T0, T0 + timedelta(hours=6), grid=SMALL)
    sensor = _sensor(settings)
    instance = dg.DagsterInstance.ephemeral()
    result, _ = _tick(sensor, up, instance)
    keys = [r.partition_key for r in result.run_requests]
    assert keys == ["2026-01-01T0000Z", "2026-01-01T0600Z"]
    assert all(r.run_key.startswith("simulator:2026-01-01T") for r in result.run_requests)
    assert [o.partition for o in result.asset_events] == keys
    assert all(o.tags["dagster/data_version"] for o in result.asset_events)
    # Same tick again with the new cursor: nothing new, nothing launched twice.
    again, _ = _tick(sensor, up, instance, result.cursor)
    assert again.run_requests == []
    # A new cycle arrives: only it is requested.
    write_simulated_cycles(
        settings.upstream_url, T0 + timedelta(hours=12), T0 + timedelta(hours=12), grid=SMALL
    )
    third, _ = _tick(sensor, up, instance, again.cursor)
    assert [r.partition_key for r in third.run_requests] == ["2026-01-01T1200Z"]


def test_incomplete_out_of_order_and_malformed(settings, tmp_path):
    up = UpstreamSource(url=settings.upstream_url)
    store = Storage(settings.upstream_url)
    write_simulated_cycles(
        settings.upstream_url, T0 + timedelta(hours=12), T0 + timedelta(hours=12), grid=SMALL
    )
    # Half-uploaded cycle: the data is there but not the consolidated metadata.
    write_simulated_cycles(
        settings.upstream_url, T0 + timedelta(hours=18), T0 + timedelta(hours=18), grid=SMALL
    )
    marker = store.path("2026-01-01T1800Z/member0/analysis.zarr/.zmetadata")
    store.fs.mv(marker, str(tmp_path / "zmeta"))
    # Junk names next to the cycles.
    store.fs.makedirs(store.path("2026-01-01T1830Z/member0"), exist_ok=True)
    store.fs.makedirs(store.path("not-a-time"), exist_ok=True)
    found, cursor, problems = evaluate_upstream(
        up, PARTS, {}, datetime(2026, 2, 1, tzinfo=UTC), timedelta(days=2)
    )
    assert [k for k, _ in found] == ["2026-01-01T1200Z"]
    assert any("not-a-time" in p for p in problems)
    assert any("2026-01-01T1830Z" in p and "cadence" in p for p in problems)
    # The upload completes, and a late older cycle arrives: both are found next tick.
    store.fs.mv(str(tmp_path / "zmeta"), marker)
    write_simulated_cycles(settings.upstream_url, T0, T0, grid=SMALL)
    found2, cursor2, problems2 = evaluate_upstream(
        up, PARTS, cursor, datetime(2026, 2, 1, tzinfo=UTC), timedelta(days=2)
    )
    assert sorted(k for k, _ in found2) == ["2026-01-01T0000Z", "2026-01-01T1800Z"]
    assert problems2 == []  # malformed entries are reported once
    # A republished cycle (new content) gets a new version and is requested again.
    write_simulated_cycles(settings.upstream_url, T0, T0, grid=SMALL, overwrite=True)
    found3, _, _ = evaluate_upstream(
        up, PARTS, cursor2, datetime(2026, 2, 1, tzinfo=UTC), timedelta(days=2)
    )
    assert [k for k, _ in found3] in ([], ["2026-01-01T0000Z"])  # same bytes may keep mtime


def test_grib_file_waits_until_size_settles(wx_env, era5_grib, tmp_path, monkeypatch):
    target = tmp_path / "era5.grib"
    data = era5_grib.read_bytes()
    target.write_bytes(data[: len(data) // 2])  # still uploading
    up = UpstreamSource(kind="grib", url=str(target))
    parts = analysis_time_partitions("2017-01-01T0000Z", "0 */12 * * *")
    now = datetime(2017, 1, 1, 13, tzinfo=UTC)
    found, cursor, _ = evaluate_upstream(up, parts, {}, now, timedelta(days=1))
    assert found == []  # first sighting: remember the size, wait
    target.write_bytes(data)  # upload finishes: the size changes
    found, cursor, _ = evaluate_upstream(up, parts, cursor, now, timedelta(days=1))
    assert found == []
    found, cursor, _ = evaluate_upstream(up, parts, cursor, now, timedelta(days=1))
    assert sorted(k for k, _ in found) == ["2017-01-01T0000Z", "2017-01-01T1200Z"]


def test_s3_listing_cost_follows_new_cycles_and_outage(s3_bucket, wx_env, monkeypatch):
    bucket, endpoint = s3_bucket
    prefix = f"s3://{bucket}/sim/analysis/w0_s-10_e20_n10/dx2deg_dy2deg"
    monkeypatch.setenv("WXPLAT_UPSTREAM_URL", prefix)
    monkeypatch.setenv("WXPLAT_UPSTREAM_ENDPOINT_URL", endpoint)
    settings = load_settings()
    up = UpstreamSource(url=prefix, endpoint_url=endpoint)
    write_simulated_cycles(
        prefix, T0, T0 + timedelta(hours=18), grid=SMALL, storage_options=s3_options(endpoint)
    )
    assert up.list_cycle_keys("2026-01-01T0600Z") == ["2026-01-01T1200Z", "2026-01-01T1800Z"]
    sensor = _sensor(settings)
    instance = dg.DagsterInstance.ephemeral()
    result, _ = _tick(sensor, up, instance)
    assert len(result.run_requests) == 4
    # The bucket becomes unreachable: the tick reports and keeps its cursor.
    dead = UpstreamSource(url=prefix, endpoint_url="http://127.0.0.1:9")
    skipped, ctx = _tick(sensor, dead, instance, result.cursor)
    assert isinstance(skipped, dg.SkipReason) and "unreachable" in skipped.skip_message
    # Back again: nothing lost, nothing launched twice.
    again, _ = _tick(sensor, up, instance, result.cursor)
    assert again.run_requests == []
    assert json.loads(again.cursor)["newest"] == "2026-01-01T1800Z"


class MemorySource:
    """A format written for the test: cycles held in memory, listed, complete when versioned."""

    marks_complete = True
    cycles: dict[str, str] = {"2026-01-01T0000Z": "v1", "2026-01-01T0600Z": "v1"}

    def __init__(self, config: SourceConfig):
        self.config = config

    def cycle_url(self, analysis_time: datetime) -> str:
        return f"{self.config.url}/{analysis_time:%Y%m%d%H}"

    def read_cycle(self, analysis_time: datetime):
        return simulate_state(analysis_time, grid=SMALL).drop_vars("2m_temperature")

    def cycle_version(self, key: str) -> str | None:
        return self.cycles.get(key)

    def list_cycle_keys(self, start_after: str | None = None) -> list[str]:
        return sorted(k for k in self.cycles if start_after is None or k > start_after)


def test_a_new_kind_plugs_in_through_the_table(settings, monkeypatch):
    monkeypatch.setitem(SOURCES, "memory", MemorySource)
    up = UpstreamSource(kind="memory", url="mem://provider")
    assert isinstance(up.source(), MemorySource)
    # The sensor lists it and requests its cycles, with the usual run keys.
    result, _ = _tick(_sensor(settings), up, dg.DagsterInstance.ephemeral())
    assert [r.run_key for r in result.run_requests] == [
        "simulator:2026-01-01T0000Z:v1",
        "simulator:2026-01-01T0600Z:v1",
    ]
    assert result.asset_events[0].metadata["url"].value == "mem://provider/2026010100"
    # The asset reads it; the variables requirement holds for the new kind too.
    assert "geopotential" in up.read_cycle(T0).data_vars
    strict = UpstreamSource(kind="memory", url="mem://provider", variables=["2m_temperature"])
    with pytest.raises(KeyError, match="mem://provider/2026010100 lacks required variable"):
        strict.read_cycle(T0)


@pytest.mark.parametrize(
    ("cron", "delay", "expected"),
    [
        ("0 */6 * * *", 180, "0 3,9,15,21 * * *"),
        ("0 */12 * * *", 90, "30 1,13 * * *"),
    ],
)
def test_freshness_deadline(cron, delay, expected):
    from weather_assets.ingest.freshness import deadline_cron

    assert deadline_cron(cron, delay) == expected


def test_cycles_already_ingested_are_observed_not_requested(settings):
    """First start of the sensor after `make demo`: the demo ingested the cycles in-process, so
    nothing is requested again; a cycle republished afterwards (new version) is."""
    import definitions

    write_simulated_cycles(settings.upstream_url, T0, T0 + timedelta(hours=6))
    instance = dg.DagsterInstance.ephemeral()
    job = definitions.build_definitions(settings).resolve_implicit_global_asset_job_def()
    for key in ("2026-01-01T0000Z", "2026-01-01T0600Z"):
        assert job.execute_in_process(
            partition_key=key,
            instance=instance,
            asset_selection=[dg.AssetKey(["raw_inputs", "simulator"])],
        ).success
    up = UpstreamSource(url=settings.upstream_url)
    sensor = _sensor(settings)
    result, _ = _tick(sensor, up, instance)  # a fresh sensor: empty cursor
    assert result.run_requests == []
    assert [o.partition for o in result.asset_events] == ["2026-01-01T0000Z", "2026-01-01T0600Z"]
    # The provider republishes 06Z with new content: that one is ingested again.
    write_simulated_cycles(
        settings.upstream_url, T0 + timedelta(hours=6), T0 + timedelta(hours=6), overwrite=True
    )
    again, _ = _tick(sensor, up, instance, result.cursor)
    assert [r.partition_key for r in again.run_requests] == ["2026-01-01T0600Z"]


def test_arrivals_show_as_present_cycles_and_are_reported_once(settings):
    """The UI shows upstream partitions that arrived (not Missing), each reported once."""
    from weather_assets.lineage import report

    write_simulated_cycles(settings.upstream_url, T0, T0 + timedelta(hours=6))
    instance = dg.DagsterInstance.ephemeral()
    up = UpstreamSource(url=settings.upstream_url)
    sensor = _sensor(settings)
    result, _ = _tick(sensor, up, instance)
    assert all(isinstance(e, dg.AssetMaterialization) for e in result.asset_events)
    report(instance, result.asset_events)
    upstream = dg.AssetKey(["upstream", "simulator"])
    assert instance.get_materialized_partitions(upstream) == {
        "2026-01-01T0000Z",
        "2026-01-01T0600Z",
    }
    # A sensor starting afresh on this instance (a restart, a later `dagster dev` after the
    # demo) does not report the same arrivals again.
    again, _ = _tick(sensor, up, instance)
    assert again.asset_events == []


def test_cycles_after_a_fixed_last_partition_are_skipped(settings, tmp_path):
    write_simulated_cycles(settings.upstream_url, T0, T0 + timedelta(hours=12))
    parts = analysis_time_partitions("2026-01-01T0000Z", end="2026-01-01T0600Z")
    found, _, problems = evaluate_upstream(
        UpstreamSource(url=settings.upstream_url),
        parts,
        {},
        datetime(2026, 2, 1, tzinfo=UTC),
        timedelta(days=2),
    )
    assert [k for k, _ in found] == ["2026-01-01T0000Z", "2026-01-01T0600Z"]
    assert problems == [
        "skipped upstream entry '2026-01-01T1200Z' is after the last partition (WXPLAT_PARTITIONS_END)"
    ]
