"""The ONNX export's real rewrite of neuraloperator's spectral convolution."""

import pytest
import torch
from neuralop.layers.spectral_convolution import SpectralConv

from model_registry.onnx_model import _RealSpectralConv


@pytest.mark.parametrize(
    ("n_lat", "n_lon", "modes"),
    [
        (91, 180, (16, 32)),  # fno-demo's grid: odd latitude count (SpectralConv's double fftshift)
        (10, 18, (4, 8)),
        (12, 16, (4, 8)),
        (8, 8, (16, 32)),  # more modes than the grid holds
    ],
)
def test_real_spectral_conv_is_the_complex_one(n_lat, n_lon, modes):
    torch.manual_seed(0)
    conv = SpectralConv(3, 4, modes).eval()
    x = torch.randn(2, 3, n_lat, n_lon)
    with torch.no_grad():
        expected = conv(x)
        got = _RealSpectralConv(conv, n_lat, n_lon)(x)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
