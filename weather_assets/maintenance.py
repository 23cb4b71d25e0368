"""Housekeeping of the storage root: staging left behind by writers that died.

A write that is killed (SIGKILL, a lost pod, a full disk) leaves its staging area under
``<root>/.staging/``; one killed after its commit point leaves a commit to finish. The
sensor below runs :meth:`resources.storage.Storage.clean_staging` every hour: it completes
such commits and removes abandoned staging (a dead process on this host, or a lease older
than the age limit), never a live write.
"""

import dagster as dg

from resources.storage import StorageResource

CLEANUP_INTERVAL_SECONDS = 3600


def build_staging_cleanup_sensor() -> dg.SensorDefinition:
    """Hourly cleanup of abandoned staging under the storage root (launches no runs)."""

    @dg.sensor(
        name="storage_staging_cleanup",
        minimum_interval_seconds=CLEANUP_INTERVAL_SECONDS,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Completes commits interrupted after their commit point and removes "
        "staging left by dead writers under the storage root; never touches a live write.",
    )
    def storage_staging_cleanup(context: dg.SensorEvaluationContext, storage: StorageResource):
        report = storage.storage().clean_staging()
        for label in report.rolled_forward:
            context.log.warning(f"completed the interrupted commit of {label}")
        for url in report.removed:
            context.log.info(f"removed abandoned staging {url}")
        return dg.SkipReason(
            f"{len(report.rolled_forward)} commit(s) completed, {len(report.removed)} abandoned "
            f"staging area(s) removed, {len(report.kept)} live write(s) kept"
        )

    return storage_staging_cleanup
