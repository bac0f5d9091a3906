"""Kernel integral from one node set to another: restriction and prolongation in MGNO."""

from __future__ import annotations

import torch
from torch import nn

from . import compiled
from .edges import Edges, kernel_mean
from .kernel_sum import kernel_sum
from .kernel_update import kernel_update


class KernelTransfer(nn.Module):
    r"""Moves a hidden state between two node sets (e.g. a fine and a coarse level) by a kernel
    integral over bipartite edges :math:`j \to i`, :math:`j` in the source set, :math:`i` in the
    target set:

    .. math::
        v'(y_i) = v(y_i) + \sigma\Big(W v(y_i) + \frac{1}{|N(i)|}
                  \sum_{j \in N(i)} \kappa_\phi(h_{ij}) \odot V u(x_j)\Big)

    :math:`u` is the source state, :math:`v` the target's own state, :math:`h_{ij}` the edge
    embedding (:class:`~meshop.nn.EdgeEmbedding`) and :math:`\kappa_\phi` a channel-wise kernel, as
    in :class:`~meshop.nn.KernelIntegral`, its one-set case. A target node
    without incoming edges keeps ``v + σ(W v)``.

    ``linear=True`` drops :math:`\sigma` and the bias of :math:`W`: the layer is then linear in
    the state (the kernel still depends nonlinearly on the edge embedding), as BENO's
    superposition branches need.

    Shapes: ``source (N_s, width)``, ``target (N_t, width)``, ``edges`` (index row 0 in the source
    set, row 1 in the target set; summed chunk by chunk, see :class:`Edges`) -> ``(N_t, width)``.
    """

    def __init__(self, width: int, hidden: int, linear: bool = False):
        super().__init__()
        self.linear = linear
        self.kernel = nn.Linear(hidden, width)
        self.value = nn.Linear(width, width, bias=False)
        self.self_weight = nn.Linear(width, width, bias=not linear)

    def forward(self, source: torch.Tensor, target: torch.Tensor, edges: Edges) -> torch.Tensor:
        if compiled.trains(edges, source, self.kernel.in_features):    # training, both passes in C
            return kernel_update(self, source, target, edges)
        value = self.value(source)
        if edges.fused:                                                 # training: recomputing sum
            integral = kernel_sum(edges, value, self.kernel, mean=True)
        elif compiled.applies(edges, value, self.kernel.in_features):   # compiled inference where it builds
            # the means added into the node's own term in C, as update_node adds them: no tensor for them
            update = compiled.kernel_sum(edges, value, self.kernel.weight, self.kernel.bias, mean=True,
                                         into=self.self_weight(target).contiguous())
            return self._activate(target, update)
        else:
            integral = kernel_mean(edges, lambda index, embedding: self.messages(value, index, embedding))
        return self.update_node(target, integral)                       # (N_t, width)

    def messages(self, value: torch.Tensor, index: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        """``(e, width)`` messages :math:`\\kappa(h_{ij}) \\odot V u(x_j)` of the edges ``index``."""
        kernel = self.kernel(embedding)                                 # (e, width)
        source_values = value.index_select(0, index[0])
        # without autograd the kernel is not kept for a backward pass: multiply in place, one
        # (e, width) buffer fewer on the hot path of inference
        return kernel * source_values if torch.is_grad_enabled() else kernel.mul_(source_values)

    def update_node(self, v: torch.Tensor, integral: torch.Tensor) -> torch.Tensor:
        """``v + σ(W v + integral)``, in place on the fresh tensors whose backward needs neither
        (the linear's output, the GELU's; without autograd the GELU's input too): up to three
        ``(N_t, width)`` tensors fewer, each a page fault per 4 kB when fresh (~2 us each, 70 ms
        per tensor at 1M nodes), the same numbers."""
        return self._activate(v, self.self_weight(v).add_(integral))

    def _activate(self, v: torch.Tensor, update: torch.Tensor) -> torch.Tensor:
        """``v + σ(update)`` (``v + update`` when linear), in place on ``update``."""
        if not self.linear:
            update = nn.functional.gelu(update) if torch.is_grad_enabled() else torch.ops.aten.gelu_(update)
        return update.add_(v)
