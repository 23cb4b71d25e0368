"""Which partitions a CLI backfill launches (the launch itself is in test_webserver_e2e.py)."""

import dagster as dg
import pytest

from weather_assets.backfill import partitions_to_backfill
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


def test_bad_range_names_it():
    parts = analysis_time_partitions("2026-01-01T0000Z")
    with pytest.raises(ValueError, match="2025-12-31T0000Z..2026-01-01T0600Z is not a range"):
        partitions_to_backfill(
            dg.DagsterInstance.ephemeral(), KEY, parts, "2025-12-31T0000Z", "2026-01-01T0600Z"
        )
