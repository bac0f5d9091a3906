"""`MPMSolver`: particles in a box, stepped by the warp MLS-MPM kernels of :mod:`.kernels`.

Units are SI (m, s, kg, Pa). On warp's CPU backend kernels run on one thread in launch order, so
the atomic scatter of particle-to-grid sums in a fixed order and a run is bit-for-bit
reproducible; on CUDA the kernels are built with warp's run-to-run deterministic atomics.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...errors import MeshError
from .kernels import ELASTIC, FLUID, PAD, PLASTICINE, SAND, Constants, mpm_kernels

MATERIALS = {ELASTIC: "elastic", FLUID: "fluid", SAND: "sand", PLASTICINE: "plasticine"}


@dataclass(frozen=True)
class MaterialParameters:
    """Constitutive constants (SI). Young's modulus E (Pa), Poisson ratio ν, density ρ (kg/m³)."""

    elastic_E: float = 1.0e5
    elastic_nu: float = 0.3
    elastic_density: float = 1000.0
    fluid_bulk: float = 4.0e5           # K (Pa): sound speed sqrt(K/ρ) = 20 m/s
    fluid_gamma: float = 7.0
    fluid_viscosity: float = 1.0e-3     # water (Pa s)
    fluid_density: float = 1000.0
    sand_E: float = 3.5e5               # Klár et al. 2016
    sand_nu: float = 0.3
    sand_density: float = 1600.0
    sand_friction_deg: float = 30.0     # internal friction angle φ
    plastic_E: float = 2.0e5
    plastic_nu: float = 0.3
    plastic_density: float = 1000.0
    plastic_yield: float = 2.0e3        # von Mises σ_y (Pa)

    def elasticity(self, material: int) -> tuple[float, float, float]:
        """(E, ν, ρ) of ``material``; water has no shear modulus (ν = 0.5 placeholder, E unused)."""
        name = {ELASTIC: "elastic", SAND: "sand", PLASTICINE: "plastic"}.get(material)
        if name is None:
            return 0.0, 0.0, self.fluid_density
        return getattr(self, f"{name}_E"), getattr(self, f"{name}_nu"), getattr(self, f"{name}_density")

    def wave_speed(self, material: int) -> float:
        """Fastest elastic (P-wave) or sound speed in ``material`` (m/s), for the time step."""
        if material == FLUID:
            return float(np.sqrt(self.fluid_bulk / self.fluid_density))
        E, nu, rho = self.elasticity(material)
        return float(np.sqrt(E * (1 - nu) / ((1 + nu) * (1 - 2 * nu)) / rho))

    def constants(self) -> Constants:
        c = Constants()
        c.fluid_bulk, c.fluid_gamma, c.fluid_viscosity = self.fluid_bulk, self.fluid_gamma, self.fluid_viscosity
        sin_phi = np.sin(np.radians(self.sand_friction_deg))
        c.sand_alpha = float(np.sqrt(2.0 / 3.0) * 2.0 * sin_phi / (3.0 - sin_phi))
        c.plastic_yield = self.plastic_yield
        return c


def _warp(device: str | None):
    """warp, initialised (configured by :mod:`.kernels`), and the device: CUDA when present for None."""
    import warp as wp

    wp.init()
    if device in (None, "auto"):
        device = "cuda" if wp.is_cuda_available() else "cpu"
    if str(device).startswith("cuda") and not wp.is_cuda_available():
        raise MeshError(f"device '{device}' was asked for, but warp finds no CUDA GPU (use 'cpu' or 'auto').")
    return wp, device


class MPMSolver:
    """MLS-MPM on particles inside the box ``[lower, upper]`` (m) with walls on every side.

    Args:
        positions ``(N, d)`` m, velocities ``(N, d)`` m/s, materials ``(N,)`` ids (see MATERIALS),
        volumes ``(N,)`` m³ (initial particle volumes), lower/upper ``(d,)`` box corners, dx grid
        spacing (m), dt time step (s), gravity ``(d,)`` m/s², walls "sticky" (nodes in a wall
        stop), "slip" (the velocity into a wall is removed, the particles may leave it) or
        "sticky floor" (the lower wall of the last axis sticky, the others slip),
        parameters, device ("cpu", "cuda", or None: CUDA when present).
    """

    def __init__(self, positions, velocities, materials, volumes, lower, upper, dx: float, dt: float,
                 gravity=None, walls: str = "slip", parameters: MaterialParameters | None = None,
                 device: str | None = "cpu"):
        self.wp, self.device = _warp(device)
        wp = self.wp
        positions = np.asarray(positions, dtype=np.float64)
        self.n, self.dim = positions.shape
        self.lower, self.upper = np.asarray(lower, float), np.asarray(upper, float)
        self.dx, self.dt = float(dx), float(dt)
        self.parameters = parameters or MaterialParameters()
        self.origin = self.lower - PAD * self.dx                     # grid node 0
        cells = np.ceil((self.upper - self.lower) / self.dx - 1e-9).astype(int)
        self.shape = np.ones(3, dtype=int)
        self.shape[:self.dim] = cells + 2 * PAD + 1
        masks = {"sticky": (1 << 2 * self.dim) - 1, "slip": 0, "sticky floor": 1 << 2 * (self.dim - 1)}
        if walls not in masks:
            raise MeshError(f"walls must be one of {', '.join(masks)}, not '{walls}'.")
        self.sticky = masks[walls]
        self.gravity = np.zeros(self.dim) if gravity is None else np.asarray(gravity, float)
        self.kernels = mpm_kernels(self.dim)
        self.constants = self.parameters.constants()

        materials = np.asarray(materials, dtype=np.int32)
        E, nu, rho = np.array([self.parameters.elasticity(int(m)) for m in range(4)]).T[:, materials]
        volumes = np.asarray(volumes, dtype=np.float64)
        vec, mat = wp.types.vector(self.dim, float), wp.types.matrix((self.dim, self.dim), float)

        def array(values, dtype):
            return wp.array(np.ascontiguousarray(values, dtype=np.float32 if dtype is not wp.int32 else np.int32),
                            dtype=dtype, device=self.device)

        self.x = array(positions - self.origin, vec)
        self.v = array(velocities, vec)
        self.C = array(np.zeros((self.n, self.dim, self.dim)), mat)
        self.F = array(np.broadcast_to(np.eye(self.dim), (self.n, self.dim, self.dim)), mat)
        self.material = array(materials, wp.int32)
        self.mass = array(rho * volumes, float)
        self.volume = array(volumes, float)
        self.mu = array(E / (2 * (1 + nu)), float)
        self.lam = array(E * nu / np.maximum((1 + nu) * (1 - 2 * nu), 1e-12), float)
        nodes = int(np.prod(self.shape))
        self.grid_mv = wp.zeros(nodes, dtype=vec, device=self.device)
        self.grid_m = wp.zeros(nodes, dtype=float, device=self.device)
        self.grid_v = wp.zeros(nodes, dtype=vec, device=self.device)
        self._upper_clamp = vec(*((self.shape[:self.dim] - 2) * self.dx))

    def step(self, substeps: int = 1) -> None:
        """Advance ``substeps`` time steps of ``dt``."""
        wp = self.wp
        p2g, grid_update, g2p = self.kernels
        ny, nz = int(self.shape[1]), int(self.shape[2])
        vec = wp.types.vector(self.dim, float)
        gravity, shape = vec(*self.gravity), wp.vec3i(*self.shape)
        for _ in range(substeps):
            self.grid_mv.zero_()
            self.grid_m.zero_()
            wp.launch(p2g, self.n, device=self.device,
                      inputs=[self.x, self.v, self.C, self.F, self.material, self.mass, self.volume,
                              self.mu, self.lam, self.constants, self.dx, self.dt, ny, nz,
                              self.grid_mv, self.grid_m])
            wp.launch(grid_update, self.grid_m.shape[0], device=self.device,
                      inputs=[self.grid_mv, self.grid_m, gravity, self.dt, shape, self.sticky, self.grid_v])
            wp.launch(g2p, self.n, device=self.device,
                      inputs=[self.grid_v, self.material, self.mu, self.lam, self.constants, self.dx,
                              self.dt, ny, nz, self._upper_clamp, self.x, self.v, self.C, self.F])

    # ------------------------------------------------------------------ state, as numpy (SI, box frame)
    @property
    def positions(self) -> np.ndarray:
        return self.x.numpy().astype(np.float64) + self.origin

    @property
    def velocities(self) -> np.ndarray:
        return self.v.numpy().astype(np.float64)

    @property
    def deformation(self) -> np.ndarray:
        """``(N, d, d)`` deformation gradients F."""
        return self.F.numpy().astype(np.float64)

    @property
    def masses(self) -> np.ndarray:
        return self.mass.numpy().astype(np.float64)

    @property
    def grid_mass(self) -> np.ndarray:
        """Node masses of the last particle-to-grid transfer (kg), flat."""
        return self.grid_m.numpy().astype(np.float64)

    def elastic_energy(self) -> float:
        """Neo-Hookean stored energy Σ V0 ψ(F) (J; J/m in 2D) of the elastic particles."""
        F, elastic = self.deformation, self.material.numpy() == ELASTIC
        mu, lam = self.mu.numpy()[elastic], self.lam.numpy()[elastic]
        F = F[elastic]
        log_j = np.log(np.linalg.det(F))
        psi = 0.5 * mu * (np.einsum("nij,nij->n", F, F) - self.dim) - mu * log_j + 0.5 * lam * log_j ** 2
        return float(np.sum(self.volume.numpy()[elastic] * psi))

    def kinetic_energy(self) -> float:
        return float(0.5 * np.sum(self.masses * np.sum(self.velocities ** 2, axis=1)))


__all__ = ["MATERIALS", "MaterialParameters", "MPMSolver", "ELASTIC", "FLUID", "SAND", "PLASTICINE"]
