"""Model runners: the one narrow interface between the forecast asset and the compute.

The forecast asset stages its output stores, builds a ``RunRequest`` and calls
``runner.run(request)`` once; the runner writes the forecast into the staged URLs and returns
metadata for the materialization. The asset then checks and commits what was written, the
same way whatever ran the model. A backfill run of several cycles uses one runner for all of
them and calls ``runner.run_batch(requests)`` with ``runtime.batch_cycles`` requests at a
time: what the model needs is loaded and built once per run. Which runner a model gets is a fact of its architecture
(``runner`` in ``model_registry.architectures.ARCHITECTURES``):

- ``in_process``: ``InProcessTorchRunner`` builds the torch module from the loaded artifact's
  tensors (once per runner) and rolls it out in the step's own process
  (``resources.forecast_run.run_forecast``; a batch of cycles through
  ``resources.forecast_batch.run_forecasts``), one store per ensemble member.
- ``onnx``: ``OnnxRunner`` is the in-process runner with an onnxruntime session in place of
  the torch module (``model_registry.onnx_model.OnnxModel``, built from the artifact's
  ``model.onnx`` and tensor contract): the same rollout, writer and members.
- ``pipes``: ``PipesRunner`` runs the registry entry's own code (command, image) through a
  Dagster Pipes client, ``PipesSubprocessClient`` locally and ``dagster_k8s.PipesK8sClient``
  on Kubernetes (``resources.execution.pipes_client_for`` picks it, the code location binds
  it as the ``pipes_client`` resource); the external code writes one store and reports its
  metadata back through Pipes.

A new way to run models (ONNX, a remote service) is a class with ``from_context``, ``run``
and ``run_batch`` and a row in ``RUNNERS``: the asset code does not change.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from model_registry.architectures import build_model, get_architecture
from model_registry.registry import k8s_config
from resources.forecast_batch import run_forecasts
from resources.forecast_run import ForecastSummary, run_forecast
from weather_assets.forecast.normalize import identity_stats

if TYPE_CHECKING:
    import dagster as dg
    import xarray as xr

    from model_registry.artifact import LoadedArtifact
    from model_registry.spec import ModelSpec


@dataclass(frozen=True)
class RunRequest:
    """Everything one forecast run needs: what to run, on what, and where to write.

    ``output_urls`` are the staged stores (one per member for in-process models, one for
    Pipes models); ``normalized`` is the opened standardized input and ``input_url`` where it
    is stored (external code reads the URL, in-process code the dataset).
    """

    spec: ModelSpec
    artifact: LoadedArtifact | None
    analysis_time: datetime
    output_urls: Sequence[str]
    input_url: str | None = None
    normalized: xr.Dataset | None = None
    device: str | None = None  # e.g. "cpu", "cuda:1"; None: CUDA when available
    attrs: Mapping[str, Any] = field(default_factory=dict)  # written into the forecast store
    storage_options: Mapping[str, Any] | None = None  # fsspec options of the output URLs


class ModelRunner(Protocol):
    """Runs forecasts into the requests' output stores; returns materialization metadata.

    ``run_batch`` runs several cycles of one model (a backfill run's) with one runner, so
    what is loaded or built for the model is loaded once; it returns one metadata dict per
    request, in order, or raises for the whole batch.
    """

    def run(self, request: RunRequest) -> dict[str, Any]: ...

    def run_batch(self, requests: Sequence[RunRequest]) -> list[dict[str, Any]]: ...


class InProcessTorchRunner:
    """Build the torch module from the artifact and roll it out in this process.

    The module is built once per runner (one per step, i.e. per run of a backfill's
    partitions) and reused for every cycle it runs; ``run_batch`` pushes several cycles
    through it together (``resources.forecast_batch.run_forecasts``).
    """

    resource_keys: ClassVar[frozenset[str]] = frozenset()

    def __init__(self) -> None:
        self._networks: dict[tuple[str, str], Any] = {}

    @classmethod
    def from_context(cls, context: dg.AssetExecutionContext | None) -> InProcessTorchRunner:
        return cls()

    def network(self, spec: ModelSpec, loaded: LoadedArtifact | None) -> Any:
        """The model's torch module, built from the artifact's weights on first use."""
        key = (spec.name, loaded.sha256 if loaded is not None else "none")
        if key not in self._networks:
            self._networks[key] = build_model(
                spec.architecture,
                loaded.manifest.architecture.hyperparameters if loaded else {},
                spec.in_channels,  # state features, then forcings
                len(spec.output_features),
                state_dict=loaded.state_dict if loaded else None,
            )
        return self._networks[key]

    def run(self, request: RunRequest) -> dict[str, Any]:
        spec, loaded = request.spec, request.artifact
        if request.normalized is None:
            raise ValueError(f"in-process run of {spec.name!r} needs the normalized dataset")
        stats = loaded.stats if loaded is not None else identity_stats(spec.input_features)
        summary = run_forecast(
            request.normalized["state"].load(),
            self.network(spec, loaded),
            stats,
            steps=spec.steps,
            timestep=spec.timestep,
            stores=list(request.output_urls),
            members=spec.members,
            grid=loaded.manifest.grid if loaded else None,
            device=request.device,
            attrs=dict(request.attrs),
            storage_options=dict(request.storage_options) if request.storage_options else None,
            forcings=spec.forcings,
        )
        return _summary_metadata(summary)

    def run_batch(self, requests: Sequence[RunRequest]) -> list[dict[str, Any]]:
        if len(requests) == 1:
            return [self.run(requests[0])]
        first = requests[0]
        spec, loaded = first.spec, first.artifact
        for request in requests:
            if request.normalized is None:
                raise ValueError(f"in-process run of {spec.name!r} needs the normalized dataset")
            if request.spec is not spec or request.artifact is not loaded:
                raise ValueError("a batch runs one model with one artifact")
            if request.device != first.device or request.storage_options != first.storage_options:
                raise ValueError("a batch runs on one device with one storage")
        stats = loaded.stats if loaded is not None else identity_stats(spec.input_features)
        summaries = run_forecasts(
            [request.normalized["state"].load() for request in requests],
            self.network(spec, loaded),
            stats,
            steps=spec.steps,
            timestep=spec.timestep,
            stores=[list(request.output_urls) for request in requests],
            members=spec.members,
            grid=loaded.manifest.grid if loaded else None,
            device=first.device,
            attrs=[dict(request.attrs) for request in requests],
            storage_options=dict(first.storage_options) if first.storage_options else None,
            forcings=spec.forcings,
        )
        return [
            {**_summary_metadata(summary), "batch_cycles": len(requests)} for summary in summaries
        ]


class OnnxRunner(InProcessTorchRunner):
    """Run an ``onnx`` artifact's graph with onnxruntime in this process.

    Only the network differs from ``InProcessTorchRunner``: an ``OnnxModel`` that maps the
    canonical layout onto the artifact's tensor contract, checked against the graph when
    built (names, ranks, sizes, dtype), before any compute.
    """

    def network(self, spec: ModelSpec, loaded: LoadedArtifact | None) -> Any:
        """The model's ``OnnxModel``, built from the artifact's graph on first use."""
        from model_registry.onnx_model import OnnxModel  # torch + onnxruntime: not at load

        key = (spec.name, loaded.sha256 if loaded is not None else "none")
        if key not in self._networks:
            self._networks[key] = OnnxModel.from_artifact(loaded, spec)
        return self._networks[key]


def _summary_metadata(summary: ForecastSummary) -> dict[str, Any]:
    return {
        "device": summary.device,
        "steps": summary.steps,
        "members": summary.members,
        "seconds_per_step": round(summary.mean_step_seconds, 4),
        "step_seconds": [round(s, 4) for s in summary.step_seconds],
        "write_seconds": round(summary.write_seconds, 3),
        "bytes_written": summary.nbytes,
    }


@dataclass(frozen=True)
class PipesRunner:
    """Run the entry's external code through a Dagster Pipes client (subprocess or pod)."""

    context: Any  # the step's dg.AssetExecutionContext: Pipes reports through it
    client: Any  # dg.PipesSubprocessClient or dagster_k8s.PipesK8sClient

    resource_keys: ClassVar[frozenset[str]] = frozenset({"pipes_client"})

    @classmethod
    def from_context(cls, context: dg.AssetExecutionContext) -> PipesRunner:
        return cls(context=context, client=context.resources.pipes_client)

    def run(self, request: RunRequest) -> dict[str, Any]:
        spec = request.spec
        if request.input_url is None:
            raise ValueError(f"Pipes run of {spec.name!r} needs the input URL")
        if len(request.output_urls) != 1:
            raise ValueError(
                f"model {spec.name!r} runs through Pipes and writes one store, got "
                f"{len(request.output_urls)} output URLs"
            )
        invocation = run_container(
            self.context,
            spec,
            client=self.client,
            input_url=request.input_url,
            output_url=request.output_urls[0],
            analysis_time=request.analysis_time,
        )
        reported: dict[str, Any] = {}
        for result in invocation.get_results():
            reported.update(getattr(result, "metadata", None) or {})
        return {"runner": type(self.client).__name__, **reported}

    def run_batch(self, requests: Sequence[RunRequest]) -> list[dict[str, Any]]:
        # External code runs one cycle per invocation (a subprocess or a pod each).
        return [self.run(request) for request in requests]


# Runner kind (the architecture table's ``runner``) -> runner class.
RUNNERS: dict[str, type[InProcessTorchRunner] | type[PipesRunner]] = {
    "in_process": InProcessTorchRunner,
    "onnx": OnnxRunner,
    "pipes": PipesRunner,
}


def runner_class(spec: ModelSpec) -> type[InProcessTorchRunner] | type[PipesRunner]:
    """The runner class of a model, from its architecture's row in the table."""
    return RUNNERS[get_architecture(spec.architecture).runner]


def runner_resource_keys(spec: ModelSpec) -> set[str]:
    """Dagster resources the model's runner needs (e.g. ``pipes_client``)."""
    return set(runner_class(spec).resource_keys)


def runner_for(spec: ModelSpec, context: dg.AssetExecutionContext) -> ModelRunner:
    """The runner of a model for one step (it may take resources from the context)."""
    return runner_class(spec).from_context(context)


# ---------------------------------------------------------------------------------------------
# Pipes: an external image with its own code.


def container_command(
    command: Sequence[str], input_url: str, output_url: str, analysis_time: datetime
) -> list[str]:
    """Entry-point argv: the registry command plus input, output and analysis time."""
    return [
        *command,
        "--input",
        input_url,
        "--output",
        output_url,
        "--analysis-time",
        analysis_time.strftime("%Y-%m-%dT%H:%M:%SZ"),
    ]


def container_env(
    spec: ModelSpec, input_url: str, output_url: str, analysis_time: datetime
) -> dict[str, str]:
    """Environment given to the entry point (the same facts as the arguments, plus extras)."""
    env = dict(spec.container.env) if spec.container else {}
    env.update(
        WXPLAT_MODEL=spec.name,
        WXPLAT_INPUT=input_url,
        WXPLAT_OUTPUT=output_url,
        WXPLAT_ANALYSIS_TIME=analysis_time.strftime("%Y-%m-%dT%H:%M:%SZ"),
        WXPLAT_TIMESTEP=str(int(spec.timestep.total_seconds())),
        WXPLAT_MAX_LEAD_TIME=str(int(spec.max_lead_time.total_seconds())),
        WXPLAT_MEMBERS=str(spec.members),
    )
    return env


def run_container(
    context: dg.AssetExecutionContext | None,
    spec: ModelSpec,
    *,
    client: Any,
    input_url: str,
    output_url: str,
    analysis_time: datetime,
    extras: Mapping[str, Any] | None = None,
) -> Any:
    """Run a container model through a Pipes client; return the completed invocation.

    With ``dagster_k8s.PipesK8sClient`` it runs as a pod of the registry image, with the
    entry's resources, node selector and tolerations; with ``PipesSubprocessClient`` (local)
    the command runs as a subprocess of the step.
    """
    if spec.container is None:
        raise ValueError(f"model {spec.name!r} has no 'container' entry")
    command = container_command(spec.container.command, input_url, output_url, analysis_time)
    env = container_env(spec, input_url, output_url, analysis_time)
    try:
        from dagster_k8s import PipesK8sClient
    except ImportError:  # dagster-k8s absent: only local subprocess clients can be used
        PipesK8sClient = None  # noqa: N806
    if PipesK8sClient is not None and isinstance(client, PipesK8sClient):
        if not spec.runtime.image:
            raise ValueError(f"model {spec.name!r} runs on Kubernetes but has no runtime.image")
        pod = k8s_config(spec)
        resources = pod["container_config"]["resources"]
        base_pod_spec: dict[str, Any] = {
            "containers": [{"name": "dagster-pipes-execution", "resources": resources}]
        }
        scheduling = pod.get("pod_spec_config", {})
        if "node_selector" in scheduling:
            base_pod_spec["nodeSelector"] = scheduling["node_selector"]
        if "tolerations" in scheduling:
            base_pod_spec["tolerations"] = scheduling["tolerations"]
        return client.run(
            context=context,
            image=spec.runtime.image,
            command=command,
            env=env,
            base_pod_spec=base_pod_spec,
            extras=extras,
        )
    return client.run(context=context, command=command, env=env, extras=extras)
