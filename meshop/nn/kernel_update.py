"""A kernel layer's training step with both kernel passes in C: the value projection, the kernel
mean and the node update in one autograd function.

Through autograd, each of the layer's node operations (``V u``, ``W v + b``, the mean, the GELU,
the residual) is a node of its own, and each gradient it hands on is a fresh ``(N, width)``
tensor that the engine then adds into the state's gradient (a page fault per 4 kB the first time:
~7 ms per ``(100k x 32)`` tensor here). :class:`KernelUpdate` adds the means into ``W v + b``
in C, and in its backward pass divides the update's gradient in place and adds ``g V`` into the
target's gradient in place, and has the C backward write the value gradient over the values
(its own tensor): four ``(N, width)`` tensors fewer and no separate passes for the division and
the sums. So its backward pass runs once per forward pass (``retain_graph`` is refused). The
numbers are those of the layer's modules in the same order (the forward's bit for bit; the
gradients to float32 rounding: ``a + b @ c`` as one ``addmm``).
"""

from __future__ import annotations

import torch
from torch import nn

from . import compiled
from .edges import Edges


def kernel_update(layer, source: torch.Tensor, target: torch.Tensor, edges: Edges) -> torch.Tensor:
    """``(N_t, width)``: ``layer``'s (a :class:`~meshop.nn.KernelTransfer`) output for
    :attr:`Edges.fused` edges whose both kernel passes run in C (:func:`compiled.trains`)."""
    return KernelUpdate.apply(edges, layer.linear, source, target, layer.value.weight,
                              layer.self_weight.weight, layer.self_weight.bias, layer.kernel.weight,
                              layer.kernel.bias, *edges.embedding.tensors)


class KernelUpdate(torch.autograd.Function):
    """Inputs: ``edges``, ``linear``, ``source (N_s, W)``, ``target (N_t, W)``, the value
    projection's ``(W, W)`` weight, the node term's ``(W, W)`` weight and bias (None when
    ``linear``), the kernel's ``(W, H)`` weight and ``(W,)`` bias, then
    :attr:`BoundEmbedding.tensors`. Output ``(N_t, W)``: ``v + σ(W v + b + mean κ ⊙ V u)``."""

    @staticmethod
    def forward(ctx, edges: Edges, linear: bool, source, target, value_w, self_w, self_b, kernel_w,
                kernel_b, *embedding_tensors):
        value = source @ value_w.t()                                    # (N_s, W)
        update = target @ self_w.t() if self_b is None else torch.addmm(self_b, target, self_w.t())
        compiled.kernel_sum(edges, value, kernel_w, kernel_b, mean=True, into=update)
        ctx.edges, ctx.linear, ctx.same = edges, linear, source is target
        ctx.save_for_backward(source, target, None if linear else update, value_w, self_w, kernel_w, kernel_b)
        ctx.value = value                   # outside save_for_backward: its gradient is written over it
        return update.add_(target) if linear else nn.functional.gelu(update).add_(target)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        source, target, update, value_w, self_w, kernel_w, kernel_b = ctx.saved_tensors
        value, ctx.value = ctx.value, None
        if value is None:
            raise RuntimeError("a kernel layer's compiled backward pass runs once per forward pass (it writes "
                               "the value gradient over the values): backward with retain_graph is not supported.")
        needs = ctx.needs_input_grad
        g_update = grad if ctx.linear else torch.ops.aten.gelu_backward(grad, update)   # (N_t, W)
        g_self_w = g_update.t() @ target if needs[5] else None
        g_self_b = g_update.sum(0) if needs[6] else None
        g_target = torch.addmm(grad, g_update, self_w) if needs[3] or needs[2] and ctx.same else None
        divisor = compiled.mean_divisor(ctx.edges)
        g_mean = g_update / divisor if ctx.linear else g_update.div_(divisor)  # grad is not ours to change
        g_value, *kernel_grads = compiled.kernel_sum_backward(ctx.edges, g_mean, value, kernel_w, kernel_b,
                                                              value_grad=value)   # one (N_s, W) tensor fewer
        g_value_w = g_value.t() @ source if needs[4] else None
        g_source = None
        if needs[2] and ctx.same:                                       # one tensor: its gradient once
            g_target.addmm_(g_value, value_w)
        elif needs[2]:
            g_source = g_value @ value_w
        kernel_grads = [g if need else None for g, need in zip(kernel_grads, needs[7:], strict=True)]
        return None, None, g_source, g_target, g_value_w, g_self_w, g_self_b, *kernel_grads
