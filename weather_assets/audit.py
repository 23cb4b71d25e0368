"""The audit step of write-audit-publish, shared by every asset that stages its stores.

An asset stages its stores, computes its check results on them, and calls :func:`audit`:
a failed blocking check raises :class:`StagedWriteRefused` inside the staging block, so
nothing is committed. The asset then yields the results (the failed checks show in the UI,
tied to the run) and fails with :func:`refusal`.
"""

from collections.abc import Mapping

import dagster as dg

from weather_assets.beta import quiet_beta


class StagedWriteRefused(ValueError):
    """Staged stores failed a blocking check; nothing was committed."""


def blocking_failures(results: list[dg.AssetCheckResult]) -> list[dg.AssetCheckResult]:
    """The failed results that must stop a commit (errors, not warnings)."""
    return [r for r in results if not r.passed and r.severity == dg.AssetCheckSeverity.ERROR]


def audit(results: list[dg.AssetCheckResult], what: str) -> None:
    """Refuse the staged write of ``what`` (one sentence) if a blocking check failed."""
    failed = blocking_failures(results)
    if failed:
        raise StagedWriteRefused(
            f"{what} was refused before commit: "
            + "; ".join(f"{r.check_name}: {r.description}" for r in failed)
            + " (the stored version, if any, is unchanged)"
        )


def refusal(exc: StagedWriteRefused) -> dg.Failure:
    """The run failure for a refused write: a data problem, so not retried."""
    return dg.Failure(description=str(exc), allow_retries=False)


def check_specs(
    asset_key: dg.AssetKey,
    partitions_def: dg.PartitionsDefinition | None,
    checks: Mapping[str, tuple[bool, str]],
) -> list[dg.AssetCheckSpec]:
    """Check specs ``{name: (blocking, description)}`` of an asset, partitioned like it.

    Partitioned checks tie every result to its cycle: the UI's check history has a
    partition column, and a cycle's checks are read per partition.
    """
    with quiet_beta():  # partitioned check specs are a Dagster preview
        return [
            dg.AssetCheckSpec(
                name,
                asset=asset_key,
                blocking=blocking,
                description=text,
                partitions_def=partitions_def,
            )
            for name, (blocking, text) in checks.items()
        ]
