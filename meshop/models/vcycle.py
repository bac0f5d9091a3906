"""The processor of MGNO and of BENO's branches: V-cycles of kernel integrals over a node hierarchy."""

from __future__ import annotations

import torch
from torch import nn

from ..nn import EdgeEmbedding, Edges, KernelIntegral, KernelTransfer
from .multilevel import node_batch


class VCycles(nn.Module):
    r"""``cycles`` V-cycles over the levels that :meth:`MGNO.prepare <meshop.models.mgno.MGNO.prepare>`
    adds to a graph (the math is in :class:`~meshop.models.mgno.MGNO`): kernel integrals within
    each level, transfers down then up between adjacent levels, every cycle with its own weights.

    Args:
        dim, node_channels: mesh dimension and width of the node features the edge embeddings read.
        width, levels, ratio, cycles, kernel_width, smooth_finest, length_unit: as in MGNO.
        condition_channels: > 0 adds FiLM by a per-graph vector after every state update.
        linear: make the cycles linear in the state (kernel layers without activation or bias,
            FiLM by a factor only, :math:`v \odot (1 + \gamma(e))`), for BENO's branches that
            are linear in their source or boundary values.
        finest_once: visit the mesh level only at the start of the first cycle and the end of the
            last one: the later cycles run on the coarse levels alone (a U-Net-like shape whose
            work on the mesh is one restriction and one prolongation, for speed on large meshes,
            and with ``smooth_finest`` one kernel integral on the mesh after that prolongation).

    Shapes: ``forward(data, x (N, F), lifted (N, width), condition (B, C) | None) -> (N, width)``.
    """

    def __init__(self, dim: int, node_channels: int, width: int, levels: int, ratio: float,
                 cycles: int, kernel_width: int, *, smooth_finest: bool = True,
                 condition_channels: int = 0, linear: bool = False, finest_once: bool = False,
                 length_unit: float = 0.02):
        super().__init__()
        if levels < 1 or cycles < 1:
            raise ValueError(f"MGNO needs levels >= 1 and cycles >= 1; got {levels} and {cycles}.")
        if levels == 1 and not smooth_finest:
            raise ValueError("MGNO with one level needs smooth_finest=True: it would have no kernel integral.")
        if levels == 1 and finest_once:
            raise ValueError("MGNO with one level cannot use finest_once: it has no coarse level to cycle on.")
        self.levels, self.cycles, self.smooth_finest, self.linear = levels, cycles, smooth_finest, linear
        self.finest_once = finest_once
        self.units = [length_unit * ratio ** (level / dim) for level in range(levels)]
        smoothed = range(0 if smooth_finest else 1, levels)             # levels with kernel integrals
        self.within_edges = _embeddings(smoothed, dim, node_channels, kernel_width)
        self.down_edges = _embeddings(range(levels - 1), dim, node_channels, kernel_width)
        self.up_edges = _embeddings(range(levels - 1), dim, node_channels, kernel_width)
        layer = dict(width=width, hidden=kernel_width, linear=linear)
        # the levels each cycle's layers act on (level 0 only in the first descent and the last
        # ascent with finest_once)
        down_from = [self._first_level(cycle, descent=True) for cycle in range(cycles)]
        up_to = [self._first_level(cycle, descent=False) for cycle in range(cycles)]
        # with finest_once the descent restricts the lifted mesh features straight away: a kernel
        # integral on the mesh (smooth_finest) runs once, after the last prolongation
        lowest_smoothed_down = 1 if finest_once else 0
        self.smooth_down = _per_cycle(KernelIntegral, [[lv for lv in smoothed if lv >= max(first, lowest_smoothed_down)]
                                                       for first in down_from], layer)
        self.restrict = _per_cycle(KernelTransfer, [range(first, levels - 1) for first in down_from], layer)
        self.prolong = _per_cycle(KernelTransfer, [range(first, levels - 1) for first in up_to], layer)
        self.smooth_up = _per_cycle(KernelIntegral, [[lv for lv in smoothed if first <= lv < levels - 1]
                                                     for first in up_to], layer)   # not the coarsest
        film_width = width if linear else 2 * width                     # gamma [, beta]
        self.films = nn.ModuleList(nn.ModuleList(nn.Linear(condition_channels, film_width) for _ in range(levels))
                                   for _ in range(cycles if condition_channels > 0 else 0))

    def forward(self, data, x: torch.Tensor, lifted: torch.Tensor, condition: torch.Tensor | None = None
                ) -> torch.Tensor:
        nodes = [data[f"level{level}_nodes"] for level in range(self.levels)]
        within, down, up = self._edge_sets(data, x, nodes)
        film = self._film(data, nodes, condition)
        states = [lifted] + [lifted[ids] for ids in nodes[1:]]          # (N_l, width) per level
        for cycle in range(self.cycles):
            smooth_down, smooth_up = self.smooth_down[cycle], self.smooth_up[cycle]
            restrict, prolong = self.restrict[cycle], self.prolong[cycle]
            if "0" in smooth_down:
                states[0] = film(cycle, 0, smooth_down["0"](states[0], within[0]))
            for level in range(self.levels - 1):                        # restriction
                coarse = states[level + 1]
                if str(level) in restrict:
                    coarse = restrict[str(level)](states[level], coarse, down[level])
                states[level + 1] = film(cycle, level + 1, smooth_down[str(level + 1)](coarse, within[level + 1]))
            for level in reversed(range(self.levels - 1)):              # prolongation
                if str(level) not in prolong:
                    continue
                fine = prolong[str(level)](states[level + 1], states[level], up[level])
                smooth = smooth_up[str(level)] if str(level) in smooth_up else None
                states[level] = film(cycle, level, smooth(fine, within[level]) if smooth else fine)
        return states[0]                                                # (N, width)

    def _first_level(self, cycle: int, descent: bool) -> int:
        """Finest level the ``cycle``'s descent (or ascent) reaches: 1 for all but the first
        descent and the last ascent with ``finest_once``, else 0."""
        if not self.finest_once:
            return 0
        return 0 if cycle == (0 if descent else self.cycles - 1) else 1

    def _film(self, data, nodes, condition):
        """``film(cycle, level, v)``: FiLM of a level's state by ``condition``, or the identity."""
        if not len(self.films):
            return lambda cycle, level, v: v
        if condition is None:
            raise ValueError("these V-cycles were built with condition_channels > 0; pass condition=.")
        batches = [node_batch(data)[ids] for ids in nodes]              # graph of each level node

        def film(cycle, level, v):
            scale_shift = self.films[cycle][level](condition)[batches[level]]
            if self.linear:
                return v * (1 + scale_shift)
            gamma, beta = scale_shift.chunk(2, dim=1)
            return v * (1 + gamma) + beta
        return film

    def _edge_sets(self, data, x, nodes):
        """:class:`~meshop.nn.Edges` of each level graph and each transfer, in level-local ids."""

        def edges(module, local, source, target, unit):
            # level 0 is every node in order: its ids are already rows of data.pos
            ids = [None if level == 0 else nodes[level] for level in (source, target)]
            return Edges(local, module.bind(data.pos, x, unit, *ids), len(nodes[target]))

        within = [edges(self.within_edges["0"], data.edge_index, 0, 0, self.units[0])
                  if self.smooth_finest else None]
        within += [edges(self.within_edges[str(level)], data[f"level{level}_edges"], level, level,
                         self.units[level]) for level in range(1, self.levels)]
        down = [edges(self.down_edges[str(level)], data[f"level{level}_to_level{level + 1}_edges"],
                      level, level + 1, self.units[level + 1]) for level in range(self.levels - 1)]
        up = [edges(self.up_edges[str(level)], data[f"level{level + 1}_to_level{level}_edges"],
                    level + 1, level, self.units[level + 1]) for level in range(self.levels - 1)]
        return within, down, up


def _embeddings(levels: range, dim: int, channels: int, hidden: int) -> nn.ModuleDict:
    """One edge embedding per level in ``levels``, keyed by the level number."""
    return nn.ModuleDict({str(level): EdgeEmbedding(dim, channels, hidden) for level in levels})


def _per_cycle(layer, levels_per_cycle: list, options: dict) -> nn.ModuleList:
    """``[cycle][str(level)]`` grid of ``layer(**options)`` modules, for the levels of each cycle."""
    return nn.ModuleList(nn.ModuleDict({str(level): layer(**options) for level in levels})
                         for levels in levels_per_cycle)
