"""Backfills from the command line, through the webserver's GraphQL ``launchPartitionBackfill``.

A backfill is launched as Dagster's own multi-run asset backfill (the daemon executes it,
respecting the ``gpu`` pool), so it appears in the UI's Backfills page like one launched there.
Partitions already materialized are left out unless ``force`` is set.
"""

from __future__ import annotations

import json
import sys
import urllib.request

import dagster as dg

LAUNCH = """
mutation Launch($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
    ... on UnauthorizedError { message }
    ... on PartitionSetNotFoundError { message }
    ... on InvalidSubsetError { message }
    ... on InvalidOutputError { invalidOutputName }
  }
}
"""


def materialize_command(select: str, partition: str, config: dict | None = None) -> list[str]:
    """``dagster asset materialize`` of this code location for one partition (run it from
    the project root): the single-cycle command-line way, without webserver or daemon."""
    cmd = [
        sys.executable,
        "-m",
        "dagster",
        "asset",
        "materialize",
        "-f",
        "definitions.py",
        "--select",
        select,
        "--partition",
        partition,
    ]
    return cmd + (["--config-json", json.dumps(config)] if config else [])


def graphql(url: str, query: str, variables: dict | None = None, timeout: float = 30) -> dict:
    """POST a GraphQL query to a Dagster webserver; the ``data`` of the answer."""
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(
        f"{url.rstrip('/')}/graphql", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        answer = json.loads(response.read())
    if answer.get("errors"):
        raise RuntimeError(f"GraphQL error from {url}: {answer['errors'][0].get('message')}")
    return answer["data"]


def partitions_to_backfill(
    instance: dg.DagsterInstance,
    asset_key: dg.AssetKey,
    partitions_def: dg.PartitionsDefinition,
    start: str,
    end: str,
    force: bool = False,
) -> list[str]:
    """Partition keys from ``start`` to ``end`` inclusive, less those already materialized."""
    keys = partitions_def.get_partition_keys()
    if start not in keys or end not in keys:
        raise ValueError(
            f"{start}..{end} is not a range of existing partitions of "
            f"{asset_key.to_user_string()} ({keys[0]} .. {keys[-1]})"
        )
    wanted = keys[keys.index(start) : keys.index(end) + 1]
    if force:
        return wanted
    done = instance.get_materialized_partitions(asset_key)
    return [k for k in wanted if k not in done]


def launch_backfill(url: str, asset_keys: list[dg.AssetKey], partitions: list[str]) -> str:
    """Launch a multi-run asset backfill; returns its id (ValueError on refusal)."""
    params = {
        "assetSelection": [{"path": k.path} for k in asset_keys],
        "partitionNames": partitions,
        "title": f"wxplat backfill {partitions[0]}..{partitions[-1]}",
    }
    result = graphql(url, LAUNCH, {"params": params})["launchPartitionBackfill"]
    if result["__typename"] != "LaunchBackfillSuccess":
        raise ValueError(f"backfill refused ({result['__typename']}): {result.get('message')}")
    return result["backfillId"]
