"""Model architectures by name: a small table of builders with a helpful unknown-name error.

Every torch architecture predicts the *standardized tendency* of the state (see
``weather_assets.forecast.rollout``), takes ``(batch, in_channels, lat, lon)`` and returns
``(batch, out_channels, lat, lon)``, where ``in_channels`` counts the state features and then
the forcings (computed inputs, never predicted) and ``out_channels`` the state features. Models are built from already-loaded tensors (a
state_dict), never from files, so tests pass tiny networks. ``container`` models bring their
own code in an image and are run through Dagster Pipes instead (``run_container``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

if TYPE_CHECKING:
    import dagster as dg

    from model_registry.spec import ModelSpec


class Persistence(nn.Module):
    """Zero tendency: with identity statistics the forecast is the initial state."""

    def __init__(self, out_channels: int | None = None) -> None:
        super().__init__()
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = list(x.shape)
        if self.out_channels is not None:
            shape[1] = self.out_channels
        return x.new_zeros(shape)


def _build_persistence(hp: Mapping[str, Any], in_channels: int, out_channels: int) -> nn.Module:
    return Persistence(out_channels)


def _fno_kwargs(hp: Mapping[str, Any], in_channels: int, out_channels: int) -> dict[str, Any]:
    kwargs = dict(hp)
    if "n_modes" not in kwargs:
        raise ValueError("hyper-parameter 'n_modes' (modes along latitude, longitude) is required")
    kwargs["n_modes"] = tuple(int(m) for m in kwargs["n_modes"])
    kwargs.setdefault("hidden_channels", 16)
    return {**kwargs, "in_channels": in_channels, "out_channels": out_channels}


def _build_fno(hp: Mapping[str, Any], in_channels: int, out_channels: int) -> nn.Module:
    from neuralop.models import FNO

    return FNO(**_fno_kwargs(hp, in_channels, out_channels))


def _build_sfno(hp: Mapping[str, Any], in_channels: int, out_channels: int) -> nn.Module:
    try:
        import torch_harmonics  # noqa: F401 - neuralop's SFNO imports it lazily; fail clearly here
        from neuralop.models import SFNO
    except ImportError as exc:
        raise ImportError(
            "architecture 'sfno' needs the package 'torch-harmonics' "
            "(pip install 'torch-harmonics<0.8' for torch 2.13 CPU builds)"
        ) from exc
    return SFNO(**_fno_kwargs(hp, in_channels, out_channels))


@dataclass(frozen=True)
class Architecture:
    """One architecture: whether it has weights and how to build its torch module."""

    name: str
    description: str
    needs_weights: bool
    builder: Callable[[Mapping[str, Any], int, int], nn.Module] | None


ARCHITECTURES: dict[str, Architecture] = {
    "persistence": Architecture(
        "persistence", "the initial state at every lead time (baseline)", False, _build_persistence
    ),
    "fno": Architecture("fno", "neuraloperator Fourier neural operator (2-D)", True, _build_fno),
    "sfno": Architecture(
        "sfno", "neuraloperator spherical FNO (global grids; torch-harmonics)", True, _build_sfno
    ),
    "container": Architecture(
        "container", "an external image run through Dagster Pipes", False, None
    ),
}


def get_architecture(name: str) -> Architecture:
    """Table lookup; ``ValueError`` listing the valid names for an unknown one."""
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise ValueError(
            f"unknown architecture {name!r}; valid architectures are: {', '.join(ARCHITECTURES)}"
        ) from None


def new_model(
    name: str, hyperparameters: Mapping[str, Any], in_channels: int, out_channels: int
) -> nn.Module:
    """A freshly initialized module of an architecture (for training)."""
    arch = get_architecture(name)
    if arch.builder is None:
        raise ValueError(f"architecture {name!r} has no torch module; use run_container")
    return arch.builder(hyperparameters, in_channels, out_channels)


def build_model(
    name: str,
    hyperparameters: Mapping[str, Any],
    in_channels: int,
    out_channels: int,
    state_dict: Mapping[str, torch.Tensor] | None = None,
) -> nn.Module:
    """Build an architecture's module in eval mode, loading ``state_dict`` when given."""
    arch = get_architecture(name)
    model = new_model(name, hyperparameters, in_channels, out_channels)
    if arch.needs_weights:
        if state_dict is None:
            raise ValueError(f"architecture {name!r} needs weights (a state_dict)")
        _load(model, state_dict, name, hyperparameters)
    return model.eval()


def _load(
    model: nn.Module,
    state_dict: Mapping[str, torch.Tensor],
    name: str,
    hp: Mapping[str, Any],
) -> None:
    # Shape mismatches raise RuntimeError inside torch; restate them with the context.
    try:
        model.load_state_dict(dict(state_dict), strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise ValueError(
            f"weights do not fit architecture {name!r} with hyper-parameters {dict(hp)}: "
            f"{' '.join(line.strip() for line in first[:3])}"
        ) from None


# ---------------------------------------------------------------------------------------------
# container: an external image with its own code, run through Dagster Pipes.


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
    context: dg.AssetExecutionContext,
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
    entry's node selector and tolerations; with ``PipesSubprocessClient`` (local) the
    command runs as a subprocess of the step.
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
        from model_registry.registry import k8s_config

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
