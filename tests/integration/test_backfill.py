"""Which partitions a CLI backfill launches (the launch itself is in test_webserver_e2e.py)."""

import socket
import time

import dagster as dg
import pytest

from weather_assets.backfill import (
    WebserverUnreachable,
    graphql,
    launch_backfill,
    partitions_to_backfill,
)
from weather_assets.partitions import analysis_time_partitions

KEY = dg.AssetKey(["forecast", "m"])


def test_skips_what_is_materialized_unless_forced():
    parts = analysis_time_partitions("2026-01-01T0000Z")
    instance = dg.DagsterInstance.ephemeral()
    instance.report_runless_asset_event(
        dg.AssetMaterialization(asset_key=KEY, partition="2026-01-01T0600Z")
    )
    todo = partitions_to_backfill(instance, KEY, parts, "2026-01-01T0000Z", "2026-01-01T1800Z")
    assert todo == ["2026-01-01T0000Z", "2026-01-01T1200Z", "2026-01-01T1800Z"]
    forced = partitions_to_backfill(
        instance, KEY, parts, "2026-01-01T0000Z", "2026-01-01T1800Z", force=True
    )
    assert forced == [
        "2026-01-01T0000Z",
        "2026-01-01T0600Z",
        "2026-01-01T1200Z",
        "2026-01-01T1800Z",
    ]


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        (
            "2025-12-31T0000Z",
            "2026-01-01T0600Z",
            "start 2025-12-31T0000Z is outside the partitions of forecast/m, "
            "which run from 2026-01-01T0000Z to ",
        ),
        (
            "2026-01-01T0000Z",
            "2099-01-01T0000Z",
            "end 2099-01-01T0000Z is outside the partitions of forecast/m",
        ),
        (
            "2026-01-01T0600Z",
            "2026-01-01T0000Z",
            "end 2026-01-01T0000Z is before start 2026-01-01T0600Z",
        ),
        (
            "2026-01-01T0000Z",
            "2026-01-01T0900Z",
            "end 2026-01-01T0900Z is off the partitions' cadence (0 */6 * * *): "
            "the nearest partitions are 2026-01-01T0600Z and 2026-01-01T1200Z",
        ),
        (
            "2026-1-1T0000Z",
            "2026-01-01T0600Z",
            "start 2026-1-1T0000Z is not a partition key of forecast/m: "
            "did you mean 2026-01-01T0000Z?",
        ),
        (
            "yesterday",
            "2026-01-01T0600Z",
            "start 'yesterday' is not an analysis time in the format YYYY-MM-DDThhmmZ",
        ),
    ],
    ids=["before-first", "after-last", "end-before-start", "off-cadence", "not-canonical", "junk"],
)
def test_bad_range_names_it(start, end, message):
    parts = analysis_time_partitions("2026-01-01T0000Z")
    with pytest.raises(ValueError) as info:
        partitions_to_backfill(dg.DagsterInstance.ephemeral(), KEY, parts, start, end)
    assert message in str(info.value)


def test_unpartitioned_asset_is_refused():
    with pytest.raises(ValueError, match="forecast/m is not partitioned"):
        partitions_to_backfill(
            dg.DagsterInstance.ephemeral(), KEY, None, "2026-01-01T0000Z", "2026-01-01T0000Z"
        )


def test_no_webserver_is_told_quickly():
    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
    began = time.monotonic()
    with pytest.raises(WebserverUnreachable, match=f"no Dagster webserver answers at {url}"):
        graphql(url, "{ version }", timeout=2)
    with pytest.raises(WebserverUnreachable):
        launch_backfill(url, [KEY], ["2026-01-01T0000Z"], connect_timeout=2)
    assert time.monotonic() - began < 10
    with pytest.raises(ValueError, match="no partitions to backfill"):
        launch_backfill(url, [KEY], [])
