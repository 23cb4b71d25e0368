"""Model architectures by name: a small table of builders with a helpful unknown-name error.

Every torch architecture predicts the *standardized tendency* of the state (see
``weather_assets.forecast.rollout``), takes ``(batch, in_channels, lat, lon)`` and returns
``(batch, out_channels, lat, lon)``, where ``in_channels`` counts the state features and then
the forcings (computed inputs, never predicted) and ``out_channels`` the state features.
Models are built from already-loaded tensors (a state_dict), never from files, so tests pass
tiny networks. ``container`` models bring their own code in an image and are run through
Dagster Pipes instead (``resources.runners``); ``onnx`` models bring a graph and the tensor
contract it keeps (``model_registry.onnx_contract``) and run through onnxruntime behind the
same tendency-network face (``model_registry.onnx_model``).

``ARCHITECTURES`` is the one table of architecture facts: the registry schema, the artifact
format, the CLI and the forecast assets all read it, so adding an architecture is one row.
Its builders import torch and neuraloperator only when called (torch modules of the
platform's own live in ``model_registry.networks``): reading the table, as the registry and
the code location do at load, imports neither.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import torch
    from torch import nn


def _build_persistence(hp: Mapping[str, Any], in_channels: int, out_channels: int) -> nn.Module:
    from model_registry.networks import Persistence

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


RunnerKind = Literal["in_process", "onnx", "pipes"]


@dataclass(frozen=True)
class Architecture:
    """Everything the platform knows about one architecture; the rest derives from this table.

    ``runner`` picks the ``resources.runners`` runner of its forecasts (``in_process``: torch
    in the step; ``onnx``: onnxruntime in the step; ``pipes``: an external image through
    Dagster Pipes). ``kind`` is the UI tag of its forecast assets. ``identical_io``: the
    inputs must equal the outputs (a model that steps the state it is given and nothing else).
    """

    name: str
    description: str
    builder: Callable[[Mapping[str, Any], int, int], nn.Module] | None
    needs_weights: bool = False  # the artifact must hold a state_dict
    needs_artifact: bool = False  # the registry entry must name an artifact
    trainable: bool = False  # ``train`` can fit it (model_registry.training)
    takes_forcings: bool = False  # computed inputs (time of day, insolation) are allowed
    identical_io: bool = False
    runner: RunnerKind = "in_process"
    kind: str = "pytorch"

    @property
    def needs_container(self) -> bool:
        """Whether a registry entry needs (and may have) a ``container`` section."""
        return self.runner == "pipes"

    @property
    def member_stores(self) -> bool:
        """One store per ensemble member (``member<k>``); Pipes images write a single store."""
        return self.runner != "pipes"


_NEURAL_OPERATOR = {
    "needs_weights": True,
    "needs_artifact": True,
    "trainable": True,
    "takes_forcings": True,
}

ARCHITECTURES: dict[str, Architecture] = {
    a.name: a
    for a in (
        Architecture(
            "persistence",
            "the initial state at every lead time (baseline)",
            _build_persistence,
            identical_io=True,
        ),
        Architecture(
            "fno", "neuraloperator Fourier neural operator (2-D)", _build_fno, **_NEURAL_OPERATOR
        ),
        Architecture(
            "sfno",
            "neuraloperator spherical FNO (global grids; torch-harmonics)",
            _build_sfno,
            **_NEURAL_OPERATOR,
        ),
        Architecture(
            "onnx",
            "an ONNX graph with a declared tensor contract (onnxruntime)",
            None,
            needs_artifact=True,
            takes_forcings=True,
            runner="onnx",
            kind="onnx",
        ),
        Architecture(
            "container",
            "an external image run through Dagster Pipes",
            None,
            runner="pipes",
            kind="docker",
        ),
    )
}


def names_where(predicate: Callable[[Architecture], bool]) -> list[str]:
    """Names of the architectures with a property, in table order (for messages, choices)."""
    return [a.name for a in ARCHITECTURES.values() if predicate(a)]


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
        raise ValueError(
            f"architecture {name!r} has no torch module; its {arch.runner} runner runs it "
            "(resources.runners; use run_container)"
        )
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
