"""The tensor contract of an ONNX model, and the mapping of the canonical layout onto it.

Published ONNX weather models (Pangu-Weather, FuXi) bring their own tensor layout: named
inputs and outputs such as an upper-air tensor ``(variable, level, lat, lon)`` and a surface
tensor ``(variable, lat, lon)``, their own variable order, latitudes north to south, and a
prediction of the full next state rather than a tendency. An ``onnx`` artifact declares this
as its contract (``architecture.hyperparameters`` of ``artifact.yaml``)::

    units: physical          # physical | standardized: what the graph reads and writes
    output: state            # state (x[t+1]) | tendency (x[t+1] - x[t])
    latitude: descending     # the graph's latitude order (the platform's is ascending)
    dtype: float32           # the graph's input and output element type
    inputs:
      - name: input                          # the graph's input name
        dims: [variable, level, latitude, longitude]
        variables: [geopotential, temperature]   # index order along 'variable'
        levels: [850, 500]                       # index order along 'level' (hPa)
      - name: input_surface
        dims: [variable, latitude, longitude]
        variables: [mean_sea_level_pressure, 2m_temperature]
    outputs: ...                             # the same form, the graph's output names

Along ``variable`` without a ``level`` dim, entries are channel names: a surface variable,
a level of a 3-D variable (``temperature_500hPa``) or a forcing (``cos_local_hour``). A
leading ``batch`` dim is optional; a graph without one (or with a fixed batch of 1) is run
once per ensemble member. ``latitude`` and ``longitude`` are the last two dims.

Units: with ``physical`` the graph gets the physical state (forcings as they are) and the
adapter undoes and redoes the platform's standardization around it; with ``standardized``
it gets the standardized state of the artifact's statistics, as the platform's own torch
networks do. A ``tendency`` output is in the same units (physical: ``x[t+1] - x[t]``;
standardized: the platform's standardized tendency ``(dx - diff_mean) / diff_std``).

This module is pure numpy and pydantic: validating a contract needs neither onnx nor torch.
The onnxruntime side is ``model_registry.onnx_model``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from weather_assets.canonical import VARIABLES, feature_name

ONNX_MODEL = "model.onnx"  # the graph's file inside an onnx artifact
# The platform's latitude order (``weather_assets.canonical``: south to north).
CANONICAL_LATITUDE = "ascending"
Dim = Literal["batch", "variable", "level", "latitude", "longitude"]
DTYPES = {"float32": np.float32, "float16": np.float16, "float64": np.float64}
# onnxruntime's type strings of the dtypes above
ORT_TYPES = {"float32": "tensor(float)", "float16": "tensor(float16)", "float64": "tensor(double)"}
# What ``wxplat artifact export-onnx`` accepts by default (|onnxruntime - torch| <= atol +
# rtol * max|torch|, standardized tendency units): the graph replaces the FFTs by DFT matrix
# products, so sums run in another order; measured on the demo FNO (CPU): max abs 1.9e-6.
EXPORT_ATOL = 1e-4
EXPORT_RTOL = 1e-3


class ContractError(ValueError):
    """An ONNX tensor contract that cannot be met (before any compute)."""


class TensorSpec(BaseModel):
    """One named graph input or output and which canonical channel sits at which index."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str = Field(min_length=1)
    dims: tuple[Dim, ...]
    variables: tuple[str, ...] = Field(min_length=1)
    levels: tuple[int, ...] = ()

    @field_validator("dims")
    @classmethod
    def _layout(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(v)) != len(v):
            raise ValueError(f"dims {list(v)} repeat a dim")
        if v[-2:] != ("latitude", "longitude"):
            raise ValueError(f"dims {list(v)} must end with latitude, longitude")
        if "variable" not in v:
            raise ValueError(f"dims {list(v)} need a 'variable' dim")
        if "batch" in v and v[0] != "batch":
            raise ValueError(f"dims {list(v)}: 'batch' must come first")
        return v

    @model_validator(mode="after")
    def _levels(self) -> TensorSpec:
        if len(set(self.variables)) != len(self.variables):
            raise ValueError(f"tensor {self.name!r} lists a variable twice")
        if "level" in self.dims:
            if not self.levels:
                raise ValueError(f"tensor {self.name!r} has a 'level' dim; list its 'levels'")
            for var in self.variables:
                if var not in VARIABLES or not VARIABLES[var].has_levels:
                    raise ValueError(
                        f"tensor {self.name!r}: {var!r} is not a canonical variable with "
                        "pressure levels (required along a 'level' dim)"
                    )
        elif self.levels:
            raise ValueError(f"tensor {self.name!r} has 'levels' but no 'level' dim")
        return self

    @property
    def grid_dims(self) -> tuple[str, ...]:
        """The ``variable``/``level`` dims in the tensor's order."""
        return tuple(d for d in self.dims if d in ("variable", "level"))

    @property
    def grid_shape(self) -> tuple[int, ...]:
        """Sizes of ``grid_dims``."""
        sizes = {"variable": len(self.variables), "level": len(self.levels)}
        return tuple(sizes[d] for d in self.grid_dims)

    @property
    def channels(self) -> list[str]:
        """Channel names in the tensor's flattened (C-order) variable/level layout."""
        if "level" not in self.dims:
            return list(self.variables)
        if self.grid_dims == ("variable", "level"):
            return [feature_name(v, lev) for v in self.variables for lev in self.levels]
        return [feature_name(v, lev) for lev in self.levels for v in self.variables]

    def shape(self, n_lat: int, n_lon: int, batch: int = 1) -> tuple[int, ...]:
        """The tensor's full shape on a grid."""
        sizes = {
            "batch": batch,
            "variable": len(self.variables),
            "level": len(self.levels),
            "latitude": n_lat,
            "longitude": n_lon,
        }
        return tuple(sizes[d] for d in self.dims)


class OnnxContract(BaseModel):
    """What an ONNX graph reads and writes (the hyper-parameters of an ``onnx`` artifact)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    inputs: tuple[TensorSpec, ...] = Field(min_length=1)
    outputs: tuple[TensorSpec, ...] = Field(min_length=1)
    units: Literal["physical", "standardized"] = "physical"
    output: Literal["state", "tendency"] = "state"
    latitude: Literal["ascending", "descending"] = "descending"
    dtype: Literal["float32", "float16", "float64"] = "float32"

    @model_validator(mode="after")
    def _unique(self) -> OnnxContract:
        for side, tensors in (("inputs", self.inputs), ("outputs", self.outputs)):
            names = [t.name for t in tensors]
            if len(set(names)) != len(names):
                raise ValueError(f"{side} repeat a tensor name: {names}")
            seen: dict[str, str] = {}
            for t in tensors:
                for ch in t.channels:
                    if ch in seen:
                        raise ValueError(
                            f"{side}: channel {ch!r} is in both tensor {seen[ch]!r} and {t.name!r}"
                        )
                    seen[ch] = t.name
        return self

    @property
    def flip_latitude(self) -> bool:
        """Whether the graph's latitudes run opposite to the platform's."""
        return self.latitude != CANONICAL_LATITUDE

    def check_channels(self, input_channels: Sequence[str], output_features: Sequence[str]) -> None:
        """``ContractError`` naming the first channel the platform cannot map, both ways.

        Every graph input channel must be one the platform has (a state feature or a
        forcing), every platform input must go to the graph, every output feature must come
        out of it. Extra graph outputs are ignored.
        """
        have = set(input_channels)
        fed = {ch: t.name for t in self.inputs for ch in t.channels}
        for t in self.inputs:
            for ch in t.channels:
                if ch not in have:
                    raise ContractError(
                        f"contract input {t.name!r} needs channel {ch!r}, which is not among the "
                        f"model's input features and forcings {list(input_channels)}"
                    )
        if missing := [ch for ch in input_channels if ch not in fed]:
            raise ContractError(
                f"input channel {missing[0]!r} of the model goes to no contract input "
                f"({', '.join(t.name for t in self.inputs)})"
            )
        produced = {ch for t in self.outputs for ch in t.channels}
        if missing := [f for f in output_features if f not in produced]:
            raise ContractError(
                f"output feature {missing[0]!r} of the model comes out of no contract output "
                f"({', '.join(t.name for t in self.outputs)})"
            )


def parse_contract(hyperparameters: Mapping[str, Any]) -> OnnxContract:
    """The contract of an ``onnx`` artifact from its hyper-parameters (pydantic errors)."""
    return OnnxContract.model_validate(dict(hyperparameters))


def to_contract(
    x: np.ndarray, channels: Sequence[str], tensors: Sequence[TensorSpec], contract: OnnxContract
) -> dict[str, np.ndarray]:
    """Canonical ``(sample, channel, lat, lon)`` -> each tensor as ``(sample, *its dims)``.

    The leading ``sample`` axis stands for the batch: it *is* the ``batch`` dim of tensors
    that have one and is split off by the caller for tensors that have none.
    """
    arr = np.asarray(x)
    if arr.ndim != 4 or arr.shape[1] != len(channels):
        raise ContractError(
            f"canonical input must be (sample, {len(channels)}, lat, lon), got {arr.shape}"
        )
    index = {ch: i for i, ch in enumerate(channels)}
    dtype = DTYPES[contract.dtype]
    out = {}
    for t in tensors:
        picked = arr[:, [index[ch] for ch in t.channels]]
        picked = picked.reshape(arr.shape[0], *t.grid_shape, *arr.shape[-2:])
        if contract.flip_latitude:
            picked = picked[..., ::-1, :]
        # (sample, grid dims in the tensor's order, lat, lon) is already the tensor's layout
        out[t.name] = np.ascontiguousarray(picked, dtype=dtype)
    return out


def from_contract(
    arrays: Mapping[str, np.ndarray],
    channels: Sequence[str],
    tensors: Sequence[TensorSpec],
    contract: OnnxContract,
) -> np.ndarray:
    """Tensors as ``(sample, *their dims)`` -> canonical ``(sample, channel, lat, lon)``
    float32 of ``channels`` (the inverse of ``to_contract``)."""
    where = {ch: (t, i) for t in tensors for i, ch in enumerate(t.channels)}
    flat = {}
    for t in tensors:
        a = np.asarray(arrays[t.name])
        a = a.reshape(a.shape[0], len(t.channels), *a.shape[-2:])
        flat[t.name] = a[..., ::-1, :] if contract.flip_latitude else a
    picked = [flat[where[ch][0].name][:, where[ch][1]] for ch in channels]
    return np.ascontiguousarray(np.stack(picked, axis=1), dtype=np.float32)


def check_graph(
    contract: OnnxContract,
    graph_inputs: Mapping[str, tuple[Sequence[Any], str]],
    graph_outputs: Mapping[str, tuple[Sequence[Any], str]],
    n_lat: int | None = None,
    n_lon: int | None = None,
) -> None:
    """``ContractError`` naming the first tensor whose name, rank, size or type does not fit.

    ``graph_*`` map each graph tensor name to its shape (ints for fixed sizes, strings or
    None for symbolic ones) and its onnxruntime type string (``tensor(float)``).
    """
    want_type = ORT_TYPES[contract.dtype]
    for side, tensors, graph in (
        ("input", contract.inputs, graph_inputs),
        ("output", contract.outputs, graph_outputs),
    ):
        for t in tensors:
            if t.name not in graph:
                raise ContractError(
                    f"contract {side} {t.name!r} is not a graph {side}; the graph's {side}s are "
                    f"{sorted(graph)}"
                )
            shape, type_ = graph[t.name]
            if type_ != want_type:
                raise ContractError(
                    f"graph {side} {t.name!r} is {type_}, the contract's dtype "
                    f"{contract.dtype} is {want_type}"
                )
            if len(shape) != len(t.dims):
                raise ContractError(
                    f"graph {side} {t.name!r} has rank {len(shape)} {list(shape)}, the contract "
                    f"declares dims {list(t.dims)}"
                )
            expected = dict(zip(t.dims, t.shape(n_lat or -1, n_lon or -1, batch=-1), strict=True))
            for dim, size in zip(t.dims, shape, strict=True):
                want = expected[dim]
                if isinstance(size, int) and want >= 0 and size != want:
                    raise ContractError(
                        f"graph {side} {t.name!r} has {size} along {dim!r}, the contract "
                        f"gives {want} (shape {list(shape)} vs dims {list(t.dims)})"
                    )
        if side == "input" and (extra := sorted(set(graph) - {t.name for t in tensors})):
            raise ContractError(f"the graph's input {extra[0]!r} is not in the contract's inputs")


def is_batched(tensor: TensorSpec, graph_shape: Sequence[Any]) -> bool:
    """Whether a graph tensor takes several samples at once (a symbolic ``batch`` dim)."""
    return "batch" in tensor.dims and not isinstance(graph_shape[0], int)
