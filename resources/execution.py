"""How steps run: the executor of a deployment and the concurrency pools it relies on.

Locally (:data:`local_executor`) the steps of a run are subprocesses, as under Dagster's
``multiprocess_executor``, except in a run of one step (one forecast, one verification, one
cycle's raw inputs: most runs the sensors and automation launch): that step runs in the run
worker itself. The run worker is already a process of its own (``dagster dev`` launches one
per run), so a subprocess for its only step bought nothing and cost a second interpreter
start, import of the code location and exit: 2-4 s per run on a 2-core machine
(``benchmarks/bench_startup.py``). Pools, retries and run config are the multiprocess
executor's either way; a step that kills its interpreter (out of memory) now takes the run
worker with it, and run monitoring fails the run (``resources/run_launcher.py``).

On Kubernetes every step is its own Job (``dagster_k8s.k8s_job_executor``): only then do the
per-asset ``dagster-k8s/config`` op tags (GPU limits, node selector, tolerations, image from
the model registry) reach the pod that runs the step; under ``K8sRunLauncher`` with the
multiprocess executor only run-level tags apply and every model would share one pod.

Pools. Forecast steps declare ``pool="gpu"`` (or ``"cpu"``); ``dagster.yaml`` can only set
the *default* limit of pools (``concurrency.pools.default_limit``). The limit of a named pool
lives in the instance database and is set with ``dagster instance concurrency set gpu N``, or
with ``wxplat pools apply``, which writes :func:`pool_limits` of the current
settings (``WXPLAT_GPU_POOL_SIZE``) into the instance that ``DAGSTER_HOME`` points at.
"""

from __future__ import annotations

import atexit
import gc
from collections.abc import Iterator
from functools import cache
from typing import Any

import dagster as dg

from weather_assets.settings import PlatformSettings

# Names of the objects in deploy/manifests/ that step pods refer to: one place, so the
# rendered-Job test and the manifests cannot drift apart.
S3_SECRET_NAME = "wxplat-s3-credentials"
CONFIG_MAP_NAME = "wxplat-config"
STEP_SERVICE_ACCOUNT = "wxplat-step"
RUN_SERVICE_ACCOUNT = "wxplat-run-worker"
NON_ROOT_UID = 10001  # the user the Containerfile creates

DEFAULT_MAX_CONCURRENT = 8
DEFAULT_POOL_LIMIT = 4  # pools without an explicit limit (``cpu`` unless set)


def step_k8s_config() -> dict[str, Any]:
    """Raw Kubernetes config every step pod gets, merged (deeply) under the op-tag config."""
    return {
        "container_config": {
            "security_context": {
                "allow_privilege_escalation": False,
                "capabilities": {"drop": ["ALL"]},
                "read_only_root_filesystem": False,  # torch/xarray write caches under $HOME
            }
        },
        "pod_spec_config": {
            # Here, not as the executor's service_account_name: a pod_spec_config value wins
            # over that, and the run launcher's run_k8s_config (inherited by step pods) names
            # the run worker's account, which may create Jobs.
            "service_account_name": STEP_SERVICE_ACCOUNT,
            # Steps never call the Kubernetes API: no token in the pod.
            "automount_service_account_token": False,
            "security_context": {
                "run_as_non_root": True,
                "run_as_user": NON_ROOT_UID,
                "run_as_group": NON_ROOT_UID,
                "fs_group": NON_ROOT_UID,
                "seccomp_profile": {"type": "RuntimeDefault"},
            },
        },
    }


def k8s_executor_config(
    *,
    namespace: str | None = None,
    image_pull_policy: str = "IfNotPresent",
    max_concurrent: int = DEFAULT_MAX_CONCURRENT,
) -> dict[str, Any]:
    """Configuration of ``k8s_job_executor`` for this deployment.

    ``namespace`` None keeps the run launcher's namespace (the Helm release's), where the
    secret, config map and service accounts of ``deploy/manifests`` live.
    """
    config: dict[str, Any] = {
        "image_pull_policy": image_pull_policy,
        "env_config_maps": [CONFIG_MAP_NAME],
        # S3 credentials by reference: the executor config (visible in the UI) holds a name.
        "env_secrets": [S3_SECRET_NAME],
        "max_concurrent": max_concurrent,
        "step_k8s_config": step_k8s_config(),
    }
    if namespace:
        config["job_namespace"] = namespace
    return config


class LocalExecutor(dg.Executor):
    """Dagster's multiprocess executor, except that a run of one step runs it in process."""

    def __init__(self, multiprocess: dg.Executor, in_process: dg.Executor):
        self.multiprocess = multiprocess
        self.in_process = in_process

    @property
    def retries(self):
        return self.multiprocess.retries

    @property
    def step_dependency_config(self):
        return self.multiprocess.step_dependency_config

    def executor_for_plan(self, execution_plan) -> dg.Executor:
        """The executor that runs ``execution_plan``'s steps."""
        one_step = len(execution_plan.step_keys_to_execute) == 1
        return self.in_process if one_step else self.multiprocess

    def execute(self, plan_context, execution_plan) -> Iterator[dg.DagsterEvent]:
        yield from self.executor_for_plan(execution_plan).execute(plan_context, execution_plan)


def _local_executor(init_context: dg.InitExecutorContext) -> LocalExecutor:
    # Both from the same (multiprocess) config: retries and step dependencies are shared,
    # the in-process executor ignores the process settings (max_concurrent, start_method).
    multiprocess = dg.multiprocess_executor.executor_creation_fn(init_context)
    return LocalExecutor(multiprocess, dg.in_process_executor.executor_creation_fn(init_context))


local_executor = dg.ExecutorDefinition(
    name="local",
    config_schema=dg.multiprocess_executor.config_schema,
    requirements=dg.multiprocess_executor.get_requirements,
    executor_creation_fn=_local_executor,
    description="Each step in a subprocess (multiprocess executor), except the only step of a "
    "run: that one in the run worker's own process.",
)


def executor_for(settings: PlatformSettings, **k8s_options: Any) -> dg.ExecutorDefinition:
    """``k8s_job_executor`` (configured) on Kubernetes, else :data:`local_executor`."""
    if settings.deployment == "kubernetes":
        from dagster_k8s import k8s_job_executor

        return k8s_job_executor.configured(
            k8s_executor_config(**k8s_options), name="k8s_job_executor"
        )
    return local_executor


@cache  # once per process
def skip_final_collection() -> None:
    """At interpreter exit, leave the objects still alive to the OS instead of collecting them.

    Python's final garbage collections walk every object a process still holds: 0.2 s after
    ``import dagster`` alone, 1-3 s after a forecast step (torch, xarray, matplotlib, Dagster)
    on the 2-core machine, paid at the end of every CLI command, run worker and step worker,
    and on the critical path of a run (the multiprocess executor waits for its step process
    to exit). Every process that loads the code location calls this: at exit ``gc.freeze()``
    moves the objects to the permanent generation, which those collections skip, and the
    memory goes back to the OS with the process. Nothing else changes: ``atexit`` callbacks
    and ``weakref.finalize`` still run, objects freed by reference counting still run their
    ``__del__``; only cyclic garbage left at exit is not collected, which Python never
    promised either (a step commits its stores and closes its files before it ends).
    """
    atexit.register(gc.freeze)


def pool_limits(
    settings: PlatformSettings, *, default_limit: int = DEFAULT_POOL_LIMIT
) -> dict[str, int]:
    """Slots of each concurrency pool: ``gpu`` sized to the GPUs, ``cpu`` to the default."""
    return {"gpu": settings.gpu_pool_size, "cpu": default_limit}


def instance_concurrency_config(*, default_limit: int = DEFAULT_POOL_LIMIT) -> dict[str, Any]:
    """The ``concurrency`` section of ``dagster.yaml`` that pools need (op granularity)."""
    return {"pools": {"default_limit": default_limit, "granularity": "op"}}


def apply_pool_limits(instance: dg.DagsterInstance, limits: dict[str, int]) -> dict[str, int]:
    """Write pool limits into the instance database; returns the slot counts read back."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        raise ValueError(
            f"instance storage {type(storage).__name__} cannot hold pool limits; use Postgres "
            "(or SQLite) storage"
        )
    for pool, limit in limits.items():
        if limit < 0:
            raise ValueError(f"pool {pool!r}: limit must be >= 0, got {limit}")
        storage.set_concurrency_slots(pool, limit)
    return {pool: storage.get_concurrency_info(pool).slot_count for pool in limits}


def pipes_client_for(settings: PlatformSettings) -> Any:
    """How container models run: ``PipesK8sClient`` pods on Kubernetes, else subprocesses."""
    if settings.deployment == "kubernetes":
        from dagster_k8s import PipesK8sClient

        return PipesK8sClient()
    return dg.PipesSubprocessClient()
