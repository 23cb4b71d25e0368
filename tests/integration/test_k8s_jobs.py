"""The Kubernetes Jobs that dagster-k8s would submit for forecast steps, built by dagster-k8s itself.

Nothing here hand-writes a Job: the step executor comes from ``resources.execution.executor_for``
(the configured ``k8s_job_executor``), the run launcher from ``deploy/dagster.yaml``, the
forecast assets from the real per-model factory (``build_model_assets``, whose op tags are the
registry's ``k8s_config``); dagster-k8s's ``K8sStepHandler.launch_step`` merges them
(``get_user_defined_k8s_config`` + ``DagsterK8sJobConfig`` + ``construct_dagster_k8s_job``) and
hands the Job to a mocked batch API. The Job is then serialized by the kubernetes client and
validated against the Kubernetes schema (strict: unknown fields are errors).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any
from unittest import mock

import dagster as dg
import kubernetes_validate
import pytest
import yaml
from dagster._core.execution.api import create_execution_plan
from dagster._core.execution.context.system import PlanData, PlanOrchestrationContext
from dagster._core.execution.context_creation_job import create_context_free_log_manager
from dagster._core.execution.retries import RetryMode
from dagster._core.executor.init import InitExecutorContext
from dagster._core.executor.step_delegating.step_handler.base import StepHandlerContext
from dagster._core.system_config.objects import ResolvedRunConfig
from dagster._core.test_utils import create_run_for_test, instance_for_test
from dagster._grpc.types import ExecuteStepArgs
from kubernetes.client import ApiClient

from model_registry.registry import get_spec
from model_registry.spec import ModelSpec
from resources import execution
from resources.storage import StorageResource
from tests.conftest import ROOT
from weather_assets.forecast.assets import build_model_assets
from weather_assets.keys import forecast_key, raw_inputs_key
from weather_assets.partitions import analysis_time_partitions
from weather_assets.settings import load_settings

K8S_VERSION = kubernetes_validate.latest_version()  # newest schema the package ships
CODE_IMAGE = "registry.example.com/wxplat/weather-platform:0.1.0"
GPU_IMAGE = "registry.example.com/wxplat/external-model:1.2"

# A GPU model entry as an operator would write it in model_registry/models/.
GPU_ENTRY = yaml.safe_load(
    f"""
name: gpu-model
architecture: persistence
input_variables: &vars
  - name: 2m_temperature
  - name: geopotential
    levels: [500]
output_variables: *vars
timestep: 6h
max_lead_time: 240h
runtime:
  gpu: 1
  cpu: "8"
  memory: 48Gi
  node_selector:
    nvidia.com/gpu.present: "true"
    cloud.google.com/gke-accelerator: nvidia-l4
  tolerations:
    - key: nvidia.com/gpu
      operator: Exists
      effect: NoSchedule
  image: {GPU_IMAGE}
"""
)


def _step_key(spec: ModelSpec) -> str:
    """Step (op) name Dagster derives from the asset key ``forecast/<name>``."""
    return forecast_key(spec.name).to_python_identifier()


@functools.cache
def _specs() -> tuple[ModelSpec, ModelSpec]:
    """A GPU entry built here and the registry's real CPU entry (persistence)."""
    return ModelSpec.model_validate(GPU_ENTRY), get_spec("persistence")


def _k8s_settings():
    return load_settings({"WXPLAT_DEPLOYMENT": "kubernetes", "WXPLAT_HOME": "/var/lib/wxplat"})


def forecast_job() -> dg.JobDefinition:
    """The forecast assets of the real factory under Kubernetes settings.

    Module level: dagster reconstructs the job from this function, as a run worker would.
    """
    settings = _k8s_settings()
    partitions_def = analysis_time_partitions(settings.partitions_start, settings.partitions_cron)
    assets = [
        a
        for spec in _specs()
        for a in build_model_assets(
            spec,
            partitions_def=partitions_def,
            raw_inputs_key=raw_inputs_key(settings.upstream_name),
            settings=settings,
        )
    ]
    forecasts = dg.AssetSelection.assets(*[forecast_key(s.name) for s in _specs()])
    defs = dg.Definitions(
        assets=assets,
        jobs=[dg.define_asset_job("forecasts", selection=forecasts)],
        resources={"storage": StorageResource(root=settings.storage_root)},
        executor=execution.executor_for(settings),
    )
    return defs.resolve_job_def("forecasts")


@pytest.fixture
def kubeconfig(tmp_path: Path) -> str:
    """A kubeconfig naming a cluster that is never contacted (the batch API is mocked)."""
    path = tmp_path / "kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:6443"}}],
                "users": [{"name": "u", "user": {"token": "unused"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    return str(path)


@pytest.fixture
def k8s_instance(kubeconfig):
    """An instance with deploy/dagster.yaml's K8sRunLauncher (out-of-cluster kubeconfig)."""
    deployed = yaml.safe_load((ROOT / "deploy" / "dagster.yaml").read_text())
    launcher = deployed["run_launcher"]
    launcher["config"] = {
        **launcher["config"],
        "load_incluster_config": False,
        "kubeconfig_file": kubeconfig,
    }
    with instance_for_test(overrides={"run_launcher": launcher}) as instance:
        yield instance


def _render_step_job(instance: dg.DagsterInstance, step_key: str) -> tuple[dict[str, Any], str]:
    """The Job (as JSON-ready dict) and namespace dagster-k8s submits for one step."""
    recon = dg.reconstructable(forecast_job)
    job_def = recon.get_definition()
    # The executor's config as a run would resolve it (through `.configured`).
    executor_config = ResolvedRunConfig.build(job_def, {}).execution.execution_engine_config
    executor = job_def.executor_def.executor_creation_fn(
        InitExecutorContext(
            job=recon,
            executor_def=job_def.executor_def,
            executor_config=executor_config,
            instance=instance,
        )
    )
    handler = executor._step_handler  # the real K8sStepHandler
    batch_api = mock.MagicMock()
    handler._api_client.batch_api = batch_api

    origin = recon.get_python_origin()
    # The user deployment reports its image (DAGSTER_CURRENT_IMAGE) in the origin.
    origin = origin._replace(
        repository_origin=origin.repository_origin._replace(container_image=CODE_IMAGE)
    )
    run = create_run_for_test(instance, job_name=job_def.name, job_code_origin=origin)
    plan = create_execution_plan(recon)
    plan_context = PlanOrchestrationContext(
        plan_data=PlanData(
            job=recon,
            dagster_run=run,
            instance=instance,
            execution_plan=plan,
            raise_on_error=True,
            retry_mode=RetryMode.DISABLED,
        ),
        log_manager=create_context_free_log_manager(instance, run),
        executor=executor,
        output_capture=None,
    )
    context = StepHandlerContext(
        instance=instance,
        plan_context=plan_context,
        steps=plan.steps,
        execute_step_args=ExecuteStepArgs(origin, run.run_id, [step_key]),
    )
    list(handler.launch_step(context))
    call = batch_api.create_namespaced_job.call_args
    assert call is not None, "dagster-k8s did not submit a Job"
    body = ApiClient().sanitize_for_serialization(call.kwargs["body"])
    return body, call.kwargs["namespace"]


def _env_from(container: dict) -> set[tuple[str, str]]:
    out = set()
    for source in container.get("envFrom", []):
        for kind in ("secretRef", "configMapRef"):
            if kind in source:
                out.add((kind, source[kind]["name"]))
    return out


def _assert_common(job: dict, namespace: str, step_key: str) -> dict:
    """What every step Job must have; returns its pod spec."""
    assert kubernetes_validate.validate(job, K8S_VERSION, strict=True)
    assert job["kind"] == "Job" and namespace == "wxplat"
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert job["metadata"]["labels"]["dagster/op"] == step_key
    assert container["imagePullPolicy"] == "IfNotPresent"
    # Credentials only by reference; the non-secret settings from the config map.
    assert ("secretRef", execution.S3_SECRET_NAME) in _env_from(container)
    assert ("configMapRef", execution.CONFIG_MAP_NAME) in _env_from(container)
    for env in container.get("env", []):
        assert not env["name"].startswith("AWS_"), "credentials must not be inlined in the Job"
    # Least privilege: the step account, no API token, non-root, no privilege escalation.
    assert pod["serviceAccountName"] == execution.STEP_SERVICE_ACCOUNT
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == execution.NON_ROOT_UID
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    # Postgres password by reference, as the run launcher configures it.
    pg = [e for e in container["env"] if e["name"] == "DAGSTER_PG_PASSWORD"]
    assert pg and pg[0]["valueFrom"]["secretKeyRef"]["name"] == "dagster-postgresql-secret"
    return pod


def test_executor_for_picks_k8s_only_on_kubernetes(settings):
    assert execution.executor_for(settings) is execution.local_executor
    k8s = execution.executor_for(_k8s_settings())
    assert k8s.name == "k8s_job_executor"
    assert forecast_job().executor_def.name == "k8s_job_executor"


def test_gpu_forecast_step_job(k8s_instance):
    spec = _specs()[0]
    step_key = _step_key(spec)
    job, namespace = _render_step_job(k8s_instance, step_key)
    pod = _assert_common(job, namespace, step_key)
    container = pod["containers"][0]
    assert container["image"] == GPU_IMAGE
    limits, requests = container["resources"]["limits"], container["resources"]["requests"]
    assert limits["nvidia.com/gpu"] == "1"
    assert limits["cpu"] == requests["cpu"] == "8" and limits["memory"] == "48Gi"
    assert pod["nodeSelector"] == spec.runtime.node_selector
    assert pod["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]
    # The step is in the gpu pool, whose size is the number of GPUs.
    plan = create_execution_plan(dg.reconstructable(forecast_job))
    assert plan.get_step_by_key(step_key).pool == "gpu"
    assert "gpu" in execution.pool_limits(_k8s_settings())


def test_cpu_forecast_step_job(k8s_instance):
    spec = _specs()[1]
    step_key = _step_key(spec)
    job, namespace = _render_step_job(k8s_instance, step_key)
    pod = _assert_common(job, namespace, step_key)
    container = pod["containers"][0]
    assert container["image"] == CODE_IMAGE  # no image in the entry: the code location's
    assert "nvidia.com/gpu" not in container["resources"]["limits"]
    assert container["resources"]["requests"] == {"cpu": spec.runtime.cpu, "memory": "2Gi"}
    assert "nodeSelector" not in pod and "tolerations" not in pod
    plan = create_execution_plan(dg.reconstructable(forecast_job))
    assert plan.get_step_by_key(step_key).pool == "cpu"


def test_rendered_job_is_rejected_when_invalid(k8s_instance):
    """The schema check has teeth: a typo in a pod field fails strict validation."""
    spec = _specs()[0]
    job, _ = _render_step_job(k8s_instance, _step_key(spec))
    job["spec"]["template"]["spec"]["nodeSelectr"] = {"a": "b"}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(job, K8S_VERSION, strict=True)
