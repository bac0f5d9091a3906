"""A plain multi-layer perceptron."""

from __future__ import annotations

from torch import nn


class MLP(nn.Sequential):
    """``Linear -> GELU -> ... -> Linear`` with the given layer widths.

    Args:
        widths: ``[in, hidden..., out]``.
        layer_norm: append a LayerNorm on the output.
    """

    def __init__(self, widths: list[int], layer_norm: bool = False):
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
            layers.append(nn.Linear(a, b))
            if i < len(widths) - 2:
                layers.append(nn.GELU())
        if layer_norm:
            layers.append(nn.LayerNorm(widths[-1]))
        super().__init__(*layers)
