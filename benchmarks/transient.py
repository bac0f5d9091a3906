"""Transient heat: a time-stepper's rollout against the finite elements on the same meshes.

Rows:
- the test split of a heat3d-transient dataset: each trajectory rolled out from its frame 0 with
  its own inputs, relative L2 of T against the FEM frames at steps 10, 50 and 100;
- parts unlike the training families (benchmarks/default_model.py's sphere, torus, ...), cooling
  from a smooth initial temperature with surfaces held at 0 K or convecting (Bi = 2), simulated
  by meshop.data.fem_transient and rolled out by the model;
- speed: the model's time per step against the FEM's (BDF2, factorized once: the factorization
  is printed apart) on unit cubes of ~10k and ~100k nodes.

    python benchmarks/transient.py [--model CKPT] [--data data/heat3d-transient] [--steps 100]
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


def initial_scaled(errors: np.ndarray, reference: meshop.Trajectory) -> np.ndarray:
    """Per-frame errors relative to the initial state's norm instead of the frame's own: a cooling
    part's T decays to ~0 (a sphere to 1e-4 of its start by τ = 1), where relative L2 per frame
    measures tiny absolute errors against a vanishing norm."""
    temperature = reference.fields["temperature"]
    norms = np.linalg.norm(temperature[: len(errors)], axis=1)
    return errors * norms / max(norms[0], 1e-300)


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
    parser.add_argument("--data", default="data/heat3d-transient", help="dataset folder with a test split")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--sizes", default="20,44", help="cube cells per side for the speed rows (~10k, ~100k nodes)")
    args = parser.parse_args()
    ckpt = load(args.model or bundled_models()["heat3d-transient"])
    frame_dt, stride = ckpt.dynamics["frame_dt"], ckpt.dynamics.get("stride") or 2
    print(machine())
    print(f"model {args.model or 'heat3d-transient (bundled)'}: {ckpt.model.n_parameters()} parameters, "
          f"frame dt {frame_dt} (d²/α), {args.steps} steps")
    print("\nrelative L2 per frame (own norm) | error over the initial state's norm")
    print("\n| trajectory | nodes | scenario | step 10 | step 50 | step 100 | step 10 | step 50 | step 100 |"
          "\n|---|---|---|---|---|---|---|---|---|")
    split = []
    from meshop.data.dataset import read_manifest

    manifest = read_manifest(args.data)
    for name in manifest["split"]["test"]:
        traj = meshop.read_series(f"{args.data}/{name}")
        result = rollout(ckpt, traj, min(args.steps, traj.n_frames - 1))
        errors = result.errors["temperature"]
        split.append((errors, initial_scaled(errors, traj)))
        print(f"| test {name} | {traj.n_points} | {traj.metadata.get('scenario')}, {traj.metadata.get('boundary')} | "
              + " | ".join(errors_at(errors) + errors_at(split[-1][1])) + " |")
    if split:
        print("| **test split mean** | | | " + " | ".join(errors_at(np.mean([e for e, _ in split], axis=0))
                                                         + errors_at(np.mean([i for _, i in split], axis=0))) + " |")
    rng = np.random.default_rng(0)
    unlike = []
    for name, mesh in unlike_parts().items():
        for boundary in ("dirichlet", "robin"):
            traj, _ = reference(mesh, boundary, args.steps, frame_dt, stride, rng)
            errors = rollout(ckpt, traj, args.steps).errors["temperature"]
            unlike.append((errors, initial_scaled(errors, traj)))
            print(f"| {name} | {mesh.n_points} | cooling, {boundary} | "
                  + " | ".join(errors_at(errors) + errors_at(unlike[-1][1])) + " |")
    print("| **unlike parts mean** | | | " + " | ".join(errors_at(np.mean([e for e, _ in unlike], axis=0))
                                                      + errors_at(np.mean([i for _, i in unlike], axis=0))) + " |")

    print("\n| cube | nodes | model s/step | FEM s/solver step | FEM s/frame | FEM factorization s | speed-up per frame |"
          "\n|---|---|---|---|---|---|---|")
    for n_side in (int(s) for s in args.sizes.split(",")):
        mesh = cube(n_side)
        began = time.perf_counter()
        simulation = HeatSimulation(mesh, frame_dt / stride, {"dirichlet_mask": mesh.boundary_mask.astype(float)},
                                    solver="cg")        # the fastest FEM step measured here (docs/datasets.md)
        factorization = time.perf_counter() - began
        traj = model_inputs(simulation.run(np.ones(mesh.n_points), 5, stride))
        fem_step = _fem_step_seconds(simulation, stride)
        result = rollout(ckpt, traj, 5)
        model_step = result.seconds_per_step
        print(f"| {n_side}³ | {mesh.n_points} | {model_step:.3f} | {fem_step:.3f} | {fem_step * stride:.3f} | "
              f"{factorization:.2f} | {fem_step * stride / model_step:.1f}x |")


def _fem_step_seconds(simulation: HeatSimulation, stride: int, frames: int = 5) -> float:
    began = time.perf_counter()
    simulation.run(np.ones(simulation.mesh.n_points), frames, stride)
    return (time.perf_counter() - began) / (frames * stride)


if __name__ == "__main__":
    main()
