"""``heat3d-transient``: ρc ∂T/∂t = ∇·(k∇T) + q in random 3D mechanical parts, over time.

Parts are heat3d's (:func:`meshop.data.shapes.random_part_3d`: plates, blocks, L-brackets,
flanges, shafts from 1 cm to 2 m). Units: coordinates in metres, temperatures in K, and time τ
in units of the diffusion time ``d²/α`` (α = k/ρc, d the part's inradius, its largest distance to
the boundary), so a 1 cm and a 2 m part of the same shape evolve alike frame by frame. In these
units the equation is ``∂T/∂τ = d² (ΔT + q/k)`` (see :mod:`meshop.data.fem_transient`, which
solves it: P1 elements, BDF2 steps). Frames are ``frame_dt`` = 0.01 apart (``stride`` = 4 solver
steps each), 101 frames by default: τ from 0 to 1, over which a part cooling through held
surfaces keeps 1-5 % of its initial excess temperature (L2) and one cooling by convection
(Biot 0.5-20) 0.1-6 % at Biot above 4, more at low Biot (measured on ten samples).

Each sample draws, with equal odds, a scenario and a boundary kind:

``cooling``  the part starts at T∞ + a exp(φ/2) (φ a unit smooth random field, a = 10^U(-0.5, 0.5) K)
             and cools, no source;
``heating``  the part starts at T∞; a source q/k = s exp(ψ/2) > 0, s = 2 · 10^U(-0.5, 0.5) / d² K/m²
             (a steady interior rise ~ s d²/2 ~ 1 K, as in heat3d), switches on at a frame time
             t_on = j · frame_dt, j uniform in 0..(frames - 1) // 4;

``dirichlet`` every surface node is held at T∞ (the quench happens at τ = 0: the initial
              state holds T∞ on the surface already);
``robin``     every surface convects, -k ∂T/∂n = h (T - T∞), with Biot number Bi = h d / k drawn
              log-uniformly in [0.5, 20], i.e. β = h/k = Bi / d on the surface nodes.

T∞ ~ U(-0.5, 0.5) K. A step maps (T, q, T∞) linearly to the next T, and T - T∞ does not depend
on T∞ (no ``LINEAR_INPUTS``: the state is an input too, which the steady amplitude scaling of
:mod:`meshop.fields` does not know).
"""

from __future__ import annotations

import numpy as np

from ...errors import MeshError
from ...mesh import Mesh
from ...trajectory import Trajectory
from ..fem_transient import HeatSimulation
from ..grf import smooth_random_field
from ..shapes import random_part_3d

FIELDS = {
    "source": ("input", "q/k in K/m² while the source is on (0 when the scenario has none)"),
    "heat_transfer": ("input", "β = h/k in 1/m on convective (Robin) surface nodes, 0 elsewhere"),
    "ambient_temperature": ("input", "T∞ in K: the ambient of convective surfaces, the temperature "
                                     "of held (Dirichlet) ones"),
    "surfaces_held": ("input", "1 on every node when the surfaces are held at T∞ (Dirichlet), 0 when they "
                               "convect (Robin)"),
    "source_on": ("input", "per frame: fraction of the next frame interval during which the source is on"),
    "temperature": ("target", "T in K per frame (the evolving state; P1 finite elements, BDF2)"),
}
DEFAULTS = {"resolution": 3000, "frames": 101, "frame_dt": 0.01, "stride": 4, "scheme": "bdf2",
            "solver": "direct"}
LENGTH_POWERS = {"source": 2, "heat_transfer": 1}
#: what a part without these fields most likely means: no source, surfaces held at 0 K
INPUT_DEFAULTS = {"source": 0.0, "heat_transfer": 0.0, "ambient_temperature": 0.0, "surfaces_held": 1.0,
                  "source_on": 0.0}
#: the initial state a part without a temperature field gets: 1 K above a 0 K ambient (a quench)
INITIAL_DEFAULTS = {"temperature": 1.0}
#: where the state is known exactly: on boundary nodes of parts whose surfaces are held, T = T∞
HELD_BOUNDARY = {"state": "temperature", "mask": "surfaces_held", "value": "ambient_temperature"}
SCENARIOS = ("cooling", "heating")
BOUNDARIES = ("dirichlet", "robin")


def heat3d_transient_sample(rng: np.random.Generator, resolution: int = 3000, frames: int = 101,
                            frame_dt: float = 0.01, stride: int = 4, scheme: str = "bdf2",
                            solver: str = "direct", scenario: str | None = None,
                            boundary: str | None = None) -> tuple[Trajectory, dict]:
    """One heat3d-transient trajectory.

    Args:
        rng: random generator; draws the part, φ, ψ, then the scenario parameters (module docstring).
        resolution: target number of mesh nodes (within about 10 %).
        frames: number of frames, the initial state included; frame_dt: their spacing (units d²/α).
        stride: solver steps per frame; scheme, solver: see :class:`~meshop.data.fem_transient.HeatSimulation`.
        scenario, boundary: force ``cooling``/``heating`` and ``dirichlet``/``robin`` (drawn when None).

    Returns:
        ``(Trajectory, info)``: the tet mesh (metres) with the constant inputs as point fields,
        fields ``temperature`` and ``source_on`` ``(frames, N)``, metadata ``dt``, ``stride``,
        ``state``, ``inputs``, ``scheme``, ``t_on``, ``length_scale`` (d, m) and the scenario
        parameters; info: the part's description (heat3d's) and the scenario parameters.
    """
    if frames < 1 or stride < 1 or not frame_dt > 0:
        raise MeshError(f"heat3d-transient needs frames >= 1, stride >= 1 and frame_dt > 0, got {frames}, "
                        f"{stride}, {frame_dt}.")
    points, tets, part = random_part_3d(rng, target_nodes=resolution)
    mesh = Mesh(points, {"tetra": tets})
    phi, psi = smooth_random_field(points, rng), smooth_random_field(points, rng)
    drawn = {"scenario": str(rng.choice(SCENARIOS)), "boundary": str(rng.choice(BOUNDARIES)),
             "biot": float(np.exp(rng.uniform(np.log(0.5), np.log(20.0)))),
             "ambient_temperature": float(rng.uniform(-0.5, 0.5)),
             "initial_excess": float(10.0 ** rng.uniform(-0.5, 0.5)),
             "source_factor": float(10.0 ** rng.uniform(-0.5, 0.5)),
             "on_frame": int(rng.integers(0, (frames - 1) // 4 + 1))}
    scenario, boundary = scenario or drawn["scenario"], boundary or drawn["boundary"]
    d = float(mesh.distance_to_boundary.max())
    surface = mesh.boundary_mask.astype(np.float64)
    ambient = drawn["ambient_temperature"]
    heating = scenario == "heating"
    strength = 2.0 * drawn["source_factor"] / d ** 2 if heating else 0.0
    inputs = {"source": strength * np.exp(0.5 * psi),
              "heat_transfer": surface * drawn["biot"] / d if boundary == "robin" else 0.0 * surface,
              "ambient_temperature": np.full(mesh.n_points, ambient),
              "dirichlet_mask": surface if boundary == "dirichlet" else 0.0 * surface}
    initial = ambient + (0.0 if heating else drawn["initial_excess"] * np.exp(0.5 * phi))
    t_on = drawn["on_frame"] * frame_dt if heating else np.inf
    dt = frame_dt / stride
    trajectory = HeatSimulation(mesh, dt, inputs, length_scale=d, scheme=scheme, solver=solver).run(
        np.broadcast_to(initial, (mesh.n_points,)), frames - 1, stride, t_on)
    facts = {"scenario": scenario, "boundary": boundary,
             "biot": drawn["biot"] if boundary == "robin" else None, "ambient_temperature": ambient,
             "initial_excess": 0.0 if heating else drawn["initial_excess"],
             "source_strength": strength, "t_on": float(t_on) if heating else None,
             "frame_dt": float(frame_dt), "time_unit": "d²/α with d = length_scale (m)"}
    trajectory.metadata.update(facts)
    # the model is told the boundary kind by a per-part flag, which a part without fields can default
    held = trajectory.mesh.point_data.pop("dirichlet_mask")
    trajectory.mesh.point_data["surfaces_held"] = np.full(mesh.n_points, float(held.max() > 0.5))
    trajectory.metadata["inputs"] = [n if n != "dirichlet_mask" else "surfaces_held" for n in trajectory.metadata["inputs"]]
    part.pop("tries")
    return trajectory, {**part, **facts, "length_scale": d, "dt": dt, "stride": stride}
