"""The GPU path: prediction nodes/s, training samples/s per model, native scatter vs torch-scatter,
with and without ``torch.compile`` — on the CPU and, where one is present, a CUDA device.

Every measure runs on each device of the session in the same process; the ``cuda / cpu`` column
is the ratio of the two (the CPU is the baseline) and the ``check`` column the error that goes
with the speed: the CUDA result against the CPU one (prediction, scatter), the compiled
training loss against the eager one, torch-scatter against native. A session without a CUDA
device leaves that column empty and says so; nothing is estimated.

- predict: the bundled default model on a unit-cube tetrahedral mesh of N nodes (the meshes of
  ``benchmarks/predict.py``), timed from the mesh in memory with its boundary found, without
  the finite-element error estimate (a CPU solve, timed by ``benchmarks/predict.py``).
- train: ``--steps`` steps (forward, decode, relative L2, backward, clip, AdamW) of each
  steady model at its default size on one fixed batch of ``--batch`` samples of
  ``datasets/samples/heat3d``, after 2 warm-up steps (which include compiling).
- particles: one rollout step of GNS and GIOROM at their published sizes (latent 128, 10
  message-passing steps, GIOROM on 1,000 sparse nodes; random weights, the statistics of the
  bundled mpm2d) on clouds of N particles at rest (``benchmarks/lagrangian.py``'s clouds; GIOROM
  decodes at every particle); check: the largest position difference, CUDA against CPU.
- scatter: sum and max of E messages of width 64 onto E/16 nodes, forward and backward: PyG's
  ``torch_geometric.utils.scatter`` as meshop uses it (native ``scatter_add_`` /
  ``scatter_reduce_``) vs ``torch_scatter.scatter`` (the ``scatter`` extra) when installed.

    python benchmarks/gpu.py                      # 1M and 10M nodes (10M needs ~30 GB)
    python benchmarks/gpu.py --quick              # 10k and 100k nodes, 2 models, small scatter
    python benchmarks/gpu.py --no-compile         # skip the torch.compile rows
    python benchmarks/gpu.py --sizes 10000000 --models --particles --messages 0   # the 10M prediction alone
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch
from machine import machine
from predict import cube

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "datasets" / "samples" / "heat3d"
NO_CUDA = "no CUDA device in this session"
#: the models the train rows can time on heat3d samples (the time-dependent ones need trajectories)
STEADY_MODELS = ("gno", "mgno", "beno", "amg")


def devices() -> list[str]:
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def device_line() -> str:
    if not torch.cuda.is_available():
        return f"cuda: {NO_CUDA}"
    props = torch.cuda.get_device_properties(0)
    return f"cuda: {props.name}, {props.total_memory / 2**30:.0f} GiB, CUDA {torch.version.cuda}"


def synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def timed(function, device: str, repeat: int = 1) -> tuple[object, float]:
    """(last result, best seconds of ``repeat`` calls), synchronized on the device."""
    best, result = math.inf, None
    for _ in range(repeat):
        synchronize(device)
        started = time.perf_counter()
        result = function()
        synchronize(device)
        best = min(best, time.perf_counter() - started)
    return result, best


# ---------------------------------------------------------------- predict
def predict_rate(n_nodes: int, device: str, cpu_max_nodes: int) -> tuple[float | None, np.ndarray | None]:
    """(nodes/s, predicted field) of the default model on a cube of ``n_nodes``; None if skipped."""
    from meshop.prediction import Predictor

    if device == "cpu" and n_nodes > cpu_max_nodes:
        return None, None
    predictor = Predictor(None, device=device, max_nodes=10**12)
    predictor.predict(cube(1000), estimate=False)          # warm-up: kernels, CUDA context
    mesh = cube(n_nodes)
    mesh.boundary_mask
    result, seconds = timed(lambda: predictor.predict(mesh, estimate=False), device)
    target = f"{predictor.checkpoint.fields.targets[0]}_pred"
    return mesh.n_points / seconds, np.asarray(result.mesh.point_data[target], dtype=np.float64)


def predict_rows(sizes: list[int], cpu_max_nodes: int) -> list[list[str]]:
    rows = []
    for size in sizes:
        rates, fields = {}, {}
        for device in devices():
            rates[device], fields[device] = predict_rate(size, device, cpu_max_nodes)
        check = ""
        if fields.get("cpu") is not None and fields.get("cuda") is not None:
            check = f"rel. diff {_relative(fields['cuda'], fields['cpu']):.1e}"
        rows.append(["predict nodes/s", f"{round(size ** (1 / 3)) ** 3:,} nodes", "default model", *_cells(rates),
                     check or ("cpu skipped (> --cpu-max-nodes)" if rates["cpu"] is None else "")])
    return rows


# ---------------------------------------------------------------- train
def training_batch(data, batch_size: int, model):
    """One fixed batch of the sample graphs of ``data`` (TrainingData) built for ``model``."""
    from torch_geometric.data import Batch

    from meshop.graph import GraphSettings, build_graph

    meshes = (data.meshes["train"] + data.meshes["val"])[:batch_size]
    return Batch.from_data_list([build_graph(m, data.fields, GraphSettings(), prepare=model.prepare,
                                             mesh_graph=model.uses_mesh_graph) for m in meshes])


def train_rate(name: str, device: str, compiled: bool, steps: int, batch_size: int) -> tuple[float, float]:
    """(samples/s, loss of the first step) of model ``name`` trained on one fixed batch."""
    from meshop import models
    from meshop.graph import decode, feature_count
    from meshop.metrics import relative_l2
    from meshop.training.data import load_training_data

    data = load_training_data(SAMPLES)
    fields = data.fields
    torch.manual_seed(0)
    model = models.get(name, feature_count(fields, data.dim), fields.channels(fields.targets), data.dim)
    batch = training_batch(data, batch_size, model)
    model, batch = model.to(device), batch.to(device)
    forward = torch.compile(model) if compiled else model
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step() -> float:
        optimizer.zero_grad(set_to_none=True)
        loss = relative_l2(decode(forward(batch), batch, fields), batch.y, batch.batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        return loss.item()

    first = step()
    step()                                                   # warm-up (compiling happens here)
    _, seconds = timed(lambda: [step() for _ in range(steps)], device)
    return steps * batch.num_graphs / seconds, first


def train_rows(names: list[str], compile_too: bool, steps: int, batch_size: int) -> list[list[str]]:
    rows = []
    for name in names:
        eager = {}
        for compiled in [False, True] if compile_too else [False]:
            rates, losses = {}, {}
            for device in devices():
                try:
                    rates[device], losses[device] = train_rate(name, device, compiled, steps, batch_size)
                except Exception as err:                  # a compile failure is a result, not a crash
                    rates[device], losses[device] = f"failed: {type(err).__name__}", None
            if not compiled:
                eager = losses
            rows.append(["train samples/s", f"batch {batch_size}", f"{name}{' compiled' if compiled else ''}",
                         *_cells(rates), _train_check(losses, eager, compiled)])
    return rows


def _train_check(losses: dict, eager: dict, compiled: bool) -> str:
    if compiled and losses["cpu"] is not None and eager.get("cpu") is not None:
        return f"loss vs eager {abs(losses['cpu'] - eager['cpu']) / abs(eager['cpu']):.1e}"
    if losses.get("cuda") is not None and losses["cpu"] is not None:
        return f"loss cuda vs cpu {abs(losses['cuda'] - losses['cpu']) / abs(losses['cpu']):.1e}"
    return ""


# ---------------------------------------------------------------- particles
def particle_step(name: str, n: int, device: str) -> tuple[float, np.ndarray]:
    """(steps/s, positions after the step) of a published-size ``name`` on an ``n``-particle cloud."""
    from lagrangian import cloud, published

    from meshop.checkpoint import load
    from meshop.prediction import bundled_models

    template = load(bundled_models()["mpm2d"]).model
    torch.manual_seed(0)
    model = published(name, template).to(device)
    data, start = cloud(n, model.dim, model.history)
    data, start = data.to(device), start.to(device)
    with torch.no_grad():
        plan = model.rollout_plan(data, start)
        model.step(data, start, plan)                                # warm-up: kernels, caches
        moved, seconds = timed(lambda: model.step(data, start, plan), device, repeat=3)
    return 1.0 / seconds, moved.cpu().numpy()


def particle_rows(sizes: list[int], cpu_max: int) -> list[list[str]]:
    rows = []
    for n in sizes:
        for name in ("gns", "giorom"):
            rates, moved = {}, {}
            for device in devices():
                if device == "cpu" and n > cpu_max:
                    rates[device], moved[device] = None, None
                    continue
                rates[device], moved[device] = particle_step(name, n, device)
            check = ""
            if moved.get("cpu") is not None and moved.get("cuda") is not None:
                check = f"max |dx| {np.abs(moved['cuda'] - moved['cpu']).max():.1e} m"
            rows.append(["rollout steps/s", f"{n:,} particles", f"{name} published", *_cells(rates),
                         check or ("cpu skipped (> --cpu-max-particles)" if rates["cpu"] is None else "")])
    return rows


# ---------------------------------------------------------------- scatter
def scatter_rate(reduce: str, messages: int, device: str, library: str) -> tuple[float, torch.Tensor]:
    """(messages/s of forward + backward, output) of one scatter implementation."""
    from torch_geometric.utils import scatter

    generator = torch.Generator().manual_seed(0)
    nodes = max(1, messages // 16)
    index = torch.randint(0, nodes, (messages,), generator=generator).to(device)
    src = torch.randn(messages, 64, generator=generator).to(device).requires_grad_(True)
    if library == "torch-scatter":
        import torch_scatter

        function = lambda: torch_scatter.scatter(src, index, 0, dim_size=nodes, reduce=reduce)  # noqa: E731
    else:
        function = lambda: scatter(src, index, 0, dim_size=nodes, reduce=reduce)  # noqa: E731

    def forward_backward():
        src.grad = None
        out = function()
        out.sum().backward()
        return out.detach()

    forward_backward()
    out, seconds = timed(forward_backward, device, repeat=3)
    return messages / seconds, out.cpu()


def scatter_rows(messages: int) -> list[list[str]]:
    try:
        import torch_scatter  # noqa: F401
        libraries = ["native", "torch-scatter"]
    except ImportError:
        libraries = ["native"]
    rows = []
    for reduce in ("sum", "max"):
        outputs = {}
        for library in libraries:
            rates = {}
            for device in devices():
                rates[device], outputs[library, device] = scatter_rate(reduce, messages, device, library)
            check = ""
            if library == "torch-scatter":
                check = f"vs native max diff {(outputs[library, 'cpu'] - outputs['native', 'cpu']).abs().max():.1e}"
            elif "cuda" in rates:
                check = f"cuda vs cpu max diff {(outputs[library, 'cuda'] - outputs[library, 'cpu']).abs().max():.1e}"
            rows.append(["scatter messages/s", f"{messages:,} x 64", f"{reduce} {library}", *_cells(rates), check])
        if len(libraries) == 1:
            rows.append(["scatter messages/s", f"{messages:,} x 64", f"{reduce} torch-scatter",
                         "not installed", "", "", "pip install 'meshop[scatter]'"])
    return rows


# ---------------------------------------------------------------- table
def _cells(rates: dict) -> list[str]:
    """cpu, cuda and cuda/cpu cells of one row."""
    def cell(value):
        if value is None:
            return "skipped"
        if isinstance(value, str):
            return value
        return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"

    cpu, cuda = rates.get("cpu"), rates.get("cuda")
    ratio = f"{cuda / cpu:.1f}x" if isinstance(cpu, float) and isinstance(cuda, float) else ""
    return [cell(cpu), cell(cuda) if "cuda" in rates else "", ratio]


def _relative(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def print_table(rows: list[list[str]]) -> None:
    header = ["measure", "size", "variant", "cpu", "cuda", "cuda / cpu", "check"]
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, ["-" * w for w in widths], *rows]:
        print("| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths)) + " |")


def main() -> None:
    from meshop import models

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10k and 100k nodes, gno and mgno, 200k messages")
    parser.add_argument("--sizes", type=int, nargs="*", help="prediction mesh sizes [1M 10M]; none: no rows")
    parser.add_argument("--cpu-max-nodes", type=int, default=2_000_000, help="skip CPU prediction above this")
    parser.add_argument("--models", nargs="*", help="models to train [the steady ones]; none: no rows")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--particles", type=int, nargs="*", help="particle counts [10k 100k; 2k with --quick]")
    parser.add_argument("--cpu-max-particles", type=int, default=20_000, help="skip CPU particle steps above this")
    parser.add_argument("--messages", type=int, help="scatter messages [4M; 200k with --quick; 0: no rows]")
    parser.add_argument("--no-compile", action="store_true")
    args = parser.parse_args()

    def chosen(value, quick, full):
        return value if value is not None else (quick if args.quick else full)

    sizes = chosen(args.sizes, [10_000, 100_000], [1_000_000, 10_000_000])
    names = chosen(args.models, ["gno", "mgno"], [m for m in models.available() if m in STEADY_MODELS])
    particles = chosen(args.particles, [2_000], [10_000, 100_000])
    messages = chosen(args.messages, 200_000, 4_000_000)

    print(f"machine: {machine()}")
    print(device_line())
    rows = predict_rows(sizes, args.cpu_max_nodes)
    rows += train_rows(names, not args.no_compile, args.steps, args.batch)
    rows += particle_rows(particles, args.cpu_max_particles)
    rows += scatter_rows(messages) if messages else []
    print_table(rows)


if __name__ == "__main__":
    main()
