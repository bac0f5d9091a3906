"""The fused, recomputing kernel sum (training path) against plain autograd through the same
layers (the formula as it was before it): forward and every gradient, on radius, kNN (fixed
degree) and bipartite graphs, chunked and whole; and the opt-in compiled inference kernel against
the pure-PyTorch path."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from meshop.errors import MeshError
from meshop.geometry.neighbors import knn_graph, radius_graph
from meshop.nn import EdgeEmbedding, Edges, KernelIntegral, KernelTransfer

N, CHANNELS, HIDDEN = 400, 6, 10


def gradients(layer, embedding, pos, v, index, fused: bool, chunk: int | None, targets=None):
    """Output and gradients w.r.t. positions, state and every weight of one layer."""
    bound = embedding.bind(pos, v, 0.15, None, targets)
    edges = Edges(index, bound, N if targets is None else len(targets), chunk=chunk, recompute=True)
    if not fused:                                   # the plain autograd path, whole edge set
        edges = Edges(index, lambda i, t=None: bound(i, t), edges.n_targets)
    assert edges.fused == fused
    out = layer(v, edges) if targets is None else layer(v, v[targets], edges)
    weights = torch.randn(out.shape, dtype=out.dtype, generator=torch.Generator().manual_seed(9))
    inputs = [pos, v, *embedding.parameters(), *layer.parameters()]
    return out, torch.autograd.grad((out * weights).sum(), inputs)


def graph(kind: str):
    points = np.random.default_rng(5).random((N, 3))
    if kind == "radius":
        index = radius_graph(points, 0.15)
    elif kind == "knn":
        index = knn_graph(points, 7)
    else:                                           # shuffled: the fused path sorts by target
        index = radius_graph(points, 0.15)
        index = index[:, np.random.default_rng(6).permutation(index.shape[1])]
    return points, torch.from_numpy(np.ascontiguousarray(index))


@pytest.mark.parametrize("kind", ["radius", "knn", "shuffled"])
@pytest.mark.parametrize("chunk", [None, 101])
def test_fused_sum_equals_autograd_in_float64(kind, chunk):
    torch.manual_seed(0)
    points, index = graph(kind)
    embedding = EdgeEmbedding(3, CHANNELS, HIDDEN).double()
    layer = KernelIntegral(CHANNELS, HIDDEN).double()
    pos = torch.from_numpy(points).requires_grad_(True)
    v = torch.randn(N, CHANNELS, dtype=torch.float64, requires_grad=True)
    plain, plain_grads = gradients(layer, embedding, pos, v, index, False, None)
    fused, fused_grads = gradients(layer, embedding, pos, v, index, True, chunk)
    if kind == "knn":
        assert Edges(index, embedding.bind(pos, v, 0.15), N, recompute=True).fixed_degree == 7
    torch.testing.assert_close(fused, plain, rtol=1e-12, atol=1e-12)
    for ours, reference in zip(fused_grads, plain_grads, strict=True):
        assert reference.abs().max() > 0
        torch.testing.assert_close(ours, reference, rtol=1e-10, atol=1e-12)


def test_fused_transfer_to_a_subset_equals_autograd():
    """Restriction onto a coarse subset: bipartite edges, target terms of the subset only."""
    torch.manual_seed(1)
    points = np.random.default_rng(2).random((N, 3))
    coarse = torch.arange(0, N, 4)
    index = torch.from_numpy(knn_graph(points, 5)).reshape(2, N, 5)[:, coarse].reshape(2, -1)
    index[1] //= 4                                  # target ids local to the subset
    embedding, layer = EdgeEmbedding(3, CHANNELS, HIDDEN).double(), KernelTransfer(CHANNELS, HIDDEN).double()
    pos = torch.from_numpy(points).requires_grad_(True)
    v = torch.randn(N, CHANNELS, dtype=torch.float64, requires_grad=True)
    plain, plain_grads = gradients(layer, embedding, pos, v, index, False, None, targets=coarse)
    fused, fused_grads = gradients(layer, embedding, pos, v, index, True, 37, targets=coarse)
    torch.testing.assert_close(fused, plain, rtol=1e-12, atol=1e-12)
    for ours, reference in zip(fused_grads, plain_grads, strict=True):
        torch.testing.assert_close(ours, reference, rtol=1e-10, atol=1e-12)


def test_fused_sum_float32_within_1e6_of_autograd():
    torch.manual_seed(2)
    points, index = graph("radius")
    embedding, layer = EdgeEmbedding(3, CHANNELS, HIDDEN), KernelIntegral(CHANNELS, HIDDEN)
    pos = torch.from_numpy(points).float().requires_grad_(True)
    v = torch.randn(N, CHANNELS, requires_grad=True)
    plain, plain_grads = gradients(layer, embedding, pos, v, index, False, None)
    fused, fused_grads = gradients(layer, embedding, pos, v, index, True, 101)
    assert (fused - plain).abs().max() <= 1e-6 * plain.abs().max()
    for ours, reference in zip(fused_grads, plain_grads, strict=True):
        assert (ours - reference).abs().max() <= 1e-6 * reference.abs().max()


def test_coincident_nodes_give_finite_position_gradients():
    """A zero offset (duplicate node): the distance contributes nothing, as torch's norm."""
    points = np.random.default_rng(3).random((N, 3))
    points[1] = points[0]
    index = torch.from_numpy(radius_graph(points, 0.15))
    embedding, layer = EdgeEmbedding(3, CHANNELS, HIDDEN).double(), KernelIntegral(CHANNELS, HIDDEN).double()
    pos = torch.from_numpy(points).requires_grad_(True)
    v = torch.randn(N, CHANNELS, dtype=torch.float64, requires_grad=True)
    _, plain_grads = gradients(layer, embedding, pos, v, index, False, None)
    _, fused_grads = gradients(layer, embedding, pos, v, index, True, None)
    assert torch.isfinite(fused_grads[0]).all()
    torch.testing.assert_close(fused_grads[0], plain_grads[0], rtol=1e-10, atol=1e-12)


@pytest.fixture
def compiled_on(monkeypatch, tmp_path):
    """The opt-in compiled kernel, built into a fresh cache folder."""
    from meshop.nn import compiled

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(compiled, "_library", None)
    compiled.use_compiled(True)
    yield compiled
    compiled.use_compiled(False)


@pytest.mark.parametrize("width, hidden", [(8, 10), (16, 32)])
def test_compiled_kernel_equals_the_pytorch_path(compiled_on, width, hidden):
    """Inference through the C kernel against the pure-PyTorch chunks: same sums to float32
    rounding (degrees 1..~30 exercise the 8-edge blocks' tails), bipartite edges included."""
    if shutil.which("cc") is None:                   # then it must say what is missing
        with pytest.raises(MeshError, match="C compiler"):
            compiled_on.library()
        return
    torch.manual_seed(3)
    points, index = graph("shuffled")
    embedding, layer = EdgeEmbedding(3, CHANNELS, hidden), KernelIntegral(width, hidden)
    pos, a, v = torch.from_numpy(points).float(), torch.randn(N, CHANNELS), torch.randn(N, width)
    with torch.no_grad():
        ours = layer(v, Edges(index, embedding.bind(pos, a, 0.15), N, chunk=64))
        compiled_on.use_compiled(False)
        reference = layer(v, Edges(index, embedding.bind(pos, a, 0.15), N, chunk=64))
    assert compiled_on._library is not None          # the C kernel ran
    assert (ours - reference).abs().max() <= 1e-6 * reference.abs().max()


def test_compiled_kernel_without_a_compiler_says_so(compiled_on, monkeypatch):
    monkeypatch.setenv("CC", "no-such-compiler-meshop")
    with pytest.raises(MeshError, match="needs a C compiler"):
        compiled_on.library()


def test_compiled_forward_in_training_keeps_the_pytorch_gradients(compiled_on):
    """With the compiled kernel on, KernelSum's forward runs in C and its backward in PyTorch:
    the gradients move only through the sums' float32 rounding."""
    if shutil.which("cc") is None:
        with pytest.raises(MeshError, match="C compiler"):
            compiled_on.library()
        return
    torch.manual_seed(4)
    points, index = graph("radius")
    embedding, layer = EdgeEmbedding(3, 8, HIDDEN), KernelIntegral(8, HIDDEN)   # state = node inputs
    pos, v = torch.from_numpy(points).float().requires_grad_(True), torch.randn(N, 8, requires_grad=True)
    ours, our_grads = gradients(layer, embedding, pos, v, index, True, 101)
    compiled_on.use_compiled(False)
    reference, reference_grads = gradients(layer, embedding, pos, v, index, True, 101)
    assert compiled_on._library is not None
    assert (ours - reference).abs().max() <= 1e-6 * reference.abs().max()
    for a, b in zip(our_grads, reference_grads, strict=True):     # they differ through GELU(sum)
        assert (a - b).abs().max() <= 1e-5 * b.abs().max()


def test_small_edge_sets_train_through_plain_autograd():
    points, index = graph("radius")
    embedding, v = EdgeEmbedding(3, CHANNELS, HIDDEN), torch.randn(N, CHANNELS)
    assert not Edges(index, embedding.bind(torch.from_numpy(points).float(), v, 0.15), N).fused
