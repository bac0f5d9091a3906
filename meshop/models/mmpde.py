"""MM-PDE: the two-branch moving-mesh solver (Hu et al., ICLR 2024) on top of MP-PDE.

One step reads the state on the original mesh and on the same mesh with its nodes moved to
resolve the state's fronts (the data-free mover of :mod:`meshop.models.dmm`, or the classical
Monge–Ampère mover when no DMM is bundled):

    h    = E([a, s, wall])                              encoder, original nodes (wall: boundary flag)
    h_o  = GNN_o(h; original positions)                 branch on the original mesh
    h_m  = GNN_m(I_o→m h; moved positions)              branch on the moved mesh
    F    = D(h_o + I_m→o h_m)

``I_o→m`` and ``I_m→o`` are learnable interpolations (:class:`~meshop.nn.KernelInterpolation`:
inverse-distance weights from the ``NEIGHBOURS`` nearest nodes of the other mesh plus a learned
kernel correction). The moved positions come from :meth:`MMPDE.attach_moved` (mover in numpy,
no gradient), which :meth:`MMPDE.attach_window` calls once per training window from its first
state; in a rollout the mesh is moved again before every step to the state it starts from
(:meth:`MMPDE.before_step`), as in the paper. Within a training window of several unrolled
steps it stays put (a simplification that keeps training cheap: a batch holds many meshes).

With ``coarse=True`` (the MM-PDE paper's protocol, :mod:`meshop.models.coarse`) the data live on a
fine mesh and both branches on the coarse mesh it carries: the original branch reads the fine
state at the coarse nodes, the moved branch the fine state sampled at the moved nodes (P1 of the
fine mesh), and each branch's increment reaches the fine nodes by its own mesh's P1
interpolation, ``F = P_o D(h_o + I_m→o h_m) + P_m D_m(h_m)``: the moved mesh pays where it
resolves the fronts better.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..geometry.coarse import p1_stencil
from ..nn import MLP, KernelInterpolation
from .base import NeuralOperator
from .coarse import coarse_view, prolong
from .mppde import MPPDE, MessagePassing, _coarse_option, with_walls

#: nodes of the other mesh each interpolation reads
NEIGHBOURS = 3


class TwoBranchProcessor(nn.Module):
    """``F(a, s)`` of MM-PDE (module docstring). Needs ``data.moved_pos (N, d)`` and the
    neighbour lists ``data.to_moved_index``, ``data.to_original_index`` ``(NEIGHBOURS, N)``."""

    def __init__(self, in_channels: int, out_channels: int, dim: int, latent: int, layers: int,
                 length_unit: float):
        super().__init__()
        self.out_channels, self.length_unit = out_channels, length_unit
        self.encoder = MLP([in_channels + 1, latent, latent])
        self.original = MessagePassing(latent, layers, dim, out_channels, length_unit)
        self.moved = MessagePassing(latent, layers, dim, out_channels, length_unit)
        self.to_moved = KernelInterpolation(latent, latent, dim)
        self.to_original = KernelInterpolation(latent, latent, dim)
        self.decoder = MLP([latent, latent, out_channels])

    def forward(self, data, x: torch.Tensor) -> torch.Tensor:
        if not hasattr(data, "moved_pos"):
            raise ValueError("mmpde needs the moved mesh: call MMPDE.attach_window (or attach_moved) on the "
                             "graph first.")
        state = x[:, -self.out_channels:]
        h = self.encoder(with_walls(data, x))
        radius = 2 * self.length_unit
        on_moved = self.to_moved(data.moved_pos, data.pos, h, h, data.to_moved_index.T, radius)
        state_moved = self.to_moved_state(data, state)
        h_moved = self.moved(on_moved, data.moved_pos, state_moved, data.edge_index)
        back = self.to_original(data.pos, data.moved_pos, h_moved, h_moved, data.to_original_index.T, radius)
        return self.decoder(self.original(h, data.pos, state, data.edge_index) + back)

    @staticmethod
    def to_moved_state(data, state: torch.Tensor) -> torch.Tensor:
        """The state at the moved nodes: inverse-distance interpolation (no weights)."""
        from ..nn.kernel_interpolation import inverse_distance

        return inverse_distance(data.moved_pos, data.pos, state, data.to_moved_index.T, 1.0)


class CoarseTwoBranchProcessor(TwoBranchProcessor):
    """``F`` of MM-PDE on the coarse mesh, answering on the fine nodes (module docstring). Needs
    what :func:`~meshop.models.coarse.attach_coarse` and :meth:`MMPDE.attach_moved` add: the moved
    coarse nodes ``moved_pos (C, d)``, the fine state's stencil at them ``sample_index (3, C)``,
    ``sample_weight (C, 3)``, the moved mesh's prolongation ``moved_prolong_index (3, N)``,
    ``moved_prolong_weight (N, 3)`` and the neighbour lists in fine ids."""

    def __init__(self, in_channels: int, out_channels: int, dim: int, latent: int, layers: int,
                 length_unit: float):
        super().__init__(in_channels, out_channels, dim, latent, layers, length_unit)
        self.moved_decoder = MLP([latent, latent, out_channels])

    def forward(self, data, x: torch.Tensor) -> torch.Tensor:
        if not hasattr(data, "moved_pos"):
            raise ValueError("mmpde needs the moved mesh: call MMPDE.attach_window (or attach_moved) on the "
                             "graph first.")
        view = coarse_view(data)
        fine_state = x[:, -self.out_channels:]
        x = x[view.index]
        state = x[:, -self.out_channels:]
        moved_state = torch.einsum("ck,kcs->cs", data.sample_weight, fine_state[data.sample_index])  # (C, S)
        h = self.encoder(with_walls(view, x))
        radius = 2 * self.length_unit
        on_moved = self.to_moved(data.moved_pos, view.pos, h, h, view.local[data.to_moved_index].T, radius)
        h_moved = self.moved(on_moved, data.moved_pos, moved_state, view.edge_index)
        back = self.to_original(view.pos, data.moved_pos, h_moved, h_moved, view.local[data.to_original_index].T,
                                radius)
        original = self.decoder(self.original(h, view.pos, state, view.edge_index) + back)
        return (prolong(original, view.local, data.prolong_index, data.prolong_weight)
                + prolong(self.moved_decoder(h_moved), view.local, data.moved_prolong_index,
                          data.moved_prolong_weight))


class MMPDE(MPPDE):
    """MM-PDE time stepper: :class:`~meshop.models.mppde.MPPDE` (a TimeStepper) with a
    :class:`TwoBranchProcessor`. With ``layers`` per branch and ``latent`` channels it has about
    as many parameters as :class:`~meshop.models.mppde.MPPDE` with twice the layers.

    Args:
        latent: node and edge channels; layers: message-passing layers per branch;
        length_unit: unit of the relative positions on edges (normalized coordinates);
        mover: ``"auto"`` (the bundled DMM when meshop has one, else classical), ``"dmm"`` or
            ``"classical"``: what moves the mesh in :meth:`attach_moved`;
        varying_columns: columns of ``data.x`` varying per frame (see TimeStepper);
        coarse: both branches on the coarse mesh the data's mesh carries, answering on its nodes
            (module docstring); False: on the mesh itself.
    """

    def __init__(self, in_channels: int, out_channels: int, dim: int, latent: int = 42, layers: int = 2,
                 length_unit: float = 0.02, mover: str = "auto", varying_columns: list[int] | None = None,
                 coarse: bool = False):
        varying_columns = list(varying_columns or [])
        if mover not in ("auto", "dmm", "classical"):
            raise ValueError(f"mover must be 'auto', 'dmm' or 'classical', got {mover!r}.")
        if dim != 2:
            raise ValueError(f"mmpde moves 2D triangle meshes; the data is {dim}D.")
        NeuralOperator.__init__(self, in_channels, out_channels, dim, latent=latent, layers=layers,
                                length_unit=length_unit, mover=mover, varying_columns=varying_columns,
                                **_coarse_option(coarse, dim))
        self.mover, self.coarse = mover, bool(coarse)
        processor = CoarseTwoBranchProcessor if coarse else TwoBranchProcessor
        self._attach(processor(in_channels + out_channels, out_channels, dim, latent, layers, length_unit),
                     out_channels, varying_columns, True, None)

    def attach_window(self, data, mesh, state: torch.Tensor, steps: int, drive: dict):
        """``data`` with the mesh moved to resolve the window's initial ``state (N, S)``
        (:meth:`attach_moved`)."""
        return self.attach_moved(super().attach_window(data, mesh, state, steps, drive), mesh, state)

    def attach_moved(self, data, mesh, state: torch.Tensor):
        """``data`` with ``moved_pos`` (the mesh moved to resolve ``state (N, S)``, in the
        normalized coordinates of ``data.pos``), the interpolation neighbour lists and ``face
        (3, T)``, the triangles of ``mesh``, the :class:`~meshop.Mesh` ``data`` was built from."""
        data = data.clone()
        data.face = torch.as_tensor(np.ascontiguousarray(mesh.cells["triangle"].T), dtype=torch.int64,
                                    device=data.pos.device)
        return self._moved_to(data, state)

    def before_step(self, data, state: torch.Tensor, k: int):
        """As in the paper, the mesh follows the state: before every rollout step after the first
        (the first uses :meth:`attach_window`'s), moved again to the state it starts from."""
        return data if k == 0 else self._moved_to(data.clone(), state)

    def _moved_to(self, data, state: torch.Tensor):
        """``data`` (with ``face``) given ``moved_pos`` and the neighbour lists for ``state``
        (with ``coarse``: the coarse mesh moved, and the P1 stencils between it and the fine one).
        Every id list is stored as ids of ``data``'s nodes, transposed, so that PyG batching
        concatenates and offsets it like ``edge_index``."""
        from scipy.spatial import cKDTree

        from ..adaptation import adapt
        from ..mesh import Mesh

        method = None if self.mover == "auto" else self.mover
        pos = data.pos.double().cpu().numpy()
        fine_triangles = data.face.T.cpu().numpy()
        index = data.coarse_index.cpu().numpy() if self.coarse else np.arange(len(pos))   # the nodes that move
        triangles = _local(data.coarse_face_index.T.cpu().numpy(), index, len(pos)) if self.coarse else fine_triangles
        values = state.detach().cpu().numpy().astype(np.float64)[index]
        moved = adapt(Mesh(pos[index], {"triangle": triangles}), values, method=method).mesh.points[:, :2]

        def node_ids(ids: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(np.ascontiguousarray(index[ids].T), dtype=torch.int64, device=data.pos.device)

        def weight(values: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(values, dtype=data.pos.dtype, device=data.pos.device)

        data.moved_pos = weight(moved)
        data.to_moved_index = node_ids(cKDTree(pos[index]).query(moved, k=NEIGHBOURS)[1])
        data.to_original_index = node_ids(cKDTree(moved).query(pos[index], k=NEIGHBOURS)[1])
        if self.coarse:
            ids, weights = p1_stencil(pos, fine_triangles, moved)          # the fine state at the moved nodes
            data.sample_index = torch.as_tensor(np.ascontiguousarray(ids.T), dtype=torch.int64, device=data.pos.device)
            data.sample_weight = weight(weights)
            ids, weights = p1_stencil(moved, triangles, pos)               # the moved mesh's answer at fine nodes
            data.moved_prolong_index = node_ids(ids)
            data.moved_prolong_weight = weight(weights)
        return data


def _local(triangles: np.ndarray, index: np.ndarray, n: int) -> np.ndarray:
    """``triangles`` over the nodes ``index`` of ``n`` renumbered as positions in ``index``."""
    local = np.full(n, -1)
    local[index] = np.arange(len(index))
    return local[triangles]
