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


def test_the_graph_reads_at_a_glance(settings):
    """What an operator sees in the UI: every asset, check and sensor says what it is and who
    answers for it, and no two nodes of a group carry the same label (the key's last part)."""
    import definitions

    defs = definitions.build_definitions(settings)
    graph = defs.resolve_asset_graph()
    labels: dict[tuple[str, str], list[str]] = {}
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        name = key.to_user_string()
        assert node.description, f"{name} has no description"
        assert node.owners, f"{name} has no owner"
        assert node.kinds, f"{name} has no kinds"
        labels.setdefault((node.group_name, key.path[-1]), []).append(name)
        for check_key in node.check_keys:
            spec = graph.get_check_spec(check_key)
            assert spec.description, f"check {check_key.to_user_string()} has no description"
            # Freshness judges the asset's latest cycle, not one cycle: unpartitioned on purpose.
            per_cycle = "freshness" not in check_key.name
            if per_cycle and node.partitions_def is not None and spec.partitions_def is None:
                raise AssertionError(f"check {check_key.to_user_string()} is not partitioned")
        schema = node.metadata.get("dagster/column_schema")
        if schema is not None:
            for column in getattr(schema, "schema", schema).columns:
                assert column.description, f"{name} column {column.name} has no description"
    clashes = {k: v for k, v in labels.items() if len(v) > 1}
    assert not clashes, f"ambiguous labels in one group: {clashes}"
    for sensor in defs.sensors:
        assert sensor.description, f"sensor {sensor.name} has no description"
