"""Snapshot of the code location: any change to the asset graph shows up in review.

Regenerate after an intended change with ``UPDATE_SNAPSHOTS=1 pytest tests/test_defs.py``.
"""

import json
import os

import dagster as dg

from tests.conftest import ROOT

SNAPSHOT = ROOT / "tests" / "snapshots" / "asset_graph.json"


def _describe(settings) -> dict:
    import definitions

    defs = definitions.build_definitions(settings)
    graph = defs.resolve_asset_graph()
    out: dict = {"assets": {}, "checks": [], "sensors": [], "resources": []}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        cond = node.automation_condition
        op_tags = defs.resolve_assets_def(key).op.tags if node.is_materializable else {}
        out["assets"][key.to_user_string()] = json.loads(
            json.dumps(
                {
                    "deps": sorted(p.to_user_string() for p in node.parent_keys),
                    "group": node.group_name,
                    "kinds": sorted(node.kinds),
                    "partitions": str(node.partitions_def) if node.partitions_def else None,
                    "automation": cond.get_label() or type(cond).__name__ if cond else None,
                    "code_version": node.code_version,
                    "pool": sorted(node.pools) if node.pools else None,
                    "k8s_config": json.loads(op_tags.get("dagster-k8s/config", "null")),
                    "observable": node.is_observable,
                    "materializable": node.is_materializable,
                },
                default=str,
            )
        )
    out["checks"] = sorted(k.to_user_string() for k in graph.asset_check_keys)
    out["sensors"] = sorted(s.name for s in defs.sensors)
    out["resources"] = sorted(defs.resources)
    return out


def test_asset_graph_snapshot(settings):
    current = _describe(settings)
    if os.environ.get("UPDATE_SNAPSHOTS"):
        SNAPSHOT.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
    expected = json.loads(SNAPSHOT.read_text())
    assert current == expected, "asset graph changed: review, then UPDATE_SNAPSHOTS=1"


def test_every_partitioned_asset_shares_the_analysis_time_partitions(settings):
    import definitions

    graph = definitions.build_definitions(settings).resolve_asset_graph()
    parts = {
        str(graph.get(k).partitions_def)
        for k in graph.get_all_asset_keys()
        if graph.get(k).partitions_def is not None
    }
    assert len(parts) == 1
    assert all(
        isinstance(graph.get(k).partitions_def, dg.TimeWindowPartitionsDefinition)
        for k in graph.get_all_asset_keys()
        if graph.get(k).partitions_def
    )
