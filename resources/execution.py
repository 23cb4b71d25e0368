"""How steps run: the executor of a deployment and the concurrency pools it relies on.

Locally every step is a subprocess (``multiprocess_executor``). On Kubernetes every step is
its own Job (``dagster_k8s.k8s_job_executor``): only then do the per-asset
``dagster-k8s/config`` op tags (GPU limits, node selector, tolerations, image from the model
registry) reach the pod that runs the step; under ``K8sRunLauncher`` with the multiprocess
executor only run-level tags apply and every model would share one pod.

Pools. Forecast steps declare ``pool="gpu"`` (or ``"cpu"``); ``dagster.yaml`` can only set
the *default* limit of pools (``concurrency.pools.default_limit``). The limit of a named pool
lives in the instance database and is set with ``dagster instance concurrency set gpu N``, or
with ``wxplat pools apply``, which writes :func:`pool_limits` of the current
settings (``WXPLAT_GPU_POOL_SIZE``) into the instance that ``DAGSTER_HOME`` points at.
"""

from __future__ import annotations

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


def executor_for(settings: PlatformSettings, **k8s_options: Any) -> dg.ExecutorDefinition:
    """``k8s_job_executor`` (configured) on Kubernetes, else the multiprocess executor."""
    if settings.deployment == "kubernetes":
        from dagster_k8s import k8s_job_executor

        return k8s_job_executor.configured(
            k8s_executor_config(**k8s_options), name="k8s_job_executor"
        )
    return dg.multiprocess_executor


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
