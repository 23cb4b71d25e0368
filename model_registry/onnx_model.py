"""ONNX models in the platform's rollout: an onnxruntime session behind a torch-module face.

``OnnxModel`` is called by ``weather_assets.forecast.rollout`` exactly like the platform's
torch networks: standardized state (then forcings) in, standardized tendency out, canonical
``(batch, channel, lat, lon)`` layout. Around the graph it undoes what the contract
(``model_registry.onnx_contract``) says differs: units, channel order and split into named
tensors, latitude order, dtype, and state vs tendency output. The rollout maths stay the
one in ``rollout.py``; a state-predicting graph's next state comes back out of it up to
float32 rounding (the tendency is formed and re-added in float64 here, float32 there).

onnxruntime runs on the CUDA execution provider when it is installed and a GPU is present
(``onnxruntime-gpu``), else on the CPU; tensors go through host memory.

``export_onnx`` turns a torch network of the platform into an ONNX graph (the torch.export
exporter; neuraloperator's complex spectral weights are rewritten as real DFT matrices,
which ONNX can hold) and checks onnxruntime against torch on the same input.

onnxruntime is imported here only, when a session is made; this module (torch) is imported
only when an onnx model is built or exported, never at code-location load.
"""

from __future__ import annotations

import copy
import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from model_registry.onnx_contract import (
    EXPORT_ATOL,
    EXPORT_RTOL,
    ContractError,
    OnnxContract,
    check_graph,
    from_contract,
    is_batched,
    parse_contract,
    to_contract,
)
from weather_assets.forecast.normalize import stats_for

if TYPE_CHECKING:
    import xarray as xr

    from model_registry.artifact import LoadedArtifact
    from model_registry.spec import ModelSpec


def _import_ort() -> Any:
    try:
        import onnxruntime
    except ImportError as exc:
        raise ImportError(
            "ONNX models need onnxruntime: pip install 'weather-platform[onnx]' "
            "(onnxruntime-gpu for the CUDA execution provider)"
        ) from exc
    return onnxruntime


def providers() -> list[str]:
    """CUDA execution provider when onnxruntime has one, then the CPU."""
    available = _import_ort().get_available_providers()
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]


def onnx_session(model: bytes, *, cpu_only: bool = False) -> Any:
    """An onnxruntime ``InferenceSession`` of a serialized graph."""
    ort = _import_ort()
    try:
        return ort.InferenceSession(
            model, providers=["CPUExecutionProvider"] if cpu_only else providers()
        )
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
        raise ContractError(f"model.onnx is not a loadable ONNX graph ({exc})") from None


def graph_io(session: Any) -> tuple[dict[str, tuple[list, str]], dict[str, tuple[list, str]]]:
    """``{name: (shape, type)}`` of a session's inputs and outputs."""
    return (
        {i.name: (list(i.shape), i.type) for i in session.get_inputs()},
        {o.name: (list(o.shape), o.type) for o in session.get_outputs()},
    )


@dataclass(frozen=True)
class _Stats:
    """Per-feature mllam statistics as (1, F, 1, 1) float64 arrays."""

    mean: np.ndarray
    std: np.ndarray
    diff_mean: np.ndarray
    diff_std: np.ndarray

    @classmethod
    def of(cls, stats: xr.Dataset, features: Sequence[str]) -> _Stats:
        s = stats_for(stats, features)

        def arr(name: str) -> np.ndarray:
            return np.asarray(s[name].values, dtype=np.float64).reshape(1, -1, 1, 1)

        return cls(
            arr("state__train__mean"),
            arr("state__train__std"),
            arr("state__train__diff_mean"),
            arr("state__train__diff_std"),
        )


class OnnxModel(nn.Module):
    """An ONNX graph with a tensor contract, called like a platform tendency network.

    ``forward(s)`` takes ``(batch, F + forcings, lat, lon)`` standardized canonical input and
    returns the standardized tendency ``(batch, F, lat, lon)`` (F: the state features, inputs
    equal to outputs as the rollout requires).
    """

    def __init__(
        self,
        session: Any,
        contract: OnnxContract,
        stats: xr.Dataset,
        features: Sequence[str],
        forcings: Sequence[str] = (),
    ) -> None:
        super().__init__()
        self.session = session
        self.contract = contract
        self.features = list(features)
        self.channels = [*self.features, *forcings]
        contract.check_channels(self.channels, self.features)
        self.graph_inputs, self.graph_outputs = graph_io(session)
        check_graph(contract, self.graph_inputs, self.graph_outputs)
        self._stats = _Stats.of(stats, self.features)
        self._batched = all(is_batched(t, self.graph_inputs[t.name][0]) for t in contract.inputs)
        self._output_names = [t.name for t in contract.outputs]

    @classmethod
    def from_artifact(cls, loaded: LoadedArtifact, spec: ModelSpec) -> OnnxModel:
        """The model of an ``onnx`` artifact for a registry entry (checked, not yet run)."""
        if loaded is None or loaded.onnx_model is None:
            raise ContractError(f"model {spec.name!r}: architecture 'onnx' needs model.onnx")
        contract = parse_contract(loaded.manifest.architecture.hyperparameters)
        try:
            return cls(
                onnx_session(loaded.onnx_model), contract, loaded.stats,
                spec.input_features, spec.forcings,
            )  # fmt: skip
        except ContractError as exc:
            raise ContractError(f"artifact {loaded.path}: {exc}") from None

    def check_grid(self, n_lat: int, n_lon: int) -> None:
        """``ContractError`` when the graph's fixed sizes do not fit the grid (no compute)."""
        check_graph(self.contract, self.graph_inputs, self.graph_outputs, n_lat, n_lon)

    def _run(self, feeds: dict[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
        if self._batched:
            return dict(
                zip(self._output_names, self.session.run(self._output_names, feeds), strict=True)
            )
        outs: dict[str, list[np.ndarray]] = {name: [] for name in self._output_names}
        for b in range(n):  # one graph call per sample: no (or a fixed) batch dim
            one = {
                t.name: feeds[t.name][b : b + 1] if "batch" in t.dims else feeds[t.name][b]
                for t in self.contract.inputs
            }
            for t, y in zip(
                self.contract.outputs, self.session.run(self._output_names, one), strict=True
            ):
                outs[t.name].append(y if "batch" in t.dims else y[None])
        return {name: np.concatenate(ys, axis=0) for name, ys in outs.items()}

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        st, c = self._stats, self.contract
        n_feat = len(self.features)
        inp = s.detach().to("cpu", torch.float64).numpy()
        if inp.shape[1] != len(self.channels):
            raise ContractError(
                f"ONNX model input has {inp.shape[1]} channels, expected {len(self.channels)}"
            )
        self.check_grid(*inp.shape[-2:])
        x = inp[:, :n_feat] * st.std + st.mean  # the physical state
        if c.units == "physical":
            inp = np.concatenate([x, inp[:, n_feat:]], axis=1)
        feeds = to_contract(inp, self.channels, c.inputs, c)
        outs = self._run(feeds, inp.shape[0])
        y = from_contract(outs, self.features, c.outputs, c).astype(np.float64)
        if c.output == "state":
            nxt = y * st.std + st.mean if c.units == "standardized" else y
            tendency = (nxt - x - st.diff_mean) / st.diff_std
        elif c.units == "physical":
            tendency = (y - st.diff_mean) / st.diff_std
        else:
            tendency = y  # already the platform's standardized tendency
        return torch.from_numpy(tendency.astype(np.float32)).to(s.device)


# ---------------------------------------------------------------------------------------------
# Export of the platform's torch networks.


def _dft(n: int, freqs: np.ndarray, sign: float) -> tuple[np.ndarray, np.ndarray]:
    """cos and sign*sin of 2*pi*k*m/n, (len(freqs), n)."""
    phase = 2 * np.pi * np.outer(freqs, np.arange(n)) / n
    return np.cos(phase), sign * np.sin(phase)


class _RealSpectralConv(nn.Module):
    """neuraloperator's 2-D ``SpectralConv`` (real data, dense weights) without complex
    tensors: the kept Fourier modes as real DFT matrices, the complex product split in real
    and imaginary parts. Same maths as ``rfftn`` / mode product / ``irfftn`` (norm
    ``forward``) on one fixed grid."""

    def __init__(self, conv: nn.Module, n_lat: int, n_lon: int) -> None:
        super().__init__()
        if (
            conv.order != 2
            or conv.complex_data
            or conv.separable
            or conv.fno_block_precision != "full"
            or conv.resolution_scaling_factor is not None
            or conv.fft_norm != "forward"
        ):
            raise ContractError(
                "only 2-D, real, dense, full-precision spectral convolutions with fft_norm "
                "'forward' and no resolution scaling can be exported"
            )
        weight = conv.weight if torch.is_tensor(conv.weight) else conv.weight.to_tensor()
        fft_size = [n_lat, n_lon // 2 + 1]
        starts = [max_m - min(size, n) for size, n, max_m in
                  zip(fft_size, conv.n_modes, conv.max_n_modes, strict=True)]  # fmt: skip
        sh = slice(starts[0] // 2, -starts[0] // 2) if starts[0] else slice(starts[0], None)
        sw = slice(None, -starts[1]) if starts[1] else slice(None)
        w = weight[:, :, sh, sw].detach().to(torch.complex128)
        kept_h, kept_w = w.shape[-2:]
        # rows of the fft-shifted latitude spectrum the layer keeps (as in SpectralConv)
        shifted = np.fft.fftshift(np.fft.fftfreq(n_lat, 1.0 / n_lat)).round().astype(int)
        centre = n_lat // 2
        freq_h = shifted[centre - kept_h // 2 : centre + kept_h // 2 + kept_h % 2]
        freq_w = np.arange(fft_size[1])[: kept_w if kept_w < fft_size[1] else None]
        if len(freq_h) != kept_h or len(freq_w) != kept_w:
            raise ContractError(
                f"spectral weights {tuple(w.shape)} do not fit a {n_lat}x{n_lon} grid"
            )
        ch, sh_ = _dft(n_lat, freq_h, -1.0)  # forward along latitude, / n_lat
        cw, sw_ = _dft(n_lon, freq_w, -1.0)  # forward along longitude, / n_lon
        # inverse real transform along longitude: Hermitian weights, DC/Nyquist imag dropped
        herm = np.where((freq_w == 0) | (2 * freq_w == n_lon), 1.0, 2.0)[:, None]
        icw, isw = _dft(n_lon, freq_w, 1.0)
        isw[(freq_w == 0) | (2 * freq_w == n_lon)] = 0.0

        def buf(name: str, a: Any) -> None:
            self.register_buffer(name, torch.as_tensor(np.asarray(a), dtype=torch.float32))

        buf("fc_h", ch / n_lat)
        buf("fs_h", sh_ / n_lat)
        buf("fc_w", cw / n_lon)
        buf("fs_w", sw_ / n_lon)
        # Inverse along latitude, no scaling. SpectralConv shifts the spectrum back with a
        # second fftshift (not ifftshift): for an odd n_lat each mode lands one frequency
        # lower (shift 2 * (n // 2) = n - 1), which the graph reproduces.
        ich, ish = _dft(n_lat, freq_h + 2 * (n_lat // 2), 1.0)
        buf("ic_h", ich.T)
        buf("is_h", ish.T)
        buf("ic_w", herm * icw)
        buf("is_w", herm * isw)
        buf("w_re", w.real.numpy())
        buf("w_im", w.imag.numpy())
        self.bias = None if conv.bias is None else nn.Parameter(conv.bias.detach().clone())
        self.transform = conv.transform  # identity without resolution scaling

    def forward(self, x: torch.Tensor, output_shape: Any = None) -> torch.Tensor:
        # forward DFT along longitude, then latitude: x -> X = Xr + i Xi, (b, c, kh, kw)
        ar = torch.einsum("bchm,km->bchk", x, self.fc_w)
        ai = torch.einsum("bchm,km->bchk", x, self.fs_w)
        xr = torch.einsum("jh,bchk->bcjk", self.fc_h, ar) - torch.einsum(
            "jh,bchk->bcjk", self.fs_h, ai
        )
        xi = torch.einsum("jh,bchk->bcjk", self.fc_h, ai) + torch.einsum(
            "jh,bchk->bcjk", self.fs_h, ar
        )
        # mode-wise complex product with the weights (in, out, kh, kw)
        yr = torch.einsum("bijk,iojk->bojk", xr, self.w_re) - torch.einsum(
            "bijk,iojk->bojk", xi, self.w_im
        )
        yi = torch.einsum("bijk,iojk->bojk", xr, self.w_im) + torch.einsum(
            "bijk,iojk->bojk", xi, self.w_re
        )
        # inverse along latitude (complex), then the real inverse along longitude
        zr = torch.einsum("hj,bojk->bohk", self.ic_h, yr) - torch.einsum(
            "hj,bojk->bohk", self.is_h, yi
        )
        zi = torch.einsum("hj,bojk->bohk", self.ic_h, yi) + torch.einsum(
            "hj,bojk->bohk", self.is_h, yr
        )
        out = torch.einsum("bohk,km->bohm", zr, self.ic_w) - torch.einsum(
            "bohk,km->bohm", zi, self.is_w
        )
        return out if self.bias is None else out + self.bias


def exportable(model: nn.Module, n_lat: int, n_lon: int) -> nn.Module:
    """``model`` with every neuraloperator ``SpectralConv`` replaced by ``_RealSpectralConv``
    (in place; ONNX has no complex tensors). Other modules are left as they are."""
    from neuralop.layers.spectral_convolution import SpectralConv

    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if type(child) is SpectralConv:
                setattr(module, name, _RealSpectralConv(child, n_lat, n_lon))
    for module in model.modules():
        tensors = [*module.parameters(recurse=False), *module.buffers(recurse=False)]
        # tensorly-torch's ComplexDenseTensor & co. store complex weights as real views
        if any(t.is_complex() for t in tensors) or "Complex" in type(module).__name__:
            raise ContractError(
                f"{type(module).__name__} holds complex weights, which ONNX cannot hold, and "
                "has no real rewrite here (SFNO's spherical harmonic transforms among them): "
                "this network cannot be exported to ONNX"
            )
    for p in model.parameters():
        p.requires_grad_(False)  # the exporter refuses autograd on some ops
    return model.eval()


class _DropMetadata(nn.Module):
    """Hides neuraloperator's ``_metadata`` (constructor kwargs) from the exporter."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        sd = super().state_dict(*args, **kwargs)
        return {k: v for k, v in sd.items() if not k.endswith("_metadata")}


@dataclass(frozen=True)
class ExportResult:
    """The serialized graph and how far onnxruntime is from torch on the check input."""

    model: bytes
    max_abs: float
    max_rel: float  # max |ort - torch| / max |torch|


def export_onnx(
    model: nn.Module,
    in_channels: int,
    n_lat: int,
    n_lon: int,
    *,
    atol: float = EXPORT_ATOL,
    rtol: float = EXPORT_RTOL,
    seed: int = 0,
) -> ExportResult:
    """Export a platform network (``(b, in, lat, lon)`` -> ``(b, out, lat, lon)``) to ONNX
    with a dynamic batch dim and check onnxruntime (CPU) against the unmodified torch
    network on a seeded standardized input of 2 samples; ``ContractError`` when it does not fit
    ``atol + rtol * max|torch|``."""
    import warnings

    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(2, in_channels, n_lat, n_lon, generator=gen)
    with torch.no_grad():  # the reference: the torch network as the platform runs it
        expected = model.cpu().eval()(x).numpy()
    model = _DropMetadata(exportable(copy.deepcopy(model), n_lat, n_lon))
    buf = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            program = torch.onnx.export(
                model,
                (x,),
                dynamo=True,
                input_names=["input"],
                output_names=["output"],
                dynamic_shapes=({0: torch.export.Dim("batch")},),
                verbose=False,
            )
            program.save(buf)
        except Exception as exc:  # the exporter raises many types; all mean "not exportable"
            raise ContractError(
                f"torch.onnx.export failed: {str(exc).strip().splitlines()[0]}"
            ) from None
    data = buf.getvalue()
    got = onnx_session(data, cpu_only=True).run(["output"], {"input": x.numpy()})[0]
    max_abs = float(np.abs(got - expected).max())
    scale = float(np.abs(expected).max()) or 1.0
    if not max_abs <= atol + rtol * scale:
        raise ContractError(
            f"onnxruntime differs from torch by {max_abs:.3g} (max |torch| {scale:.3g}), over "
            f"the tolerance atol {atol:g} + rtol {rtol:g}"
        )
    return ExportResult(data, max_abs, max_abs / scale)


def exported_contract(input_channels: Sequence[str], output_features: Sequence[str]) -> dict:
    """The contract of an exported platform network: one batched tensor each way in the
    canonical layout, standardized units, standardized tendency out."""

    dims = ["batch", "variable", "latitude", "longitude"]
    contract = {
        "units": "standardized",
        "output": "tendency",
        "latitude": "ascending",
        "dtype": "float32",
        "inputs": [{"name": "input", "dims": dims, "variables": list(input_channels)}],
        "outputs": [{"name": "output", "dims": dims, "variables": list(output_features)}],
    }
    OnnxContract.model_validate(contract)  # the form artifact.yaml is read back in
    return contract
