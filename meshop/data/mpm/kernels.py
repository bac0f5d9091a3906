"""MLS-MPM kernels in warp (Hu et al. 2018): quadratic B-splines, APIC/MLS transfers, four materials.

One kernel set per dimension is generated from the same source by :func:`mpm_kernels` (warp
closures with ``wp.static``); warp compiles them once (JIT, cached on disk) and runs them on its
CPU backend or on CUDA. The grid is a flat array of ``nx * ny * nz`` nodes (``nz = 1`` in 2D),
node ``(i, j, k)`` at ``(i, j, k) * dx`` in the solver's frame, whose origin lies ``PAD`` cells
outside the box; nodes within ``PAD`` cells of a wall take the wall's boundary condition: sticky
(bit ``2 axis + side`` of ``sticky`` set, side 0 low, 1 high: the node stops) or slip (the velocity
into the wall is removed).

Stresses are Kirchhoff stresses τ (Pa): neo-Hookean for the elastic jelly, Hencky (St. Venant–
Kirchhoff on log strain) for sand and plasticine, Tait pressure plus Newtonian viscosity for
water. Plasticity projects F after each update: Drucker–Prager return mapping on the SVD of F
(Klár et al. 2016) for sand, von Mises on the deviatoric Hencky strain for plasticine; water
keeps only J (F reset to J^(1/d) I).
"""


import functools
import os
import tempfile
from pathlib import Path

import warp as wp


def _configure_warp() -> None:
    """Quiet warp, its kernel cache in a writable folder (WARP_CACHE_PATH wins), deterministic atomics."""
    if "WARP_CACHE_PATH" not in os.environ:
        cache = Path.home() / ".cache" / "warp"
        existing = next(p for p in (cache, cache.parent, Path.home(), Path("/")) if p.exists())
        if not os.access(existing, os.W_OK):
            cache = Path(tempfile.gettempdir()) / f"meshop-warp-{os.getuid()}"
        wp.config.kernel_cache_dir = str(cache)
    wp.config.log_level = wp.LOG_ERROR              # no banner, no "CUDA driver not found"
    wp.config.deterministic = wp.DeterministicMode.RUN_TO_RUN


_configure_warp()

ELASTIC, FLUID, SAND, PLASTICINE = 0, 1, 2, 3
#: grid cells between a wall and the grid's edge (the B-spline stencil needs 2)
PAD = 3


@wp.struct
class Constants:
    """Material constants shared by all particles (per-particle μ, λ are arrays)."""

    fluid_bulk: float          # K (Pa): Tait p = K / γ (J^-γ - 1)
    fluid_gamma: float         # γ of the Tait equation of state
    fluid_viscosity: float     # dynamic viscosity η (Pa s)
    sand_alpha: float          # Drucker–Prager α = sqrt(2/3) 2 sin φ / (3 - sin φ)
    plastic_yield: float       # von Mises yield stress σ_y (Pa)


@functools.lru_cache(maxsize=None)
def mpm_kernels(dim: int):
    """``(p2g, grid_update, g2p)`` warp kernels for ``dim`` = 2 or 3."""
    vec = wp.types.vector(dim, float)
    mat = wp.types.matrix((dim, dim), float)
    weights = wp.types.matrix((3, dim), float)
    depth = 3 if dim == 3 else 1                     # stencil extent along the third axis
    svd = wp.svd3 if dim == 3 else wp.svd2
    options = {"enable_backward": False, "module": "unique"}

    @wp.func
    def node_offset(i: int, j: int, k: int) -> vec:
        if wp.static(dim == 2):
            return vec(float(i), float(j))
        else:
            return vec(float(i), float(j), float(k))

    @wp.func
    def stencil(x: vec, inv_dx: float, base: wp.vec3i):
        """Quadratic B-spline weights ``w[o, axis]`` and the fractional position."""
        fx = vec()
        w = weights()
        for a in range(dim):
            f = x[a] * inv_dx - float(base[a])
            fx[a] = f
            w[0, a] = 0.5 * (1.5 - f) * (1.5 - f)
            w[1, a] = 0.75 - (f - 1.0) * (f - 1.0)
            w[2, a] = 0.5 * (f - 0.5) * (f - 0.5)
        return w, fx

    @wp.func
    def base_node(x: vec, inv_dx: float) -> wp.vec3i:
        base = wp.vec3i(0, 0, 0)
        for a in range(dim):
            base[a] = int(x[a] * inv_dx - 0.5)
        return base

    @wp.func
    def hencky(F: mat):
        """SVD F = U diag(s) Vᵀ, the Hencky strain ln s and its trace."""
        U = mat()
        s = vec()
        V = mat()
        wp.static(svd)(F, U, s, V)
        eps = vec()
        trace = float(0.0)
        for a in range(dim):
            eps[a] = wp.log(wp.max(wp.abs(s[a]), 1.0e-6))
            trace += eps[a]
        return U, eps, V, trace

    @wp.func
    def hencky_stress(F: mat, mu: float, lam: float) -> mat:
        U, eps, V, trace = hencky(F)
        diag = vec()
        for a in range(dim):
            diag[a] = 2.0 * mu * eps[a] + lam * trace
        return U * wp.diag(diag) * wp.transpose(U)

    @wp.func
    def kirchhoff(F: mat, C: mat, material: int, mu: float, lam: float, c: Constants) -> mat:
        eye = wp.identity(n=dim, dtype=float)
        J = wp.determinant(F)
        if material == ELASTIC:                    # neo-Hookean
            return mu * (F * wp.transpose(F) - eye) + lam * wp.log(J) * eye
        if material == FLUID:                      # Tait pressure + Newtonian viscosity
            pressure = c.fluid_bulk / c.fluid_gamma * (wp.pow(J, -c.fluid_gamma) - 1.0)
            strain_rate = 0.5 * (C + wp.transpose(C))
            deviator = strain_rate - wp.trace(strain_rate) / float(dim) * eye
            return J * (2.0 * c.fluid_viscosity * deviator - pressure * eye)
        return hencky_stress(F, mu, lam)

    @wp.func
    def project(F: mat, material: int, mu: float, lam: float, c: Constants) -> mat:
        """The deformation gradient after plasticity (return mapping on the SVD of F)."""
        if material == ELASTIC:
            return F
        if material == FLUID:
            J = wp.determinant(F)
            return wp.pow(J, 1.0 / float(dim)) * wp.identity(n=dim, dtype=float)
        U, eps, V, trace = hencky(F)
        dev = vec()
        norm = float(0.0)
        for a in range(dim):
            dev[a] = eps[a] - trace / float(dim)
            norm += dev[a] * dev[a]
        norm = wp.sqrt(norm)
        if material == SAND:
            if trace >= 0.0:                       # tension: project to the cone's tip
                return U * wp.transpose(V)
            shift = norm + (float(dim) * lam + 2.0 * mu) / (2.0 * mu) * trace * c.sand_alpha
        else:                                      # plasticine: von Mises
            shift = norm - wp.sqrt(2.0 / 3.0) * c.plastic_yield / (2.0 * mu)
        if shift <= 0.0 or norm <= 0.0:
            return F
        s = vec()
        for a in range(dim):
            s[a] = wp.exp(eps[a] - shift / norm * dev[a])
        return U * wp.diag(s) * wp.transpose(V)

    @wp.func
    def node_weight(w: weights, i: int, j: int, k: int) -> float:
        weight = w[i, 0] * w[j, 1]
        if wp.static(dim == 3):
            weight = weight * w[k, 2]
        return weight

    @wp.func
    def node_index(base: wp.vec3i, i: int, j: int, k: int, ny: int, nz: int) -> int:
        return ((base[0] + i) * ny + base[1] + j) * nz + base[2] + k

    @wp.kernel(**options)
    def p2g(x: wp.array[vec], v: wp.array[vec], C: wp.array[mat], F: wp.array[mat],
            material: wp.array[wp.int32], mass: wp.array[float], volume: wp.array[float],
            mu: wp.array[float], lam: wp.array[float], c: Constants, dx: float, dt: float,
            ny: int, nz: int, grid_mv: wp.array[vec], grid_m: wp.array[float]):
        p = wp.tid()
        inv_dx = 1.0 / dx
        base = base_node(x[p], inv_dx)
        w, fx = stencil(x[p], inv_dx, base)
        tau = kirchhoff(F[p], C[p], material[p], mu[p], lam[p], c)
        affine = (-dt * volume[p] * 4.0 * inv_dx * inv_dx) * tau + mass[p] * C[p]
        momentum = mass[p] * v[p]
        for i in range(3):
            for j in range(3):
                for k in range(depth):
                    weight = node_weight(w, i, j, k)
                    dpos = (node_offset(i, j, k) - fx) * dx
                    node = node_index(base, i, j, k, ny, nz)
                    wp.atomic_add(grid_mv, node, weight * (momentum + affine * dpos))
                    wp.atomic_add(grid_m, node, weight * mass[p])

    @wp.kernel(**options)
    def grid_update(grid_mv: wp.array[vec], grid_m: wp.array[float], gravity: vec, dt: float,
                    shape: wp.vec3i, sticky: int, grid_v: wp.array[vec]):
        node = wp.tid()
        m = grid_m[node]
        if m <= 0.0:
            grid_v[node] = vec()
            return
        velocity = grid_mv[node] / m + dt * gravity
        index = wp.vec3i(node // (shape[1] * shape[2]), (node // shape[2]) % shape[1], node % shape[2])
        stop = False
        for a in range(dim):
            low = index[a] <= PAD
            high = index[a] >= shape[a] - 1 - PAD
            if (low and (sticky >> (2 * a)) & 1 != 0) or (high and (sticky >> (2 * a + 1)) & 1 != 0):
                stop = True
            elif (low and velocity[a] < 0.0) or (high and velocity[a] > 0.0):
                velocity[a] = 0.0
        if stop:
            velocity = vec()
        grid_v[node] = velocity

    @wp.kernel(**options)
    def g2p(grid_v: wp.array[vec], material: wp.array[wp.int32], mu: wp.array[float],
            lam: wp.array[float], c: Constants, dx: float, dt: float, ny: int, nz: int,
            upper: vec, x: wp.array[vec], v: wp.array[vec], C: wp.array[mat], F: wp.array[mat]):
        p = wp.tid()
        inv_dx = 1.0 / dx
        base = base_node(x[p], inv_dx)
        w, fx = stencil(x[p], inv_dx, base)
        velocity = vec()
        affine = mat()
        for i in range(3):
            for j in range(3):
                for k in range(depth):
                    weight = node_weight(w, i, j, k)
                    dpos = (node_offset(i, j, k) - fx) * dx
                    node_v = grid_v[node_index(base, i, j, k, ny, nz)]
                    velocity += weight * node_v
                    affine += (4.0 * inv_dx * inv_dx * weight) * wp.outer(node_v, dpos)
        position = x[p] + dt * velocity
        for a in range(dim):                       # keep the stencil on the grid
            position[a] = wp.clamp(position[a], dx, upper[a])
        x[p] = position
        v[p] = velocity
        C[p] = affine
        deformed = (wp.identity(n=dim, dtype=float) + dt * affine) * F[p]
        F[p] = project(deformed, material[p], mu[p], lam[p], c)

    return p2g, grid_update, g2p
