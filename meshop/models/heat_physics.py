"""The physics term of a heat time stepper: one frame of ``M dT/dτ = -A T + F`` by explicit
super-time-stepping on the part's P1 finite-element matrices.

``A = d² (K + R)`` and ``F = d² (R T∞ + M q on)`` as in :mod:`meshop.data.fem_transient` (the
generator's FEM), nodes on held surfaces fixed at T∞. One frame is one RKL2 super-step
(Meyer, Balsara & Aslam 2014, J. Comput. Phys. 257): ``s`` stages of explicit evaluations,
second order in time, stable for ``τ λ_max ≤ (s² + s - 2) / 2``; ``s`` is taken from a
power-iteration estimate of ``λ_max`` with a margin (:func:`largest_rate`), so a fine mesh
costs ``O(sqrt(λ_max τ))`` sparse products per frame and no linear solve. The consistent mass
is inverted by a few Richardson sweeps preconditioned by the lumped mass (its eigenvalues relative to the lumped one lie in [1/5, 1]
for P1 tetrahedra), on the free nodes only (the condensed system of the held surfaces).

Written by hand: no library offers RKL2 super-time-stepping on torch sparse matrices.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import scipy.sparse as sp
import torch

#: Richardson sweeps inverting the consistent mass (3: within 1.2 % of an exact inverse over
#: 100 frames on the heat3d-transient validation parts, docs/time.md)
MASS_SWEEPS = 3
#: fraction of the RKL2 stability limit used when choosing the number of stages
SAFETY = 0.8
#: power iterations estimating λ_max of the step's operator, and the margin put on the estimate
POWER_ITERATIONS, POWER_MARGIN = 30, 1.25
#: the heat inputs read from the mesh: role -> point field
FIELDS = {"source": "source", "heat_transfer": "heat_transfer", "ambient": "ambient_temperature",
          "held": "surfaces_held", "on": "source_on"}


def heat_operator(mesh, length_scale: float) -> dict[str, torch.Tensor]:
    """The tensors of one part's physics term (float64 assembly, stored float32).

    Args:
        mesh: a tetrahedral :class:`~meshop.Mesh` (metres) with the point fields of :data:`FIELDS`
            (``source`` q/k in K/m², ``heat_transfer`` β in 1/m, ``ambient_temperature`` T∞ in K,
            ``surfaces_held`` 1 where the surfaces are held at T∞); absent ones count as 0.
        length_scale: d (m), the unit of the time τ = α t / d².

    Returns:
        ``heat_edge_index (2, E)``, ``heat_stiffness (E,)`` the entries of ``A``, ``heat_mass (E,)``
        the consistent mass, ``heat_lumped (N,)``, ``heat_ambient_load (N,)`` = d² R T∞,
        ``heat_source_load (N,)`` = d² M q, ``heat_free (N,)`` bool and ``heat_rate (1,)``:
        :func:`largest_rate` (1/τ).
    """
    from ..data.fem_transient import heat_matrices

    def field(role):
        values = mesh.point_data.get(FIELDS[role])
        return np.zeros(mesh.n_points) if values is None else np.asarray(values, np.float64).reshape(-1)

    mass, stiffness, robin = heat_matrices(mesh.points, mesh.cells["tetra"], field("heat_transfer"))
    d2 = float(length_scale) ** 2
    pattern = mass.tocoo()              # every P1 mass entry is > 0 and covers K's and R's patterns
    operator = (d2 * (stiffness + robin)).tocsr()[pattern.row, pattern.col].A1
    lumped = np.bincount(pattern.row, pattern.data, mesh.n_points)
    free = ~(mesh.boundary_mask & (field("held") > 0.5))
    rate = largest_rate(sp.csr_matrix((operator, (pattern.row, pattern.col)), shape=pattern.shape), mass.tocsr(),
                        lumped, free)
    as32 = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float32)   # noqa: E731
    return {"heat_edge_index": torch.as_tensor(np.vstack([pattern.row, pattern.col]), dtype=torch.long),
            "heat_stiffness": as32(operator), "heat_mass": as32(pattern.data), "heat_lumped": as32(lumped),
            "heat_ambient_load": as32(d2 * (robin @ field("ambient"))),
            "heat_source_load": as32(d2 * (mass @ field("source"))),
            "heat_free": torch.as_tensor(free), "heat_rate": torch.tensor([rate])}


def with_operator(data, mesh):
    """``data`` (the graph of ``mesh``) with the tensors of :func:`heat_operator`, the length scale
    d the mesh's :func:`~meshop.fields.physical_length`; a mesh without tetrahedra is refused."""
    from ..errors import MeshError
    from ..fields import physical_length

    if "tetra" not in mesh.cells:
        raise MeshError(f"{mesh.source or 'mesh'}: this time stepper steps the heat equation on tetrahedra; "
                        f"the mesh has {', '.join(mesh.cells) or 'no cells'}.")
    for name, value in heat_operator(mesh, physical_length(mesh)).items():
        setattr(data, name, value)
    return data


def with_source_on(data, on, steps: int, n_points: int, device=None):
    """``data`` with ``heat_on (N, steps)`` float32 on ``device``, the source's on-fraction per
    step, from ``on`` ``(steps, N)`` (None: the source stays off)."""
    on = np.zeros((steps, n_points)) if on is None else np.asarray(on).reshape(steps, -1)
    data.heat_on = torch.as_tensor(np.array(on.T, dtype=np.float32), device=device)
    return data


def largest_rate(operator, mass, lumped: np.ndarray, free: np.ndarray) -> float:
    """``λ_max`` (1/τ) of the operator the RKL2 stages apply, ``P A`` on the free nodes (``P``:
    the Richardson inverse of the mass), by power iteration from a fixed start, times a margin."""
    def apply(x):
        return free_mass_inverse(operator @ x, mass.dot, lumped, free, np.where)

    x, estimate = np.where(free, np.cos(np.arange(len(free)) * 0.7548776662), 0.0), 0.0
    for _ in range(POWER_ITERATIONS):
        norm = np.linalg.norm(x)
        if norm == 0:
            return 0.0
        y = apply(x / norm)
        estimate, x = float(np.linalg.norm(y)), y
    return POWER_MARGIN * estimate


def free_mass_inverse(residual, mass, lumped, free, where):
    """``M_ff⁻¹ r`` on the free nodes, 0 on held ones: :data:`MASS_SWEEPS` Richardson sweeps
    preconditioned by the ``lumped`` mass; ``mass(x)`` the consistent mass product; numpy arrays
    with ``where=np.where`` or tensors with ``torch.where``."""
    x = where(free, residual / lumped, 0.0)
    for _ in range(MASS_SWEEPS):
        x = where(free, x + (residual - mass(x)) / lumped, 0.0)
    return x


def _product(index: torch.Tensor, values: torch.Tensor, n: int):
    """``x -> S x`` for the symmetric sparse ``S`` given by COO ``index``, ``values``: SciPy on the
    CPU (several times faster than torch's sparse product there), torch CSR elsewhere."""
    if values.device.type != "cpu":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")      # torch: "sparse CSR support is in beta"
            matrix = torch.sparse_coo_tensor(index, values, (n, n)).coalesce().to_sparse_csr()
        return lambda x: matrix @ x
    matrix = sp.csr_matrix((values.numpy(), (index[0].numpy(), index[1].numpy())), shape=(n, n))
    return lambda x: _SymmetricProduct.apply(x, matrix)


class _SymmetricProduct(torch.autograd.Function):
    """``S x`` for a symmetric SciPy matrix ``S``; its gradient is ``S g``."""

    @staticmethod
    def forward(ctx, x, matrix):
        ctx.matrix = matrix
        return torch.from_numpy(np.asarray(matrix @ x.detach().numpy(), dtype=np.float32))

    @staticmethod
    def backward(ctx, grad):
        return torch.from_numpy(np.asarray(ctx.matrix @ grad.numpy(), dtype=np.float32)), None


class HeatOperators:
    """The sparse products of a (batched) graph's physics term, built once per rollout."""

    def __init__(self, data):
        n, index = data.num_nodes, data.heat_edge_index
        self.operator = _product(index, data.heat_stiffness, n)
        self.mass = _product(index, data.heat_mass, n)
        self.lumped = data.heat_lumped[:, None]
        self.free = data.heat_free[:, None]
        self.ambient, self.source = data.heat_ambient_load[:, None], data.heat_source_load[:, None]
        self.rate = float(data.heat_rate.max())

    def stages(self, tau: float) -> int:
        """RKL2 stages for a step ``tau`` (at least 2)."""
        limit = 2 * self.rate * tau / SAFETY             # s² + s - 2 ≥ 2 τ λ / safety
        return max(2, math.ceil((-1 + math.sqrt(9 + 4 * limit)) / 2))

    def inverse_mass(self, residual: torch.Tensor) -> torch.Tensor:
        """``M_ff⁻¹ r`` on the free nodes by Richardson sweeps, 0 on held nodes."""
        return free_mass_inverse(residual, self.mass, self.lumped, self.free, torch.where)

    def rate_of_change(self, temperature: torch.Tensor, on: torch.Tensor) -> torch.Tensor:
        """``dT/dτ (N, 1)`` for ``temperature (N, 1)`` (K) and the source's on-fraction ``on (N, 1)``."""
        return self.inverse_mass(self.ambient + on * self.source - self.operator(temperature))

    def frame(self, temperature: torch.Tensor, on: torch.Tensor, tau: float) -> torch.Tensor:
        """``(N, 1)`` temperature one frame ``tau`` later: one RKL2 super-step of ``stages(tau)`` stages."""
        s = self.stages(tau)
        w1 = 4.0 / (s * s + s - 2)
        b = [1 / 3, 1 / 3, 1 / 3] + [(j * j + j - 2) / (2 * j * (j + 1)) for j in range(3, s + 1)]
        start = self.rate_of_change(temperature, on)
        before, current = temperature, temperature + (w1 / 3) * tau * start
        for j in range(2, s + 1):
            mu, nu = (2 * j - 1) / j * b[j] / b[j - 1], -(j - 1) / j * b[j] / b[j - 2]
            mu_tilde = mu * w1
            gamma_tilde = -(1 - b[j - 1]) * mu_tilde
            following = (mu * current + nu * before + (1 - mu - nu) * temperature
                         + mu_tilde * tau * self.rate_of_change(current, on) + gamma_tilde * tau * start)
            before, current = current, following
        return current
