"""Everything under deploy/: Kubernetes schema validity, Helm values, instance config, secrets.

Manifests are validated offline with ``kubernetes-validate`` (strict: unknown fields are
errors) against the newest Kubernetes schema it ships. Custom resources (DaskCluster,
ServiceMonitor) have no schema there: their embedded pod and service specs are validated as
Pods and Services, a ServiceMonitor's fields against the Prometheus Operator's field names and
its selectors as label selectors.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from dagster._config import process_config, resolve_to_config_type
from dagster._core.instance.config import dagster_instance_config
from dagster_k8s import K8sRunLauncher

from model_registry.registry import load_registry, pool_for
from resources import execution
from tests.conftest import ROOT
from weather_assets.settings import _ENV, load_settings

DEPLOY = ROOT / "deploy"
K8S_VERSION = kubernetes_validate.latest_version()
MANIFESTS = sorted((DEPLOY / "manifests").glob("*.yaml"))
PG_ENV = {
    "DAGSTER_PG_HOST": "db",
    "DAGSTER_PG_PORT": "5432",
    "DAGSTER_PG_DB": "dagster",
    "DAGSTER_PG_USERNAME": "dagster",
    "DAGSTER_PG_PASSWORD": "x",
}


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def _all_objects() -> list[dict[str, Any]]:
    return [doc for path in MANIFESTS for doc in _docs(path)]


def _objects(kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in _all_objects() if o["kind"] == kind}


def _validate_pod_spec(spec: dict[str, Any], name: str) -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}
    kubernetes_validate.validate(pod, K8S_VERSION, strict=True)


def _validate(obj: dict[str, Any]) -> None:
    """Schema-validate one object; custom resources through their embedded core specs."""
    if obj["apiVersion"].startswith("kubernetes.dask.org/"):
        name = obj["metadata"]["name"]
        _validate_pod_spec(obj["spec"]["worker"]["spec"], f"{name}-worker")
        _validate_pod_spec(obj["spec"]["scheduler"]["spec"], f"{name}-scheduler")
        service = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": f"{name}-scheduler"},
            "spec": obj["spec"]["scheduler"]["service"],
        }
        kubernetes_validate.validate(service, K8S_VERSION, strict=True)
        return
    if obj["apiVersion"] == "monitoring.coreos.com/v1" and obj["kind"] == "ServiceMonitor":
        _validate_service_monitor(obj)
        return
    kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


# Field names of a monitoring.coreos.com/v1 ServiceMonitor's spec and endpoints (Prometheus
# Operator v0.8x API); the operator's CRD schema rejects others.
_SERVICE_MONITOR_SPEC = set(
    "attachMetadata bodySizeLimit endpoints fallbackScrapeProtocol jobLabel keepDroppedTargets "
    "labelLimit labelNameLengthLimit labelValueLengthLimit namespaceSelector "
    "nativeHistogramBucketLimit nativeHistogramMinBucketFactor podTargetLabels sampleLimit "
    "scrapeClass scrapeClassicHistograms scrapeProtocols selector selectorMechanism "
    "targetLabels targetLimit".split()
)
_SERVICE_MONITOR_ENDPOINT = set(
    "authorization basicAuth bearerTokenFile bearerTokenSecret enableHttp2 filterRunning "
    "followRedirects honorLabels honorTimestamps interval metricRelabelings noProxy oauth2 "
    "params path port proxyConnectHeader proxyFromEnvironment proxyUrl relabelings scheme "
    "scrapeTimeout targetPort tlsConfig trackTimestampsStaleness".split()
)


def _validate_service_monitor(obj: dict[str, Any]) -> None:
    """A ServiceMonitor: known fields only, a valid ObjectMeta and label selector."""
    name = obj["metadata"]["name"]
    assert set(obj) == {"apiVersion", "kind", "metadata", "spec"}, f"{name}: {sorted(obj)}"
    spec = obj["spec"]
    assert set(spec) <= _SERVICE_MONITOR_SPEC, (
        f"{name}: {sorted(set(spec) - _SERVICE_MONITOR_SPEC)}"
    )
    assert spec["endpoints"], f"{name} has no endpoints"
    for endpoint in spec["endpoints"]:
        unknown = set(endpoint) - _SERVICE_MONITOR_ENDPOINT
        assert not unknown, f"{name}: unknown endpoint fields {sorted(unknown)}"
        for duration in ("interval", "scrapeTimeout"):
            if duration in endpoint:
                assert re.fullmatch(r"(\d+(ms|s|m|h))+", endpoint[duration]), endpoint[duration]
    assert set(spec.get("namespaceSelector", {})) <= {"any", "matchNames"}
    # ObjectMeta and the selector, through a core object holding both (a NetworkPolicy).
    policy = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": obj["metadata"],
        "spec": {"podSelector": spec["selector"]},
    }
    kubernetes_validate.validate(policy, K8S_VERSION, strict=True)


def test_manifests_exist():
    names = {p.name for p in MANIFESTS}
    assert {"rbac.yaml", "secrets.template.yaml", "dask-cluster.yaml"} <= names


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifest_is_valid_kubernetes(path):
    docs = _docs(path)
    assert docs, f"{path} is empty"
    for obj in docs:
        _validate(obj)
        assert obj["metadata"].get("namespace", "wxplat") == "wxplat"


def test_metrics_exporter_is_deployed_and_scraped():
    """The exporter's Deployment runs `wxplat metrics serve` on the port that its Service,
    scrape annotations and ServiceMonitor name, against the production instance."""
    import typer.main

    from weather_assets.cli import metrics

    deployment = _objects("Deployment")["wxplat-metrics"]
    service = _objects("Service")["wxplat-metrics"]
    (monitor,) = [o for o in _all_objects() if o["kind"] == "ServiceMonitor"]
    pod = deployment["spec"]["template"]
    assert deployment["spec"]["replicas"] == 1  # counters of one reader, not summed twice
    (container,) = pod["spec"]["containers"]
    command = container["command"]
    assert command[:3] == ["wxplat", "metrics", "serve"]
    # The real CLI accepts the arguments (option names and types).
    group = typer.main.get_command(metrics.app)
    serve = group.get_command(group.make_context("metrics", list(command[2:])), "serve")
    params = serve.make_context("serve", list(command[3:])).params
    assert params["host"] == "0.0.0.0"
    (port,) = container["ports"]
    assert params["port"] == port["containerPort"]
    # Service -> pod, annotations, ServiceMonitor -> Service port
    labels = pod["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    (service_port,) = service["spec"]["ports"]
    assert service_port["targetPort"] == port["name"] and service_port["port"] == params["port"]
    notes = service["metadata"]["annotations"]
    assert notes["prometheus.io/scrape"] == "true"
    assert int(notes["prometheus.io/port"]) == params["port"]
    assert notes["prometheus.io/path"] == "/metrics"
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert monitor["spec"]["namespaceSelector"]["matchNames"] == ["wxplat"]
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == [service_port["name"]]
    # the production instance and settings, least privilege
    env = {e["name"]: e for e in container["env"]}
    assert env["DAGSTER_HOME"]["value"] == "/opt/dagster/dagster_home"
    assert env["DAGSTER_PG_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] in _objects("Secret")
    refs = container["envFrom"]
    assert {"configMapRef": {"name": execution.CONFIG_MAP_NAME}} in refs
    assert {"secretRef": {"name": execution.S3_SECRET_NAME}} in refs
    (volume,) = pod["spec"]["volumes"]
    assert volume["configMap"]["name"] == "dagster-instance"
    assert pod["spec"]["serviceAccountName"] == execution.STEP_SERVICE_ACCOUNT
    assert pod["spec"]["automountServiceAccountToken"] is False
    assert pod["spec"]["securityContext"]["runAsUser"] == execution.NON_ROOT_UID
    assert service["spec"]["type"] == "ClusterIP"


def test_service_monitor_validation_has_teeth():
    (monitor,) = [o for o in _all_objects() if o["kind"] == "ServiceMonitor"]
    bad = yaml.safe_load(yaml.safe_dump(monitor))
    bad["spec"]["endpoints"][0]["intreval"] = "30s"
    with pytest.raises(AssertionError):
        _validate(bad)
    bad = yaml.safe_load(yaml.safe_dump(monitor))
    bad["spec"]["selector"] = {"matchLabel": {"a": "b"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        _validate(bad)


def test_validation_has_teeth():
    job = _objects("Job")["wxplat-pool-limits"]
    bad = yaml.safe_load(yaml.safe_dump(job))
    bad["spec"]["template"]["spec"]["containers"][0]["resorces"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        _validate(bad)


def test_secret_template_holds_no_values():
    secrets = _objects("Secret")
    assert {execution.S3_SECRET_NAME, "dagster-postgresql-secret"} <= set(secrets)
    for name, secret in secrets.items():
        assert "data" not in secret, f"{name}: base64 data in the template"
        assert all(v == "" for v in secret["stringData"].values()), f"{name} has a value"
    assert set(secrets[execution.S3_SECRET_NAME]["stringData"]) == {
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
    }
    assert set(secrets["dagster-postgresql-secret"]["stringData"]) == {"postgresql-password"}


_SECRET_PATTERNS = [
    re.compile(r"AKIA[0-9A-Z]{16}"),  # AWS access key id
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    re.compile(r"(?i)aws_secret_access_key\s*[:=]\s*['\"]?[A-Za-z0-9/+]{30,}"),
    re.compile(r"(?i)postgres(ql)?://[^:/\s]+:[^@\s]+@"),  # password in a URL
]


def test_no_secret_values_in_the_repository():
    tracked = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    leaks = []
    for rel in tracked:
        path = ROOT / rel
        if not path.is_file() or path.stat().st_size > 2_000_000:
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        leaks += [f"{rel}: {p.pattern}" for p in _SECRET_PATTERNS if p.search(text)]
    assert not leaks, leaks


def _values() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "helm" / "values.yaml").read_text())


def test_helm_values_set_what_the_chart_needs():
    values = _values()
    # The code location: this project's module, the platform image, settings and S3 secret.
    uds = values["dagster-user-deployments"]
    assert uds["enabled"] and uds["enableSubchart"]
    (deployment,) = uds["deployments"]
    assert deployment["dagsterApiGrpcArgs"] == ["-m", "definitions"]
    assert deployment["includeConfigInLaunchedRuns"]["enabled"] is True
    assert {"name": execution.S3_SECRET_NAME} in deployment["envSecrets"]
    assert {"name": execution.CONFIG_MAP_NAME} in deployment["envConfigMaps"]
    assert deployment["podSecurityContext"]["runAsUser"] == execution.NON_ROOT_UID
    # Run launcher: K8sRunLauncher; run pods under the account that may create step Jobs.
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    k8s = values["runLauncher"]["config"]["k8sRunLauncher"]
    assert k8s["runK8sConfig"]["podSpecConfig"]["serviceAccountName"] == (
        execution.RUN_SERVICE_ACCOUNT
    )
    assert {"name": execution.S3_SECRET_NAME} in k8s["envSecrets"]
    # Postgres: external, password only through the pre-created Secret.
    assert values["postgresql"]["enabled"] is False
    assert values["postgresql"]["postgresqlPassword"] == ""
    assert values["generatePostgresqlPasswordSecret"] is False
    assert values["global"]["postgresqlSecretName"] in _objects("Secret")
    # Daemon: queued runs, run monitoring that frees slots of crashed runs, pools.
    daemon = values["dagsterDaemon"]
    assert daemon["enabled"] and daemon["runCoordinator"]["type"] == "QueuedRunCoordinator"
    assert daemon["runMonitoring"]["enabled"]
    assert daemon["runMonitoring"]["freeSlotsAfterRunEndSeconds"] > 0
    assert values["concurrency"]["enabled"] is True
    # The webserver is not exposed by the chart: only behind an authenticating ingress.
    assert values["dagsterWebserver"]["service"]["type"] == "ClusterIP"
    assert values["ingress"]["enabled"] is False


def test_helm_pod_settings_are_valid_kubernetes():
    values = _values()
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    run_cfg = values["runLauncher"]["config"]["k8sRunLauncher"]["runK8sConfig"]
    image = "registry.example.com/x:1"
    for name, pod_sc, container in [
        (
            "user-code",
            deployment["podSecurityContext"],
            {
                "securityContext": deployment["securityContext"],
                "resources": deployment["resources"],
            },
        ),
        ("run", run_cfg["podSpecConfig"]["securityContext"], run_cfg["containerConfig"]),
    ]:
        _validate_pod_spec(
            {"securityContext": pod_sc, "containers": [{"name": "c", "image": image, **container}]},
            name,
        )


def test_helm_values_agree_with_instance_yaml():
    values, instance = _values(), yaml.safe_load((DEPLOY / "dagster.yaml").read_text())
    pools = values["concurrency"]["pools"]
    assert instance["concurrency"]["pools"] == {
        "default_limit": pools["defaultLimit"],
        "granularity": pools["granularity"],
    }
    assert instance["concurrency"]["pools"] == execution.instance_concurrency_config()["pools"]
    runs = values["concurrency"]["runs"]
    assert instance["concurrency"]["runs"]["max_concurrent_runs"] == runs["maxConcurrentRuns"]
    monitoring = values["dagsterDaemon"]["runMonitoring"]
    assert (
        instance["run_monitoring"]["free_slots_after_run_end_seconds"]
        == (monitoring["freeSlotsAfterRunEndSeconds"])
    )
    launcher = instance["run_launcher"]["config"]
    k8s = values["runLauncher"]["config"]["k8sRunLauncher"]
    assert launcher["env_secrets"] == [s["name"] for s in k8s["envSecrets"]]
    assert launcher["env_config_maps"] == [c["name"] for c in k8s["envConfigMaps"]]
    assert (
        launcher["run_k8s_config"]["pod_spec_config"]["service_account_name"]
        == (k8s["runK8sConfig"]["podSpecConfig"]["serviceAccountName"])
    )


def test_instance_yaml_is_valid_dagster_config(monkeypatch):
    for k, v in PG_ENV.items():
        monkeypatch.setenv(k, v)
    config, _ = dagster_instance_config(str(DEPLOY))
    assert set(config["storage"]) == {"postgres"}
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert config["run_launcher"]["class"] == "K8sRunLauncher"
    assert config["run_monitoring"]["free_slots_after_run_end_seconds"] > 0
    launcher = process_config(
        resolve_to_config_type(K8sRunLauncher.config_type()), config["run_launcher"]["config"]
    )
    assert launcher.success, launcher.errors
    assert launcher.value["env_secrets"] == [execution.S3_SECRET_NAME]


def test_rbac_is_least_privilege():
    accounts = _objects("ServiceAccount")
    assert {execution.RUN_SERVICE_ACCOUNT, execution.STEP_SERVICE_ACCOUNT} <= set(accounts)
    assert accounts[execution.STEP_SERVICE_ACCOUNT]["automountServiceAccountToken"] is False
    (role,) = _objects("Role").values()
    granted = {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    assert ("batch", "jobs", "create") in granted and ("batch", "jobs", "delete") in granted
    assert all("*" not in item for item in granted)
    assert not {r for _, r, _ in granted} & {"secrets", "configmaps", "roles", "rolebindings"}
    assert not _objects("ClusterRole") and not _objects("ClusterRoleBinding")
    (binding,) = _objects("RoleBinding").values()
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": execution.RUN_SERVICE_ACCOUNT, "namespace": "wxplat"}
    ]


def test_config_map_is_valid_settings_and_pools_cover_the_registry():
    (config,) = [c for n, c in _objects("ConfigMap").items() if n == execution.CONFIG_MAP_NAME]
    data = config["data"]
    unknown = {k for k in data if k.startswith("WXPLAT_")} - set(_ENV.values())
    assert not unknown, f"settings.py does not read {unknown}"
    assert not any(re.search("SECRET|PASSWORD|TOKEN|KEY_ID", k) for k in data)
    settings = load_settings({**data, "WXPLAT_HOME": "/var/lib/wxplat"})
    assert settings.deployment == "kubernetes" and settings.storage_root.startswith("s3://")
    limits = execution.pool_limits(settings)
    assert limits["gpu"] == int(data["WXPLAT_GPU_POOL_SIZE"])
    assert {pool_for(spec) for spec in load_registry()} <= set(limits)


def test_containerfile_is_multistage_non_root_with_cuda_torch():
    text = (DEPLOY / "Containerfile").read_text()
    stages = re.findall(r"^FROM\s+\S+\s+AS\s+(\w+)", text, flags=re.M)
    assert stages == ["build", "runtime"]
    runtime = text.split("AS runtime", 1)[1]
    user = re.findall(r"^USER\s+(\S+)", runtime, flags=re.M)
    assert user == [f"{execution.NON_ROOT_UID}:{execution.NON_ROOT_UID}"]
    assert 'pip install "torch==' in text and "--index-url" not in text  # PyPI's CUDA build
    assert "pip install ." in text and "COPY --from=build /opt/venv" in runtime
    ignore = (DEPLOY / ".dockerignore").read_text().split()
    assert ignore[ignore.index("*") :][:1] == ["*"]  # allow-list: nothing else is sent


def test_local_postgres_instance_shares_the_production_storage(monkeypatch, tmp_path):
    for k, v in PG_ENV.items():
        monkeypatch.setenv(k, v)
    (tmp_path / "dagster.yaml").write_text((DEPLOY / "dagster-local-postgres.yaml").read_text())
    local, _ = dagster_instance_config(str(tmp_path))
    production = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())
    assert local["storage"] == production["storage"]
    assert local["concurrency"]["pools"] == production["concurrency"]["pools"]
    assert "run_launcher" not in local  # local processes, not Kubernetes Jobs
