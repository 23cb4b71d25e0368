"""Runs of several partitions (a multi-run backfill's): one materialization and check set each.

A model's ``normalized`` and ``forecast`` assets carry ``BackfillPolicy.multi_run(K)``: a
backfill (or an automation tick) of N cycles launches runs of up to K partitions, and the
asset's step gets them all (``context.partition_keys``). The step writes, audits and
publishes each cycle's stores on its own, and records what happened to each cycle with
:func:`report_partitions`, from a list of :class:`PartitionOutcome`:

* each committed (or kept) cycle is one materialization of its partition, with its own
  metadata. Either each is reported as an ``AssetMaterialization`` carrying the data-version
  lineage tags Dagster itself writes (code version; each input's data version and event for
  *that* partition; the data version), so staleness is exact per cycle (``forecast``); or,
  for an asset whose downstream may run in the same run and needs its output
  (``normalized``), through one ``MaterializeResult`` when every cycle committed: Dagster
  then materializes each partition of the run, with the metadata given per partition
  (``add_asset_metadata``) but one data version derived from the whole range's inputs
  (a Dagster limitation of ranged runs: a changed input of one cycle marks the run's other
  cycles' dependents stale too; a run of one partition records its own version);
* each cycle's check results are evaluations *of its partition*, tied to its latest
  materialization (Dagster 1.13 ties an ``AssetCheckResult`` to a partition only in a
  single-partition run, so they are built here);
* a refused or failed cycle commits nothing and is not materialized; its checks are still
  reported (the failed ones show in the UI), and once every cycle is done the step fails
  naming each failed cycle and its reason. The backfill daemon counts the reported
  partitions as materialized and the others as failed
  (``asset_backfill._get_failed_asset_graph_subset`` subtracts a ranged run's materialized
  partitions from its range).
"""

# No `from __future__ import annotations`: Dagster inspects annotations at runtime.

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import dagster as dg
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData,
)
from dagster._core.definitions.data_version import (
    CODE_VERSION_TAG,
    DATA_VERSION_IS_USER_PROVIDED_TAG,
    DATA_VERSION_TAG,
    DEFAULT_DATA_VERSION,
    NULL_EVENT_POINTER,
    compute_logical_data_version,
    extract_data_version_from_entry,
    get_input_data_version_tag,
    get_input_event_pointer_tag,
)

from weather_assets.audit import StagedWriteRefused


@dataclass
class PartitionOutcome:
    """What a multi-partition step did with one partition (cycle)."""

    key: str
    metadata: dict = field(default_factory=dict)  # of its materialization
    checks: list[dg.AssetCheckResult] = field(default_factory=list)
    data_version: str | None = None  # the asset's own data version, None: derived (logical)
    error: BaseException | None = None  # refused or failed: nothing of it was committed

    @property
    def committed(self) -> bool:
        return self.error is None


def is_partition_range(context: dg.AssetExecutionContext) -> bool:
    """True when the step runs a partition range (a backfill run), even of one partition."""
    return not context.has_partition_key


def report_partitions(
    context: dg.AssetExecutionContext,
    asset_key: dg.AssetKey,
    outcomes: Sequence[PartitionOutcome],
    *,
    output: bool,
) -> Iterator:
    """The events of a multi-partition step (see the module docstring); raises if one failed.

    ``output``: report a run where every cycle committed through the step's output, as an
    asset whose downstream may run in the same run needs (a step whose output is missing
    skips its downstream steps); else report each partition's own materialization, with
    its exact lineage (the asset must be declared ``output_required=False``).
    """
    failed = [o for o in outcomes if not o.committed]
    if not failed and output:
        for outcome in outcomes:
            context.add_asset_metadata(outcome.metadata, partition_key=outcome.key)
        # One partition: its own data version, as a single-partition run records it.
        single = outcomes[0].data_version if len(outcomes) == 1 else None
        yield dg.MaterializeResult(data_version=dg.DataVersion(single) if single else None)
        yield from _check_outputs(context)
    else:
        for outcome in outcomes:
            if outcome.committed:
                yield dg.AssetMaterialization(
                    asset_key=asset_key,
                    partition=outcome.key,
                    metadata=outcome.metadata,
                    tags=lineage_tags(context, asset_key, outcome.key, outcome.data_version),
                )
        if not failed:
            yield from _check_outputs(context)
    for outcome in outcomes:
        yield from check_evaluations(context, asset_key, outcome.key, outcome.checks)
    if failed:
        raise range_failure(asset_key, outcomes)


def check_evaluations(
    context: dg.AssetExecutionContext,
    asset_key: dg.AssetKey,
    partition: str,
    results: Sequence[dg.AssetCheckResult],
) -> Iterator[dg.AssetCheckEvaluation]:
    """``results`` as evaluations of ``partition``, tied to its latest materialization."""
    if not results:
        return
    specs = {spec.name: spec for spec in context.assets_def.check_specs}
    target = _latest_materialization(context.instance, asset_key, partition)
    for result in results:
        spec = specs[result.check_name]
        if spec.key not in context.selected_asset_check_keys:
            continue
        yield dg.AssetCheckEvaluation(
            asset_key=asset_key,
            check_name=result.check_name,
            passed=result.passed,
            metadata=result.metadata,
            target_materialization_data=target,
            severity=result.severity,
            description=result.description,
            blocking=spec.blocking,
            partition=partition if spec.partitions_def is not None else None,
        )


def range_failure(asset_key: dg.AssetKey, outcomes: Sequence[PartitionOutcome]) -> dg.Failure:
    """The step's failure: which cycles failed and why, which were committed anyway."""
    failed = [o for o in outcomes if not o.committed]
    done = [o.key for o in outcomes if o.committed]
    reasons = "; ".join(f"{o.key}: {_reason(o.error)}" for o in failed)
    kept = f" ({len(done)} other cycle(s) committed: {', '.join(done)})" if done else ""
    refused_only = all(isinstance(o.error, StagedWriteRefused) for o in failed)
    return dg.Failure(
        description=(
            f"{asset_key.to_user_string()}: {len(failed)} of {len(outcomes)} cycle(s) failed, "
            f"nothing of them committed: {reasons}{kept}"
        ),
        metadata={"failed_partitions": ", ".join(o.key for o in failed)},
        allow_retries=not refused_only,  # a refusal is a data problem: retrying repeats it
    )


def lineage_tags(
    context: dg.AssetExecutionContext,
    asset_key: dg.AssetKey,
    partition: str,
    data_version: str | None,
) -> dict[str, str]:
    """The data-version tags Dagster writes on a materialization of ``partition``.

    Code version, and for each dependency its data version and event (storage id) for this
    partition (the dependency's partition of the same key; an unpartitioned one's latest),
    then the data version: ``data_version`` when given, else derived from the code version
    and the inputs' versions, as Dagster derives it.
    """
    layer = context.job_def.asset_layer
    node = layer.get(asset_key)
    code_version = node.code_version or context.run.run_id
    tags = {CODE_VERSION_TAG: code_version}
    inputs: dict[dg.AssetKey, dg.DataVersion] = {}
    for dep in sorted(node.parent_keys, key=lambda k: k.to_user_string()):
        dep_node = layer.get(dep) if layer.has(dep) else None
        partitioned = dep_node is not None and dep_node.partitions_def is not None
        record = context.instance.get_latest_data_version_record(
            dep, partition_key=partition if partitioned else None
        )
        version = (
            extract_data_version_from_entry(record.event_log_entry) if record else None
        ) or DEFAULT_DATA_VERSION
        inputs[dep] = version
        tags[get_input_data_version_tag(dep)] = version.value
        tags[get_input_event_pointer_tag(dep)] = (
            str(record.storage_id) if record else NULL_EVENT_POINTER
        )
    if data_version is not None:
        tags[DATA_VERSION_TAG] = data_version
        tags[DATA_VERSION_IS_USER_PROVIDED_TAG] = "true"
    else:
        tags[DATA_VERSION_TAG] = compute_logical_data_version(code_version, inputs).value
    return tags


def _check_outputs(context: dg.AssetExecutionContext) -> Iterator[dg.Output]:
    # Each selected check's output, once per step (its results are the evaluations).
    for spec in context.assets_def.check_specs:
        if spec.key in context.selected_asset_check_keys:
            name = context.assets_def.get_output_name_for_asset_check_key(spec.key)
            yield dg.Output(None, output_name=name)


def _latest_materialization(
    instance: dg.DagsterInstance, asset_key: dg.AssetKey, partition: str
) -> AssetCheckEvaluationTargetMaterializationData | None:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=asset_key, asset_partitions=[partition]), limit=1
    ).records
    if not records:
        return None
    return AssetCheckEvaluationTargetMaterializationData(
        storage_id=records[0].storage_id, run_id=records[0].run_id, timestamp=records[0].timestamp
    )


def _reason(error: BaseException | None) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
