"""Transient heat: a time-stepper's rollout against the finite elements on the same meshes.

Rows:
- the test split of a heat3d-transient dataset: each trajectory rolled out from its frame 0 with
  its own inputs, relative L2 of T against the FEM frames at steps 10, 50 and 100;
- parts unlike the training families (benchmarks/default_model.py's sphere, torus, ...), cooling
  from a smooth initial temperature with surfaces held at 0 K or convecting (Bi = 2), simulated
  by meshop.data.fem_transient and rolled out by the model;
- speed: the model's time per step (graphs and operators built once, outside the timing)
  against the FEM's (BDF2, Jacobi-preconditioned CG, set up once: printed apart) on cubes of
  ~10k and ~100k nodes.

A model with a physics term is also measured with its learned correction switched off (the
physics term alone); ``--baseline`` adds another checkpoint (e.g. the previous bundled one).

    python benchmarks/transient.py [--model CKPT] [--baseline CKPT] [--data data/heat3d-transient] [--steps 100]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from default_model import unlike_parts
from machine import machine

import meshop
from meshop.checkpoint import load
from meshop.data.fem_transient import HeatSimulation
from meshop.data.grf import smooth_random_field
from meshop.prediction import bundled_models
from meshop.rollout import rollout

MARKS = (10, 50, 100)


def model_inputs(traj: meshop.Trajectory) -> meshop.Trajectory:
    """The FEM's trajectory with the model's input fields: the held-surface mask becomes the
    per-part ``surfaces_held`` flag (as :mod:`meshop.data.problems.heat3d_transient` writes)."""
    held = traj.mesh.point_data.pop("dirichlet_mask")
    traj.mesh.point_data["surfaces_held"] = np.full(traj.n_points, float(held.max() > 0.5))
    return traj


def reference(mesh: meshop.Mesh, boundary: str, steps: int, frame_dt: float, stride: int,
              rng: np.random.Generator) -> tuple[meshop.Trajectory, float]:
    """An FEM cooling trajectory of ``mesh`` and the FEM's seconds per solver step."""
    surface = mesh.boundary_mask.astype(float)
    d = float(mesh.distance_to_boundary.max())
    inputs = {"source": 0.0, "ambient_temperature": 0.0,
              "heat_transfer": surface * 2.0 / d if boundary == "robin" else 0.0 * surface,
              "dirichlet_mask": surface if boundary == "dirichlet" else 0.0 * surface}
    initial = 1.0 + 0.5 * smooth_random_field(mesh.points, rng)
    simulation = HeatSimulation(mesh, frame_dt / stride, inputs)
    began = time.perf_counter()
    traj = simulation.run(initial, steps, stride)
    return model_inputs(traj), (time.perf_counter() - began) / (steps * stride)


def errors_at(errors: np.ndarray, marks=MARKS) -> list[str]:
    return [f"{100 * errors[m]:.2f} %" if m < len(errors) else "-" for m in marks]


def normalized(errors: np.ndarray, reference: meshop.Trajectory) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame errors rescaled to the initial state's norm and to the trajectory's largest
    norm instead of the frame's own: a cooling part's T decays to ~0 (a sphere to 1e-4 of its
    start by τ = 1), where relative L2 per frame divides tiny absolute errors by a vanishing
    norm; a part heated from T∞ ≈ 0 starts with a tiny norm, where the initial one does."""
    norms = np.linalg.norm(reference.fields["temperature"][: len(errors)], axis=1)
    absolute = errors * norms
    return absolute / max(norms[0], 1e-300), absolute / max(norms.max(), 1e-300)


def evaluate(models: dict, traj: meshop.Trajectory, steps: int) -> dict[str, tuple]:
    """Model name -> (per-frame, over the initial norm, over the largest norm) errors of a rollout."""
    out = {}
    for name, ckpt in models.items():
        errors = rollout(ckpt, traj, steps).errors["temperature"]
        out[name] = (errors, *normalized(errors, traj))
    return out


def row(label: str, nodes, scenario: str, errors: tuple) -> str:
    return f"| {label} | {nodes} | {scenario} | " + " | ".join(sum((errors_at(e) for e in errors), [])) + " |"


HEADER = ("| trajectory | nodes | scenario | " + " | ".join(f"{norm} {m}" for norm in ("frame", "initial", "max")
                                                       for m in MARKS) + " |\n|" + "---|" * 12)


def physics_only(ckpt):
    """The checkpoint with its learned correction switched off (gate 0): the physics term alone."""
    import copy

    alone = copy.copy(ckpt)
    alone.model = copy.deepcopy(ckpt.model)
    alone.model.gate.data.zero_()
    return alone


def cube(n_side: int) -> meshop.Mesh:
    from meshop.meshing import gmsh_session, mesh_arrays

    with gmsh_session("cube") as gmsh:
        gmsh.model.occ.addBox(0, 0, 0, 0.1, 0.1, 0.1)
        gmsh.model.occ.synchronize()
        gmsh.option.setNumber("Mesh.MeshSizeMax", 0.1 / n_side)
        gmsh.model.mesh.generate(3)
        points, tets = mesh_arrays(gmsh, 3)
    return meshop.Mesh(points, {"tetra": tets})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="checkpoint (default: the bundled heat3d-transient)")
    parser.add_argument("--baseline", default=None, help="another checkpoint measured in the same run (e.g. the previous bundled one)")
    parser.add_argument("--data", default="data/heat3d-transient", help="dataset folder with a test split")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--sizes", default="20,50", help="cube cells per side for the speed rows (~10k, ~100k nodes)")
    parser.add_argument("--device", default="cpu", help="where the models step in the speed rows (cpu, cuda); the FEM runs on the CPU")
    parser.add_argument("--speed-only", action="store_true", help="only the speed rows (no dataset needed)")
    args = parser.parse_args()
    ckpt = load(args.model or bundled_models()["heat3d-transient"])
    models = {"model": ckpt}
    if getattr(ckpt.model, "physics", None):
        models["physics term alone"] = physics_only(ckpt)
    if args.baseline:
        models["baseline"] = load(args.baseline)
    frame_dt, stride = ckpt.dynamics["frame_dt"], ckpt.dynamics.get("stride") or 2
    print(machine())
    print(f"model {args.model or 'heat3d-transient (bundled)'}: {ckpt.model.n_parameters()} parameters, "
          f"frame dt {frame_dt} (d²/α), {args.steps} steps" + (f"; baseline {args.baseline}" if args.baseline else ""))
    if args.speed_only:
        return speed(models, frame_dt, stride, [int(s) for s in args.sizes.split(",")], device=args.device)
    print("\nrelative L2 of T per frame (own norm) | the same error over the initial norm | over the trajectory's "
          "largest norm; rows: the model\n\n" + HEADER)
    from meshop.data.dataset import read_manifest

    split, unlike = [], []
    for name in read_manifest(args.data)["split"]["test"]:
        traj = meshop.read_series(f"{args.data}/{name}")
        split.append(evaluate(models, traj, min(args.steps, traj.n_frames - 1)))
        print(row(f"test {name}", traj.n_points, f"{traj.metadata.get('scenario')}, {traj.metadata.get('boundary')}",
                  split[-1]["model"]))
    rng = np.random.default_rng(0)
    for name, mesh in unlike_parts().items():
        for boundary in ("dirichlet", "robin"):
            traj, _ = reference(mesh, boundary, args.steps, frame_dt, stride, rng)
            unlike.append(evaluate(models, traj, args.steps))
            print(row(name, mesh.n_points, f"cooling, {boundary}", unlike[-1]["model"]))
    print("\nmeans\n\n" + HEADER.replace("trajectory", "rows").replace("nodes", "model"))
    for label, runs in (("test split", split), ("unlike parts", unlike)):
        for model in models:
            means = tuple(np.mean([r[model][i] for r in runs], axis=0) for i in range(3))
            print(row(f"**{label}**", model, "", means))
    speed(models, frame_dt, stride, [int(s) for s in args.sizes.split(",")], device=args.device)


def speed(models: dict, frame_dt: float, stride: int, sizes: list[int], steps: int = 10, device: str = "cpu") -> None:
    """Seconds per frame of each model on ``device`` (graphs and operators built once, outside the
    timing; the states come back to the host at the end, which waits for the device) and of the
    FEM on the CPU (BDF2, CG preconditioned by the diagonal: the fastest measured here)."""
    for ckpt in models.values():
        ckpt.model.to(device)                    # last in the run: the accuracy rows ran on the CPU
    print(f"\nmodels on {device}" + (f" ({_device_name(device)})" if device != "cpu" else "") +
          "\n\n| cube | nodes | model | model s/step | FEM s/solver step | FEM s/frame | FEM set-up s | speed-up per frame |"
          "\n|---|---|---|---|---|---|---|---|")
    for n_side in sizes:
        mesh = cube(n_side)
        began = time.perf_counter()
        simulation = HeatSimulation(mesh, frame_dt / stride, {"dirichlet_mask": mesh.boundary_mask.astype(float)},
                                    solver="cg")        # Jacobi-preconditioned CG (docs/datasets.md)
        setup = time.perf_counter() - began
        traj = model_inputs(simulation.run(np.ones(mesh.n_points), 2, stride))
        fem_step = _fem_step_seconds(simulation, stride)
        timed = {name: rollout(ckpt, traj, steps, device=device).seconds_per_step
                 for name, ckpt in models.items() if name != "physics term alone"}   # gate 0 still runs the MGNO
        if "physics term alone" in models:
            timed["physics term alone"] = _physics_seconds(traj.mesh, frame_dt, steps, device)
        for name, model_step in timed.items():
            print(f"| {n_side}³ | {mesh.n_points} | {name} | {model_step:.3f} | {fem_step:.3f} | {fem_step * stride:.3f} | "
                  f"{setup:.2f} | {fem_step * stride / model_step:.1f}x |", flush=True)


def _device_name(device: str) -> str:
    import torch

    return torch.cuda.get_device_name(device) if device.startswith("cuda") else device


def _physics_seconds(mesh: meshop.Mesh, frame_dt: float, steps: int, device: str = "cpu") -> float:
    """Seconds per frame of the physics term alone on ``device`` (its matrices assembled and
    moved there before the timing)."""
    import torch
    from torch_geometric.data import Data

    from meshop.fields import physical_length
    from meshop.models.heat_physics import HeatOperators, heat_operator

    data = Data(**heat_operator(mesh, physical_length(mesh)))
    data.num_nodes = mesh.n_points
    operators = HeatOperators(data.to(device))
    state, off = torch.ones(mesh.n_points, 1, device=device), torch.zeros(mesh.n_points, 1, device=device)
    began = time.perf_counter()
    with torch.no_grad():
        for _ in range(steps):
            state = operators.frame(state, off, frame_dt)
    state.cpu()                                           # waits for the device
    return (time.perf_counter() - began) / steps


def _fem_step_seconds(simulation: HeatSimulation, stride: int, frames: int = 5) -> float:
    began = time.perf_counter()
    simulation.run(np.ones(simulation.mesh.n_points), frames, stride)
    return (time.perf_counter() - began) / (frames * stride)


if __name__ == "__main__":
    main()
