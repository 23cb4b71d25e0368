"""Why Dagster's by-partition plot of the verification metadata was empty, through the UI's own
GraphQL queries.

The "Plots" tab (dagster-webserver 1.13, ``AssetEventMetadataPlots.tsx``) asks for the latest
120 partition keys of the asset's partitions definition (``partitionKeyConnection(limit: 120,
ascending: false)``, counted back from *now*), then for the latest materialization of each of
those (``latestMaterializationByPartition``), and plots every Float/Int metadata label found
among them (``AssetMaterializationGraphs.tsx``). Verified cycles older than the latest 120
partition keys are never plotted, whatever their entries: the demo's January cycles on
partitions running on to today. A fixed ``end`` does not help in Dagster 1.13.27: the
descending pagination ignores it and still counts back from now
(``TimeWindowPartitionsDefinition.get_paginated_partition_keys``).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import dagster as dg
import pandas as pd
import pytest

from weather_assets.keys import verification_key
from weather_assets.partitions import (
    PARTITION_FMT,
    analysis_time_partitions,
    partition_key_to_time,
)
from weather_assets.verification.report import verification_metadata
from weather_assets.verification.scores import Verification

pytest.importorskip("dagster_graphql")
from dagster_graphql.test.utils import (  # noqa: E402
    define_out_of_process_context,
    execute_dagster_graphql,
)

UI_LIMIT = 120  # AssetEventMetadataPlots.tsx: <AssetPartitionMetadataPlots limit={120} />
KEY = verification_key("fno")
CYCLES = [datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=6 * i) for i in range(8)]

LATEST_PARTITIONS = """
query LatestAssetPartitionsQuery($assetKey: AssetKeyInput!, $limit: Int!) {
  assetNodeOrError(assetKey: $assetKey) {
    ... on AssetNode { id partitionKeyConnection(limit: $limit, ascending: false) { results } }
  }
}
"""
PARTITION_EVENTS = """
query AssetPartitionEventsQuery($assetKey: AssetKeyInput!, $partitions: [String!]!) {
  assetNodeOrError(assetKey: $assetKey) {
    ... on AssetNode {
      id
      latestMaterializationByPartition(partitions: $partitions) {
        partition
        metadataEntries {
          __typename
          label
          ... on FloatMetadataEntry { floatValue floatRepr }
          ... on IntMetadataEntry { intValue intRepr }
        }
      }
    }
  }
}
"""

CODE = """
import dagster as dg
from weather_assets.keys import verification_key

PDEF = dg.TimeWindowPartitionsDefinition(
    start={start!r}, fmt="%Y-%m-%dT%H%MZ", cron_schedule="0 */6 * * *", timezone="UTC",
    end_offset=1, end={end!r},
)
defs = dg.Definitions(assets=[dg.AssetSpec(verification_key("fno"), partitions_def=PDEF)])
"""


def _pdef(start: str, end: str | None = None) -> dg.TimeWindowPartitionsDefinition:
    return dg.TimeWindowPartitionsDefinition(
        start=start,
        fmt=PARTITION_FMT,
        cron_schedule="0 */6 * * *",
        timezone="UTC",
        end_offset=1,
        end=end,
    )


def _metadata(t: datetime, value: float) -> dict:
    rows = [
        {
            "model": "fno",
            "analysis_time": pd.Timestamp(t).tz_localize(None),
            "lead_time": pd.Timedelta(hours=lead),
            "variable": "geopotential",
            "level": 500,
            "metric": "rmse",
            "value": value * lead / 24,
            "n": 10,
        }
        for lead in (24, 72)
    ]
    table = pd.DataFrame(rows)
    result = Verification(
        table=table,
        scored_leads=list(table["lead_time"]),
        missing_leads=[],
        members=1,
    )
    key = t.strftime(PARTITION_FMT)
    return verification_metadata(result, table, url="/x", partition_key=key, climatology=None)


def _plotted(
    tmp_path, cycles: list[datetime], start: str, end: str | None = None
) -> dict[str, dict[str, float]]:
    """What the by-partition plot draws when ``cycles`` are verified: label -> {partition: y}."""
    module = tmp_path / "location.py"
    module.write_text(CODE.format(start=start, end=end))
    variables = {"assetKey": {"path": KEY.path}}
    with (
        dg.instance_for_test() as instance,
        define_out_of_process_context(str(module), "defs", instance) as context,
    ):
        for i, t in enumerate(cycles):
            instance.report_runless_asset_event(
                dg.AssetMaterialization(
                    KEY, partition=t.strftime(PARTITION_FMT), metadata=_metadata(t, 100.0 + i)
                )
            )
        keys = execute_dagster_graphql(
            context, LATEST_PARTITIONS, {**variables, "limit": UI_LIMIT}
        ).data["assetNodeOrError"]["partitionKeyConnection"]["results"]
        events = execute_dagster_graphql(
            context, PARTITION_EVENTS, {**variables, "partitions": list(reversed(keys))}
        ).data["assetNodeOrError"]["latestMaterializationByPartition"]
    series: dict[str, dict[str, float]] = {}
    for event in filter(None, events):
        for entry in event["metadataEntries"]:
            if entry["__typename"] == "FloatMetadataEntry":
                y = entry["floatValue"]
            elif entry["__typename"] == "IntMetadataEntry":
                y = entry["intValue"]
            else:
                continue
            assert y is not None and math.isfinite(y), entry  # a null is a hole in the line
            series.setdefault(entry["label"], {})[event["partition"]] = y
    return series


def test_only_the_latest_120_partition_keys_are_plotted(tmp_path):
    series = _plotted(tmp_path, CYCLES, "2026-01-01T0000Z")
    latest = set(analysis_time_partitions("2026-01-01T0000Z").get_partition_keys()[-UI_LIMIT:])
    visible = latest & {t.strftime(PARTITION_FMT) for t in CYCLES}
    # The cause: cycles before the latest 120 partition keys are not plotted at all.
    assert bool(series) == bool(visible)
    for points in series.values():
        assert set(points) <= visible


def test_recent_cycles_are_plotted_with_units_and_four_digits(tmp_path):
    last = partition_key_to_time(analysis_time_partitions().get_last_partition_key())
    cycles = [last - timedelta(hours=6 * (12 + i)) for i in reversed(range(8))]  # truth lag
    start = (cycles[0] - timedelta(days=2)).strftime(PARTITION_FMT)
    series = _plotted(tmp_path, cycles, start)
    label = "rmse geopotential_500hPa +24h [m2 s-2]"
    assert series[label] == {t.strftime(PARTITION_FMT): 100.0 + i for i, t in enumerate(cycles)}
    key = cycles[0].strftime(PARTITION_FMT)
    assert series["rmse geopotential_500hPa +72h [m2 s-2]"][key] == 300.0
    assert set(series["dagster/row_count"].values()) == {2}


def test_a_fixed_end_in_the_past_is_ignored_by_the_plot_in_dagster_1_13(tmp_path):
    """Pinned upstream behaviour: if this fails, Dagster honours ``end`` when paging back and
    partitions ending at the last cycle would be plotted again."""
    end = "2026-01-03T0000Z"
    assert _pdef("2026-01-01T0000Z", end).get_partition_keys()[-1] == "2026-01-02T1800Z"
    series = _plotted(tmp_path, CYCLES, "2026-01-01T0000Z", end)
    latest = set(analysis_time_partitions("2026-01-01T0000Z").get_partition_keys()[-UI_LIMIT:])
    assert bool(series) == bool(latest & {t.strftime(PARTITION_FMT) for t in CYCLES})
