"""The audit step of write-audit-publish, shared by every asset that stages its stores.

An asset stages its stores, computes its check results on them, and calls :func:`audit`:
a failed blocking check raises :class:`StagedWriteRefused` inside the staging block, so
nothing is committed. The asset then yields the results (the failed checks show in the UI,
tied to the run) and fails with :func:`refusal`.
"""

import dagster as dg


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
