"""The local run launcher: Dagster's default one, with a worker health check.

Dagster's run monitoring (the daemon) marks a run failed when its launcher reports the run
worker dead, but ``DefaultRunLauncher`` reports nothing: a run whose process was killed
(SIGKILL, out-of-memory, a machine that went down) stays STARTED for ever and holds its pool
slots. Every run worker records its process id in an engine event ("Started process for
run (pid: N)", or the multiprocess executor's parent pid), so on the one host of a local
deployment the check is whether that process still lives.
"""

from __future__ import annotations

from dagster import DagsterEventType, DagsterRun
from dagster._core.launcher import DefaultRunLauncher
from dagster._core.launcher.base import CheckRunHealthResult, WorkerStatus

from resources.processes import pid_alive


def run_worker_pid(instance, run_id: str) -> int | None:
    """Process id of a run's worker, from the first engine event that records one."""
    for record in instance.all_logs(run_id, of_type=DagsterEventType.ENGINE_EVENT):
        data = record.dagster_event.engine_event_data if record.dagster_event else None
        pid = data.metadata.get("pid") if data and data.metadata else None
        if pid is not None:
            return int(pid.value)
    return None


class LocalRunLauncher(DefaultRunLauncher):
    """``DefaultRunLauncher`` that lets run monitoring fail runs whose process died."""

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        pid = run_worker_pid(self._instance, run.run_id)
        if pid is None:  # not started far enough to tell: leave it to the run timeout
            return CheckRunHealthResult(WorkerStatus.RUNNING, "no run worker pid recorded yet")
        if pid_alive(pid):
            return CheckRunHealthResult(WorkerStatus.RUNNING, f"run worker process {pid} is alive")
        return CheckRunHealthResult(
            WorkerStatus.FAILED,
            f"run worker process {pid} is gone (killed or crashed) while the run was STARTED",
        )
