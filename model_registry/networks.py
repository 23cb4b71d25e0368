"""Torch modules the platform defines itself (the persistence baseline).

Imported only when a model is built (``model_registry.architectures.new_model``), so that
loading the code location does not import torch.
"""

from __future__ import annotations

import torch
from torch import nn


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
