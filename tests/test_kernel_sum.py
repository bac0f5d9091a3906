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
    elif kind == "dense":                           # degrees ~10-110: several 24-edge blocks
        index = radius_graph(points, 0.4)
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


def compiler_missing(compiled) -> bool:
    """Whether no C compiler exists: then building the kernel must say so in one sentence (checked
    here) and a test of the kernel has nothing more to check."""
    if shutil.which("cc") is not None:
        return False
    with pytest.raises(MeshError, match="C compiler"):
        compiled.library()
    return True


@pytest.fixture(scope="module")
def kernel_cache(tmp_path_factory):
    """A fresh cache folder for this module's tests: the kernel is built once (~3 s), then loaded."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture
def compiled_on(monkeypatch, kernel_cache):
    """The compiled kernel required ("on"), built into a fresh cache folder; the mode is restored after."""
    from meshop.nn import compiled

    monkeypatch.setenv("XDG_CACHE_HOME", str(kernel_cache))
    monkeypatch.setattr(compiled, "_library", None)
    monkeypatch.setattr(compiled, "_unavailable", None)
    monkeypatch.setattr(compiled, "_mode", "on")
    return compiled


@pytest.mark.parametrize("width, hidden, kind", [(8, 10, "shuffled"), (16, 32, "shuffled"), (32, 32, "dense")])
def test_compiled_kernel_equals_the_pytorch_path(compiled_on, width, hidden, kind):
    """Inference through the C kernel against the pure-PyTorch chunks: same sums to float32
    rounding (the dense graph's degrees span several 24-edge blocks and their tails), bipartite edges
    included."""
    if compiler_missing(compiled_on):
        return
    torch.manual_seed(3)
    points, index = graph(kind)
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
    """With the compiled kernel on, both passes of KernelSum run in C: output and gradients
    equal the PyTorch passes' to float32 rounding."""
    if compiler_missing(compiled_on):
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


def test_dense_graph_spans_several_c_blocks():
    """The "dense" graph of the C kernel's tests has targets of one, two and more 24-edge blocks
    (the C passes' BLOCK), with and without a partial last block."""
    degrees = torch.bincount(graph("dense")[1][1], minlength=N)
    assert degrees.min() < 24 and degrees.max() > 72
    assert ((degrees > 24) & (degrees % 24 != 0)).any() and ((degrees > 48) & (degrees % 24 != 0)).any()


def c_backward_against_float64(compiled_on, monkeypatch, width, hidden, kind, threads=1, linear=False):
    """Gradients of one layer (``linear``: without σ and the node term's bias) through the C
    backward pass (float32) and through plain autograd in float64, and how many times the C
    backward ran."""
    calls = []
    backward = compiled_on.kernel_sum_backward
    monkeypatch.setattr(compiled_on, "kernel_sum_backward", lambda *a, **k: calls.append(1) or backward(*a, **k))
    torch.manual_seed(5)
    points, index = graph("radius" if kind == "subset" else kind)
    targets = torch.arange(0, N, 3) if kind == "subset" else None
    if targets is not None:                          # bipartite: in-edges of every third node
        keep = index[1] % 3 == 0
        index = torch.stack([index[0, keep], index[1, keep] // 3])
    embedding = EdgeEmbedding(3, CHANNELS, hidden)
    layer = (KernelIntegral if targets is None else KernelTransfer)(width, hidden, linear=linear)
    pos, v = torch.from_numpy(points).float().requires_grad_(True), torch.randn(N, width, requires_grad=True)
    a = torch.randn(N, CHANNELS)                     # node inputs of the embedding
    embedding_64 = EdgeEmbedding(3, CHANNELS, hidden).double()
    embedding_64.load_state_dict(embedding.state_dict())
    layer_64 = type(layer)(width, hidden, linear=linear).double()
    layer_64.load_state_dict(layer.state_dict())

    def run(embedding, layer, pos, v, fused):
        bound = embedding.bind(pos, a.to(pos.dtype), 0.15, None, targets)
        edges = Edges(index, bound, N if targets is None else len(targets), chunk=64, recompute=True)
        if not fused:
            edges = Edges(index, lambda i, t=None: bound(i, t), edges.n_targets)
        out = layer(v, edges) if targets is None else layer(v, v[targets], edges)
        assert fused == (type(out.grad_fn).__name__ == "KernelUpdateBackward")   # one autograd node
        weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(9)).to(out.dtype)
        return torch.autograd.grad((out * weights).sum(), [pos, v, *embedding.parameters(), *layer.parameters()])

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        ours = run(embedding, layer, pos, v, True)
    finally:
        torch.set_num_threads(previous)
    reference = run(embedding_64, layer_64, pos.detach().double().requires_grad_(True),
                    v.detach().double().requires_grad_(True), False)
    return ours, reference, len(calls)


@pytest.mark.parametrize("width, hidden, kind, linear", [
    (8, 10, "radius", False), (32, 32, "radius", False), (16, 32, "knn", False), (8, 12, "subset", False),
    (32, 32, "dense", False), (16, 10, "radius", True), (8, 12, "subset", True)])
def test_compiled_backward_equals_float64_autograd(compiled_on, monkeypatch, width, hidden, kind, linear):
    """The compiled training step (:class:`~meshop.nn.kernel_update.KernelUpdate`, both kernel passes in C) against plain
    float64 autograd: every gradient (positions, states, node terms through the embedding's
    weights, kernel, value and node-term weights) within 1e-5 of the largest; padded hidden
    widths (10, 12), fixed-degree and bipartite edges, linear layers (BENO's) included."""
    if compiler_missing(compiled_on):
        return
    ours, reference, calls = c_backward_against_float64(compiled_on, monkeypatch, width, hidden, kind,
                                                        linear=linear)
    assert calls == 1
    for a, b in zip(ours, reference, strict=True):
        assert b.abs().max() > 0
        assert (a.double() - b).abs().max() <= 1e-5 * b.abs().max()


def test_compiled_training_step_backward_runs_once(compiled_on):
    """The compiled training step writes the value gradient over the values: a second backward
    pass through its graph (``retain_graph``) is an error that says why, not wrong gradients."""
    if compiler_missing(compiled_on):
        return
    points, index = graph("radius")
    embedding, layer = EdgeEmbedding(3, 8, HIDDEN), KernelIntegral(8, HIDDEN)
    v = torch.randn(N, 8, requires_grad=True)
    out = layer(v, Edges(index, embedding.bind(torch.from_numpy(points).float(), v, 0.15), N, recompute=True))
    out.sum().backward(retain_graph=True)
    assert v.grad.abs().max() > 0
    with pytest.raises(RuntimeError, match="runs once per forward pass"):
        out.sum().backward()


def test_compiled_backward_threads_sum_their_private_rows(compiled_on, monkeypatch):
    """Three threads, each with private sums of the source rows' gradients, give the gradients of
    one thread (to the float32 rounding of sums in another order) and of float64 autograd."""
    if compiler_missing(compiled_on):
        return
    one, reference, _ = c_backward_against_float64(compiled_on, monkeypatch, 16, 10, "radius")
    three, _, calls = c_backward_against_float64(compiled_on, monkeypatch, 16, 10, "radius", threads=3)
    assert calls == 1
    for a, b, r in zip(three, one, reference, strict=True):
        assert (a - b).abs().max() <= 1e-5 * b.abs().max()
        assert (a.double() - r).abs().max() <= 1e-5 * r.abs().max()


def test_compiled_visit_order_is_a_morton_permutation(compiled_on):
    """The order the C kernel visits targets in is a permutation whose consecutive targets are
    close: on a 32^3 grid in shuffled order, neighbours in the Morton order are on average
    < 2 cells apart (a random order: ~20)."""
    if compiler_missing(compiled_on):
        return
    grid = torch.stack(torch.meshgrid(*[torch.arange(32.0)] * 3, indexing="ij"), -1).reshape(-1, 3)
    grid = grid[torch.randperm(len(grid), generator=torch.Generator().manual_seed(0))]
    bound = EdgeEmbedding(3, 1, 8).bind(grid, torch.zeros(len(grid), 1), 1.0)
    edges = Edges(torch.stack([torch.arange(len(grid))] * 2), bound, len(grid), recompute=False)
    order = compiled_on._plan(edges)[2]
    assert torch.equal(torch.sort(order).values, torch.arange(len(grid)))
    steps = (grid[order[1:]] - grid[order[:-1]]).norm(dim=1)
    assert steps.mean() < 2.0


def test_compiled_out_edges_list_each_sources_targets(compiled_on):
    """The backward pass's CSR rows by source (a counting sort in C) hold each source's targets
    in increasing order, as a stable sort of the edges by source gives them; sources without
    out-edges get empty rows, and its visit order is a permutation of the sources."""
    if compiler_missing(compiled_on):
        return
    points, index = graph("radius")
    keep = (index[1] % 3 == 0) & (index[0] < N - 5)              # the last 5 sources send nothing
    index = torch.stack([index[0, keep], index[1, keep] // 3])
    bound = EdgeEmbedding(3, 1, 8).bind(torch.from_numpy(points).float(), torch.zeros(N, 1), 0.15,
                                        None, torch.arange(0, N, 3))
    edges = Edges(index, bound, -(-N // 3), chunk=64, recompute=True)
    order, offsets, targets = compiled_on._out_edges(edges)
    source, target = edges.index
    by_source = torch.argsort(source, stable=True)
    assert torch.equal(offsets, torch.cat([torch.zeros(1, dtype=torch.int64),
                                           torch.bincount(source, minlength=N).cumsum(0)]))
    assert targets.dtype == torch.int32 and torch.equal(targets, target[by_source].to(torch.int32))
    assert (offsets[N - 5:] == offsets[-1]).all()
    assert torch.equal(torch.sort(order).values, torch.arange(N))


@pytest.fixture
def compiled_auto(monkeypatch, kernel_cache):
    """The default mode ("auto", from an unset MESHOP_COMPILED_KERNELS), nothing built yet."""
    from meshop.nn import compiled

    monkeypatch.setenv("XDG_CACHE_HOME", str(kernel_cache))
    monkeypatch.delenv("MESHOP_COMPILED_KERNELS", raising=False)
    for name, value in (("_library", None), ("_unavailable", None), ("_mode", None)):
        monkeypatch.setattr(compiled, name, value)
    return compiled


def _inference(seed: int = 5):
    torch.manual_seed(seed)
    points, index = graph("radius")
    embedding, layer = EdgeEmbedding(3, CHANNELS, HIDDEN), KernelIntegral(8, HIDDEN)
    pos, a, v = torch.from_numpy(points).float(), torch.randn(N, CHANNELS), torch.randn(N, 8)
    with torch.no_grad():
        return layer(v, Edges(index, embedding.bind(pos, a, 0.15), N))


def test_default_mode_uses_the_compiled_kernel_where_a_compiler_exists(compiled_auto):
    """Unset, the mode is "auto": with a compiler the C kernel is built and sums the layer; the
    sums are the PyTorch path's to float32 rounding."""
    assert compiled_auto.mode() == "auto"
    ours = _inference()
    if shutil.which("cc") is None:
        assert compiled_auto._library is None and not compiled_auto.available()
        return
    assert compiled_auto._library is not None                       # built and used by default
    compiled_auto.use_compiled(False)
    reference = _inference()
    assert (ours - reference).abs().max() <= 1e-6 * reference.abs().max()


def test_default_mode_without_a_compiler_falls_back_silently(compiled_auto, monkeypatch, recwarn):
    monkeypatch.setenv("CC", "no-such-compiler-meshop")
    ours = _inference()
    assert not compiled_auto.available() and compiled_auto._library is None
    assert not [w for w in recwarn if "compiled kernel" in str(w.message)]
    compiled_auto.use_compiled(False)
    assert torch.equal(ours, _inference())                          # the PyTorch path ran, bit for bit


def test_default_mode_with_a_failing_build_warns_once_and_falls_back(compiled_auto, monkeypatch):
    monkeypatch.setenv("CC", "false")                               # a "compiler" that always fails
    with pytest.warns(RuntimeWarning, match="building meshop's compiled kernel failed"):
        ours = _inference()
    assert not compiled_auto.available()                            # no second build, no second warning
    compiled_auto.use_compiled(False)
    assert torch.equal(ours, _inference())


def test_required_kernel_without_a_compiler_is_an_error_at_first_use(compiled_on, monkeypatch):
    monkeypatch.setenv("CC", "no-such-compiler-meshop")
    with pytest.raises(MeshError, match="needs a C compiler"):
        _inference()


def test_an_unknown_mode_is_named(compiled_auto, monkeypatch):
    monkeypatch.setenv("MESHOP_COMPILED_KERNELS", "yes")
    with pytest.raises(MeshError, match="must be auto, 1 or 0, not 'yes'"):
        compiled_auto.mode()


def test_compiled_means_divide_by_the_in_degree_of_the_edges(compiled_on):
    """The C passes' means: their divisor from the plan's CSR rows equals Edges.mean_divisor
    (targets without in-edges count 1), and the C forward's means are its sums divided by it,
    bit for bit, as the PyTorch path divides them; added into a tensor, they are that tensor
    plus them, bit for bit."""
    if compiler_missing(compiled_on):
        return
    points, index = graph("radius")
    keep = (index[1] % 3 == 0) & (index[1] < N - 30)               # the last 10 targets get no edges
    index = torch.stack([index[0, keep], index[1, keep] // 3])
    n_targets = -(-N // 3)
    torch.manual_seed(6)
    bound = EdgeEmbedding(3, CHANNELS, HIDDEN).bind(torch.from_numpy(points).float(), torch.randn(N, CHANNELS),
                                                    0.15, None, torch.arange(0, N, 3))
    edges = Edges(index, bound, n_targets, chunk=64)
    divisor = compiled_on.mean_divisor(edges)
    assert torch.equal(divisor, edges.mean_divisor) and (divisor[-10:] == 1).all()
    assert compiled_on._plan(edges)[1][-11:].unique().numel() == 1      # empty CSR rows at the end
    kernel, value = torch.nn.Linear(HIDDEN, 16), torch.randn(N, 16)
    with torch.no_grad():
        sums = compiled_on.kernel_sum(edges, value, kernel.weight, kernel.bias)
        means = compiled_on.kernel_sum(edges, value, kernel.weight, kernel.bias, mean=True)
        base = torch.randn(n_targets, 16)
        added = compiled_on.kernel_sum(edges, value, kernel.weight, kernel.bias, mean=True, into=base.clone())
    assert (sums[-10:] == 0).all()
    assert torch.equal(means, sums / edges.mean_divisor)
    assert torch.equal(added, base + means)


@pytest.mark.parametrize("kind", ["file", "missing parent file"])
def test_an_unusable_kernel_cache_folder_is_one_sentence(compiled_on, monkeypatch, tmp_path, kind):
    """XDG_CACHE_HOME naming a file (or a folder under one): a MeshError naming the variable,
    not NotADirectoryError from mkdir; in "auto" mode the PyTorch path is used instead."""
    if compiler_missing(compiled_on):
        return
    (tmp_path / "afile").write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "afile" / ("" if kind == "file" else "sub")))
    with pytest.raises(MeshError, match="cannot be created.*XDG_CACHE_HOME"):
        compiled_on.library()
    monkeypatch.setattr(compiled_on, "_mode", "auto")
    with pytest.warns(RuntimeWarning, match="XDG_CACHE_HOME"):
        assert compiled_on.available() is False
