"""What an operator reads in the UI, asked through the webserver's GraphQL (what the UI asks).

The shared ``demo_ui`` instance is read only; the retrain scenario runs on its own instance.
"""

import json
import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT
from tests.e2e.webserver import demo_instance, graphql, write_demo_registry

pytestmark = pytest.mark.slow

NODES = """
{ assetNodes {
    assetKey { path } groupName description kinds
    owners { __typename ... on TeamAssetOwner { team } ... on UserAssetOwner { email } }
    isPartitioned partitionKeys
    partitionStats { numMaterialized numPartitions }
} }
"""


def _nodes(url: str) -> dict[str, dict]:
    return {"/".join(n["assetKey"]["path"]): n for n in graphql(url, NODES)["assetNodes"]}


def _stale(url: str, key: str, partitions: list[str]) -> list[str]:
    query = """
    query Stale($key: AssetKeyInput!, $partitions: [String!]!) {
      assetNodes(assetKeys: [$key]) { staleStatusByPartition(partitions: $partitions) }
    }"""
    variables = {"key": {"path": key.split("/")}, "partitions": partitions}
    return graphql(url, query, variables)["assetNodes"][0]["staleStatusByPartition"]


def _materialized(url: str, key: str) -> list[str]:
    query = """
    query Parts($key: AssetKeyInput!) {
      assetNodeOrError(assetKey: $key) {
        ... on AssetNode { assetPartitionStatuses {
          ... on TimePartitionStatuses { ranges { startKey endKey status } } } }
      }
    }"""
    node = graphql(url, query, {"key": {"path": key.split("/")}})["assetNodeOrError"]
    keys = _nodes(url)[key]["partitionKeys"]
    done: list[str] = []
    for r in node["assetPartitionStatuses"]["ranges"]:
        if r["status"] == "MATERIALIZED":
            done += keys[keys.index(r["startKey"]) : keys.index(r["endKey"]) + 1]
    return done


def test_partitions_are_the_demos_cycles_and_upstream_arrivals_show(demo_ui):
    """Points 6 and 9: the partitions run from the demo's first cycle (not from the default
    start to today), and upstream/simulator shows its cycles as present, not Missing."""
    nodes = _nodes(demo_ui.url)
    settings = (demo_ui.home / "settings.env").read_text()
    first = re.search(r"WXPLAT_PARTITIONS_START=(\S+)", settings).group(1)
    raw = nodes["raw_inputs/simulator"]
    assert raw["partitionKeys"][0] == first
    # The demo's six cycles end with the cycle due now (one more if a cycle began since).
    assert raw["partitionStats"]["numPartitions"] in (6, 7)
    assert raw["partitionStats"]["numMaterialized"] == 6
    upstream = nodes["upstream/simulator"]["partitionStats"]
    assert upstream["numMaterialized"] == 6


def test_the_demo_and_the_ui_agree_on_versions(demo_ui):
    """Point 1: right after the demo nothing is Unsynced: the runs recorded the artifact's
    and the upstream cycles' versions that the UI knows."""
    for model in demo_ui.models:
        for kind in ("normalized", "forecast", "verification"):
            key = f"{kind}/{model}"
            done = _materialized(demo_ui.url, key)
            assert done, key
            assert set(_stale(demo_ui.url, key, done)) == {"FRESH"}, key


def test_every_node_reads_at_a_glance(demo_ui):
    """Points 8 and 10: no two nodes of a group share a label (the key's last part); every
    asset has a description, an owner and kinds."""
    seen: dict[tuple[str, str], str] = {}
    for key, node in _nodes(demo_ui.url).items():
        label = (node["groupName"], key.split("/")[-1])
        assert label not in seen, f"{key} and {seen[label]} both read {label[1]!r} in {label[0]}"
        seen[label] = key
        assert node["description"] and node["owners"] and node["kinds"], key
    assert seen[("model_inputs", "fno-tiny")] == "normalized/fno-tiny"
    assert seen[("climatology", "simulator")] == "climatology/simulator"


def test_check_history_is_tied_to_cycles(demo_ui):
    """Point 7: every check execution of a forecast names its cycle; none is skipped."""
    query = """
    query Checks($key: AssetKeyInput!, $name: String!) {
      assetCheckExecutions(assetKey: $key, checkName: $name, limit: 50) { partition status }
    }"""
    for name in ("schema", "no_nans", "physical_ranges"):
        key = {"path": ["forecast", "fno-tiny"]}
        runs = graphql(demo_ui.url, query, {"key": key, "name": name})["assetCheckExecutions"]
        assert len(runs) == 6
        assert {r["status"] for r in runs} == {"SUCCEEDED"}
        assert sorted(r["partition"] for r in runs) == _materialized(
            demo_ui.url, "forecast/fno-tiny"
        )


def _latest(url: str, key: str) -> list[dict]:
    query = """
    query Latest($key: AssetKeyInput!, $partitions: [String!]) {
      assetNodeOrError(assetKey: $key) { ... on AssetNode {
        latestMaterializationByPartition(partitions: $partitions) { partition metadataEntries {
          label __typename
          ... on FloatMetadataEntry { floatValue }
          ... on MarkdownMetadataEntry { mdStr }
          ... on TextMetadataEntry { text }
        } }
      } }
    }"""
    partitions = _materialized(url, key)
    node = graphql(url, query, {"key": {"path": key.split("/")}, "partitions": partitions})
    return [e for e in node["assetNodeOrError"]["latestMaterializationByPartition"] if e]


def test_scores_plot_over_analysis_time_with_units(demo_ui):
    """Point 5: every verified cycle carries its headline scores as numbers with units and
    four significant digits, the values the UI's by-partition plot draws."""
    events = _latest(demo_ui.url, "verification/fno-tiny")
    assert len(events) == 5  # the newest cycle has no truth yet
    for event in events:
        floats = {
            e["label"]: e["floatValue"] for e in event["metadataEntries"] if "floatValue" in e
        }
        label = "rmse geopotential_500hPa +24h [m2 s-2]"
        if label in floats:
            value = floats[label]
            assert value == float(f"{value:.4g}")
        assert all(re.search(r"\[[^\]]+\]$", k) for k in floats if k.startswith("rmse"))


def test_forecast_partitions_show_a_map(demo_ui):
    """Point 10: each forecast partition's materialization has a picture of the forecast."""
    events = _latest(demo_ui.url, "forecast/fno-tiny")
    assert len(events) == 6
    for event in events:
        (entry,) = [e for e in event["metadataEntries"] if e["label"] == "map"]
        assert entry["mdStr"].startswith("![") and "data:image/png;base64," in entry["mdStr"]


def test_artifact_observation_and_sensors_say_what_they_are(demo_ui):
    """Point 10: the artifact's observation carries its version and provenance; every sensor
    has a description, and the artifact sensor names what it watches."""
    query = """
    { assetNodeOrError(assetKey: {path: ["model_artifact", "fno-tiny"]}) {
        ... on AssetNode { assetObservations(limit: 1) { metadataEntries { label } } } } }"""
    (obs,) = graphql(demo_ui.url, query)["assetNodeOrError"]["assetObservations"]
    labels = {e["label"] for e in obs["metadataEntries"]}
    assert {"sha256", "artifact_version", "created_utc", "created_by", "training_data"} <= labels
    sensors = graphql(
        demo_ui.url,
        """{ workspaceOrError { ... on Workspace { locationEntries { locationOrLoadError {
             ... on RepositoryLocation { repositories { sensors { name description
               assetSelection { assetSelectionString } } } } } } } } }""",
    )["workspaceOrError"]["locationEntries"][0]["locationOrLoadError"]["repositories"][0]
    by_name = {s["name"]: s for s in sensors["sensors"]}
    assert all(s["description"] for s in by_name.values()), by_name
    watched = by_name["model_artifacts_sensor"]["assetSelection"]["assetSelectionString"]
    assert "forecast/fno-tiny" in watched


def _wxplat(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "weather_assets.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_retrain_marks_exactly_the_old_cycles_stale_and_one_backfill_reruns_them(tmp_path):
    """Point 1 end to end: a retrained artifact; `wxplat stale` names the cycles made with the
    old one, the UI shows the same cycles Unsynced, and `--backfill` launches one backfill of
    them through the webserver."""
    registry = write_demo_registry(tmp_path / "registry")
    with demo_instance(tmp_path / "home", cycles=2, registry_dir=registry) as demo:
        assert _wxplat(demo.env, "stale").stdout.startswith("nothing stale")
        trained = _wxplat(
            demo.env, "train", "fno-tiny", "--start", "2025-09-01", "--end", "2025-10-01"
        )
        assert trained.returncode == 0, trained.stdout + trained.stderr
        listed = _wxplat(demo.env, "stale", "--json")
        assert listed.returncode == 0, listed.stderr
        found = [json.loads(line) for line in listed.stdout.splitlines()]
        forecasts = sorted(f["partition"] for f in found if f["asset"] == "forecast/fno-tiny")
        assert forecasts == _materialized(demo.url, "forecast/fno-tiny")
        assert all("model_artifact/fno-tiny" in " ".join(f["causes"]) for f in found)
        assert not any(f["asset"].endswith("/persistence") for f in found)
        assert set(_stale(demo.url, "forecast/fno-tiny", forecasts)) == {"STALE"}
        launched = _wxplat(
            demo.env, "stale", "--model", "fno-tiny", "--backfill", "--url", demo.url
        )
        assert launched.returncode == 0, launched.stdout + launched.stderr
        backfill_id = re.search(r"backfill (\S+):", launched.stdout).group(1)
        backfills = graphql(
            demo.url,
            """{ partitionBackfillsOrError { ... on PartitionBackfills { results {
                 id partitionNames assetSelection { path } } } } }""",
        )["partitionBackfillsOrError"]["results"]
        (backfill,) = [b for b in backfills if b["id"] == backfill_id]
        assert sorted(backfill["partitionNames"]) == forecasts
        assert {"/".join(k["path"]) for k in backfill["assetSelection"]} == {
            "normalized/fno-tiny",
            "forecast/fno-tiny",
            "verification/fno-tiny",
        }
