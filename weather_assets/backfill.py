"""Backfills from the command line, through the webserver's GraphQL ``launchPartitionBackfill``.

A backfill is launched as Dagster's own multi-run asset backfill (the daemon executes it,
respecting the ``gpu`` pool), so it appears in the UI's Backfills page like one launched there.
Partitions already materialized are left out unless ``force`` is set.
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from datetime import datetime

import dagster as dg

from weather_assets.partitions import (
    cadence_neighbours,
    partition_key_to_time,
    time_to_partition_key,
)

VERSION = "{ version }"

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


class WebserverUnreachable(ConnectionError):
    """No webserver answers at a URL: connection refused, unknown host or timed out."""

    def __init__(self, url: str, reason: object) -> None:
        super().__init__(f"no Dagster webserver answers at {url} ({reason})")
        self.url = url


class GraphQLError(RuntimeError):
    """The webserver answered a GraphQL request with errors."""


def graphql(url: str, query: str, variables: dict | None = None, *, timeout: float = 30) -> dict:
    """POST a GraphQL query to a Dagster webserver; the ``data`` of the answer.

    Raises :class:`WebserverUnreachable` when nothing answers at ``url`` within ``timeout``
    seconds, and :class:`GraphQLError` listing every error when the answer has errors (also
    when they come with HTTP 400, as for a query that does not validate); any other HTTP
    error status is raised as ``urllib.error.HTTPError``.
    """
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(
        f"{url.rstrip('/')}/graphql", data=body, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            answer = json.loads(response.read())
    except urllib.error.HTTPError as exc:  # a query that does not validate: 400 with errors
        try:
            answer = json.loads(exc.read())
        except ValueError:
            raise exc from None
        if not isinstance(answer, dict) or not answer.get("errors"):
            raise
    except urllib.error.URLError as exc:  # refused, unknown host, timed out while connecting
        raise WebserverUnreachable(url, exc.reason) from None
    except TimeoutError as exc:  # connected, but no answer in time
        raise WebserverUnreachable(url, exc) from None
    if answer.get("errors"):
        messages = "; ".join(e.get("message", str(e)) for e in answer["errors"])
        raise GraphQLError(f"GraphQL errors from {url}: {messages}")
    return answer["data"]


def partitions_to_backfill(
    instance: dg.DagsterInstance,
    asset_key: dg.AssetKey,
    partitions_def: dg.PartitionsDefinition,
    start: str,
    end: str,
    force: bool = False,
) -> list[str]:
    """Partition keys from ``start`` to ``end`` inclusive, less those already materialized.

    ValueError, naming the value, when ``end`` is before ``start`` or either is not a
    partition key of the asset (not a time, off the cadence, or outside the partitions).
    """
    asset = asset_key.to_user_string()
    if partitions_def is None:
        raise ValueError(f"{asset} is not partitioned, so it has no cycles to backfill")
    keys = partitions_def.get_partition_keys()
    if isinstance(partitions_def, dg.TimeWindowPartitionsDefinition):
        t0, t1 = _key_time("start", start), _key_time("end", end)
        if t1 < t0:
            raise ValueError(f"end {end} is before start {start}: the range must run forward")
        for label, key in (("start", start), ("end", end)):
            if key not in keys:
                why = _why_not_a_partition(partitions_def, key, asset)
                raise ValueError(f"{label} {key} {why}")
    else:
        for label, key in (("start", start), ("end", end)):
            if key not in keys:
                raise ValueError(f"{label} {key!r} is not a partition of {asset}")
        if keys.index(end) < keys.index(start):
            raise ValueError(f"end {end} comes before start {start} in the partitions of {asset}")
    wanted = keys[keys.index(start) : keys.index(end) + 1]
    if force:
        return wanted
    done = instance.get_materialized_partitions(asset_key)
    return [k for k in wanted if k not in done]


def _key_time(label: str, key: str) -> datetime:
    try:
        return partition_key_to_time(key)
    except ValueError:
        raise ValueError(
            f"{label} {key!r} is not an analysis time in the format YYYY-MM-DDThhmmZ"
        ) from None


def _why_not_a_partition(
    partitions_def: dg.TimeWindowPartitionsDefinition, key: str, asset: str
) -> str:
    """Why a well-formed time ``key`` is not a partition of ``asset``: the rest of a sentence."""
    t = partition_key_to_time(key)
    if time_to_partition_key(t) != key:
        return f"is not a partition key of {asset}: did you mean {time_to_partition_key(t)}?"
    first, last = partitions_def.get_first_partition_key(), partitions_def.get_last_partition_key()
    if first is None or last is None:
        return f"is not a partition key: {asset} has no partitions yet"
    if not partition_key_to_time(first) <= t <= partition_key_to_time(last):
        return f"is outside the partitions of {asset}, which run from {first} to {last}"
    before, after = cadence_neighbours(partitions_def, t)
    if before == key:  # on the cadence, yet excluded
        return f"is not a partition key of {asset}"
    return (
        f"is off the partitions' cadence ({partitions_def.cron_schedule}): "
        f"the nearest partitions are {before} and {after}"
    )


def launch_backfill(
    url: str,
    asset_keys: list[dg.AssetKey],
    partitions: list[str],
    timeout: float = 30,
    connect_timeout: float = 5,
) -> str:
    """Launch a multi-run asset backfill; returns its id (ValueError on refusal).

    The webserver is asked its version first, within ``connect_timeout`` seconds, so a
    missing one (:class:`WebserverUnreachable`) is told quickly; the launch gets ``timeout``.
    """
    if not partitions:
        raise ValueError("no partitions to backfill")
    graphql(url, VERSION, timeout=connect_timeout)
    params = {
        "assetSelection": [{"path": k.path} for k in asset_keys],
        "partitionNames": partitions,
        "title": f"wxplat backfill {partitions[0]}..{partitions[-1]}",
    }
    result = graphql(url, LAUNCH, {"params": params}, timeout=timeout)["launchPartitionBackfill"]
    if result["__typename"] != "LaunchBackfillSuccess":
        raise ValueError(f"backfill refused ({result['__typename']}): {result.get('message')}")
    return result["backfillId"]
