"""The kernel sum of a GNO layer for training: chunked, with a backward pass that recomputes.

Plain autograd keeps every per-edge tensor of a kernel layer (embedding, kernel, gathered values:
~10 ``(E, width)`` tensors) until the backward pass, and its gathers' backward scatters into a
fresh full-size gradient. :class:`KernelSum` keeps only the node tensors and the weights, sums the
messages chunk by chunk of target-sorted edges, and recomputes each chunk's embedding and kernel
in its backward pass (activation checkpointing, hand-written: ``torch.utils.checkpoint`` would
scatter each chunk's gradients into full-size node tensors). Its forward is the same sequence of
operations as the inference path (:func:`meshop.nn.edges.kernel_mean`), so the two agree to the
order of the chunk sums.
"""

from __future__ import annotations

import torch
from torch import nn

from . import compiled
from .edge_features import BoundEmbedding
from .edges import Edges, local_index, target_sums


def kernel_sum(edges: Edges, value: torch.Tensor, kernel: nn.Linear, mean: bool = False) -> torch.Tensor:
    r"""``(n_targets, width)``: :math:`\sum_{j \in N(i)} \kappa(h_{ij}) \odot V_j` for edges whose
    embedding is a :class:`BoundEmbedding`, ``value (N_s, width)`` the rows :math:`V_j`,
    ``kernel`` the linear map from embedding to kernel; ``mean``: divided by
    :attr:`Edges.mean_divisor` (in the compiled passes, without another ``(N_t, width)`` tensor)."""
    embedding = edges.embedding
    return KernelSum.apply(edges, embedding.scale, mean, value, kernel.weight, kernel.bias, *embedding.tensors)


class KernelSum(torch.autograd.Function):
    """Inputs: ``edges``, ``scale``, ``mean``, ``value (N_s, W)``, the kernel's ``weight (W, H)``
    and ``bias (W,)``, then :attr:`BoundEmbedding.tensors`. Output ``(N_t, W)``."""

    @staticmethod
    def forward(ctx, edges: Edges, scale: float, mean: bool, value, weight, bias, *embedding_tensors):
        ctx.edges, ctx.scale, ctx.mean = edges, scale, mean
        ctx.save_for_backward(value, weight, bias, *embedding_tensors)
        embedding = BoundEmbedding(*embedding_tensors, scale)
        if compiled.applies(edges, value, weight.shape[1]):             # the C forward where it builds
            return compiled.kernel_sum(edges, value, weight, bias, mean)
        total = value.new_zeros(edges.n_targets, weight.shape[0])
        for index, targets in edges.index_chunks():
            local = local_index(index, targets)
            kernel = torch.addmm(bias, embedding(index, _broadcast(edges, targets)), weight.t())
            part = kernel.mul_(value.index_select(0, index[0]))         # (e, W)
            total[targets] += target_sums(edges, part, local[1], targets)
        return total.div_(edges.mean_divisor) if mean else total

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        value, weight, bias, *embedding_tensors = ctx.saved_tensors
        edges = ctx.edges
        needs = ctx.needs_input_grad[3:]
        in_c = compiled.applies(edges, value, weight.shape[1])          # the C backward where it builds
        if ctx.mean:
            grad = grad / (compiled.mean_divisor(edges) if in_c else edges.mean_divisor)
        if in_c:
            grads = compiled.kernel_sum_backward(edges, grad, value, weight, bias)
            return None, None, None, *(g if need else None for g, need in zip(grads, needs, strict=True))
        embedding = BoundEmbedding(*embedding_tensors, ctx.scale)
        grads = [torch.zeros_like(t) if need else None
                 for t, need in zip((value, weight, bias, *embedding_tensors), needs)]
        g_value, g_weight, g_bias, g_source_pos, g_target_pos, g_source_term, g_target_term, g_w, g_b = grads
        for index, targets in edges.index_chunks():
            source, local = index[0], local_index(index, targets)[1]
            relative, pre = embedding.pre_activation(index, _broadcast(edges, targets))
            h = nn.functional.gelu(pre)
            kernel = torch.addmm(bias, h, weight.t())                   # (e, W)
            g_message = grad[targets].index_select(0, local)            # (e, W)
            if g_value is not None:
                g_value.index_add_(0, source, g_message * kernel)
            g_kernel = g_message.mul_(value.index_select(0, source))
            if g_weight is not None:
                g_weight.addmm_(g_kernel.t(), h)
            if g_bias is not None:
                g_bias += g_kernel.sum(0)
            g_pre = torch.ops.aten.gelu_backward(g_kernel @ weight, pre)  # (e, H)
            if g_target_term is not None:
                g_target_term[targets] += target_sums(edges, g_pre, local, targets)
            if g_source_term is not None:
                g_source_term.index_add_(0, source, g_pre)
            if g_w is not None:
                g_w.addmm_(g_pre.t(), relative)
            if g_b is not None:
                g_b += g_pre.sum(0)
            if g_source_pos is not None or g_target_pos is not None:
                g_rel = _relative_grad(g_pre @ embedding.weight, relative) / ctx.scale  # (e, d)
                if g_source_pos is not None:
                    g_source_pos.index_add_(0, source, g_rel)
                if g_target_pos is not None:
                    g_target_pos[targets] -= target_sums(edges, g_rel, local, targets)
        return None, None, None, *grads


def _relative_grad(g_relative: torch.Tensor, relative: torch.Tensor) -> torch.Tensor:
    """``(e, d)`` gradient w.r.t. the scaled offset ``r`` from that w.r.t. ``(r, |r|)``
    (``g_relative (e, d + 1)``); ``|r|`` contributes nothing at ``r = 0``, as in torch's norm."""
    offset, distance = relative[:, :-1], relative[:, -1:]
    unit = torch.where(distance > 0, offset / distance.clamp(min=torch.finfo(distance.dtype).tiny), 0.0)
    return g_relative[:, :-1] + g_relative[:, -1:] * unit


def _broadcast(edges: Edges, targets: slice) -> slice | None:
    """The target range when a chunk has ``k`` edges per target in order (fixed degree)."""
    return targets if edges.fixed_degree else None
