"""Predictor: checkpoint + mesh -> predicted fields, whole or sub-domain by sub-domain."""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from torch_geometric.data import Data

from .checkpoint import Checkpoint, CheckpointError, load
from .errors import MeshError
from .graph import decode, feature_count, mesh_edges, node_data
from .mesh import Mesh

#: name of the model used when none is given
DEFAULT_MODEL = "heat3d"


def bundled_models() -> dict[str, Path]:
    """Models shipped inside the package: name -> checkpoint path."""
    folder = resources.files("meshop") / "assets" / "models"
    if not folder.is_dir():
        return {}
    return {Path(p.name).stem: Path(str(p)) for p in folder.iterdir() if p.name.endswith(".safetensors")}


def resolve_model(model: str | Path | Checkpoint | None, device: str = "cpu") -> Checkpoint:
    """A loaded checkpoint from a bundled name, a path, or an already loaded :class:`Checkpoint`."""
    if isinstance(model, Checkpoint):
        return model
    name = DEFAULT_MODEL if model is None else str(model)
    bundled = bundled_models()
    if name in bundled:
        return load(bundled[name], device=device)
    path = Path(name)
    if path.suffix != ".safetensors" and not path.exists():
        known = ", ".join(sorted(bundled)) or "none"
        raise CheckpointError(f"{name}: neither a checkpoint file nor a bundled model (bundled: {known}).")
    return load(path, device=device)


@dataclass
class Prediction:
    """What :meth:`Predictor.predict` returns.

    Attributes:
        mesh: the input mesh with ``<target>_pred`` (and ``<target>_error`` when the truth is
            known) point fields.
        defaults: inputs that were missing and replaced by the checkpoint's defaults.
        metrics: target -> {"relative_l2", "max_error"} when the mesh held the truth.
        n_parts: number of sub-domains used (1 = unpartitioned).
        seconds: wall time of the prediction (features, graph, model).
        timings: that time by stage, in seconds: ``features`` (node features: distance to
            boundary, normals, coded inputs), ``model`` (forward passes and decoding) and
            ``graph``, the rest (the mesh graph, the model's ``prepare``: hierarchy levels, ...,
            and sub-domains when partitioned).
        notes: what was done on the user's behalf, one sentence each (meshing, defaults).
        path, picture: the files written, when any.
    """

    mesh: Mesh
    defaults: dict[str, float] = field(default_factory=dict)
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    n_parts: int = 1
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    path: Path | None = None
    picture: Path | None = None


class Predictor:
    """Apply a trained model to meshes.

    Args:
        model: bundled model name, checkpoint path, or a loaded :class:`Checkpoint`; None for the
            bundled default (steady heat conduction in 3D parts).
        device: ``"cpu"`` or ``"cuda"``.
        max_nodes: with a model of finite receptive field (``gno``), meshes with more nodes are
            predicted sub-domain by sub-domain (K-D tree decomposition with halos covering the
            receptive field); the result equals the unpartitioned one. Models with a global
            reach run whole; without autograd every kernel layer bounds its memory by summing
            messages in edge chunks (:class:`meshop.nn.Edges`).
    """

    def __init__(self, model=None, device: str = "cpu", max_nodes: int = 200_000):
        if device == "cuda" and not torch.cuda.is_available():
            raise MeshError("--device cuda was asked for, but no CUDA device is available.")
        self.checkpoint = resolve_model(model, device)
        self.device = device
        self.max_nodes = max_nodes
        ckpt = self.checkpoint
        expected = feature_count(ckpt.fields, ckpt.model.dim)
        if ckpt.model.in_channels != expected:
            raise CheckpointError(
                f"{ckpt.path or 'checkpoint'}: the model reads {ckpt.model.in_channels} node features but this "
                f"meshop builds {expected} for its fields (written by meshop {ckpt.meshop_version or '?'}); re-train it.")

    @property
    def spec(self):
        return self.checkpoint.fields

    @torch.no_grad()
    def predict(self, mesh: Mesh) -> Prediction:
        """Predict the checkpoint's targets on ``mesh`` (a volume mesh of the model's dimension)."""
        ckpt, spec = self.checkpoint, self.checkpoint.fields
        where = f"{mesh.source}: " if mesh.source else ""
        if mesh.is_point_cloud or mesh.is_surface:
            raise MeshError(f"{where}predict needs a volume mesh; tetrahedralize surfaces first "
                            "(meshop.meshing.tetrahedralize).")
        if mesh.dim != ckpt.model.dim:
            raise MeshError(f"{where}the mesh is {mesh.dim}D but model '{ckpt.model_name}' was trained on "
                            f"{ckpt.model.dim}D meshes.")
        if mesh.unreferenced.any():
            return self._predict_referenced(mesh)
        timings = dict.fromkeys(("features", "graph", "model"), 0.0)
        started = time.perf_counter()
        with _timed(timings, "features"):
            data, defaulted = node_data(mesh, spec, with_targets=False)
        edges = mesh_edges(data, ckpt.graph, ckpt.model.uses_mesh_graph)
        hops = ckpt.model.receptive_hops
        if mesh.n_points > self.max_nodes and hops is not None:
            out, n_parts = self._partitioned(data, edges, hops, timings)
        else:
            out, n_parts = self._run(data, edges, timings), 1
        with _timed(timings, "model"):
            physical = decode(out, data, spec).numpy()
        seconds = time.perf_counter() - started
        timings["graph"] = seconds - timings["features"] - timings["model"]   # graphs, prepare, parts
        result = self._result(mesh, physical, {n: spec.input_defaults[n] for n in defaulted}, n_parts, seconds)
        result.timings = timings
        return result

    def _predict_referenced(self, mesh: Mesh) -> Prediction:
        """Points no cell uses are not part of the domain: their distance to the boundary, their
        normal and their place in the graphs would be meaningless and would shift every other
        node's features. They are left out of the prediction and of the output mesh."""
        unused = mesh.unreferenced
        first = int(np.argmax(unused))
        result = self.predict(mesh.point_subset(~unused))
        where = ", ".join(f"{c:.6g}" for c in mesh.points[first])
        result.notes.insert(0, f"left {int(unused.sum())} point(s) that no cell uses (first: point {first} at "
                               f"({where})) out of the prediction and of the output mesh.")
        return result

    def _run(self, data, edges: torch.Tensor, timings: dict[str, float]) -> torch.Tensor:
        data = Data(**data.to_dict(), edge_index=edges)  # shares the node tensors, no copy
        data = self.checkpoint.model.prepare(data).to(self.device)
        with _timed(timings, "model"):
            return self.checkpoint.model(data).cpu()

    def _partitioned(self, data, edges: torch.Tensor, hops: int, timings: dict[str, float]
                     ) -> tuple[torch.Tensor, int]:
        """Sub-domain by sub-domain: each core is predicted with a halo of every node within
        ``hops`` graph hops (``hops`` times the longest edge), so core outputs are exact."""
        from .geometry.kdtree import decompose

        source, target = edges
        longest = float((data.pos[source] - data.pos[target]).norm(dim=1).max()) if edges.numel() else 0.0
        parts = decompose(data.pos.double().numpy(), max_points=self.max_nodes // 2,
                          halo=hops * longest * (1 + 1e-6) + 1e-12, criterion="median")
        out = torch.empty(data.num_nodes, self.checkpoint.model.out_channels)
        local = torch.full((data.num_nodes,), -1, dtype=torch.long)
        for part in parts:
            nodes = torch.as_tensor(np.concatenate([part.core, part.halo]), dtype=torch.long)
            local[nodes] = torch.arange(len(nodes))
            keep = (local[source] >= 0) & (local[target] >= 0)
            sub = _node_subset(data, nodes)
            out[torch.as_tensor(part.core)] = self._run(sub, local[edges[:, keep]], timings)[: len(part.core)]
            local[nodes] = -1
        return out, len(parts)

    def _result(self, mesh: Mesh, physical: np.ndarray, defaults: dict, n_parts: int, seconds: float) -> Prediction:
        fields, metrics, column = {}, {}, 0
        for target in self.spec.targets:
            width = len(self.spec.mean[target])
            pred = physical[:, column: column + width]
            column += width
            pred = pred[:, 0] if width == 1 else pred
            fields[f"{target}_pred"] = pred
            if target in mesh.point_data:
                truth = np.asarray(mesh.point_data[target], dtype=np.float64).reshape(pred.shape)
                error = pred - truth
                fields[f"{target}_error"] = error
                metrics[target] = {
                    "relative_l2": float(np.linalg.norm(error) / max(np.linalg.norm(truth), 1e-300)),
                    "max_error": float(np.abs(error).max()),
                }
        notes = [f"input '{name}' is missing; used the model's default {name} = {value:g}."
                 for name, value in defaults.items()]
        if n_parts > 1:
            notes.append(f"predicted in {n_parts} sub-domains ({mesh.n_points} nodes).")
        return Prediction(mesh.with_point_data(**fields), defaults, metrics, n_parts, seconds, notes=notes)


@contextmanager
def _timed(timings: dict[str, float], stage: str):
    """Add the wall time of the ``with`` block to ``timings[stage]``."""
    started = time.perf_counter()
    try:
        yield
    finally:
        timings[stage] += time.perf_counter() - started


def _node_subset(data, nodes: torch.Tensor):
    """Node-level attributes of ``data`` restricted to ``nodes``; graph-level ones shared."""
    node_keys = ("x", "pos", "boundary_mask", "dirichlet")
    return Data(**{key: value[nodes] if key in node_keys else value for key, value in data.to_dict().items()})


def predict(mesh, model=None, *, out=None, device: str = "cpu", mesh_size: float | None = None,
            max_nodes: int = 200_000, write: bool = True, render: bool = False) -> Prediction:
    """Predict on a mesh or mesh file and (by default) write ``<stem>.pred.vtu`` beside it.

    A closed CAD surface (stl, obj, ply, ...) is first filled with tetrahedra by gmsh at
    ``mesh_size`` (default: 1/30 of the bounding-box diagonal). ``render=True`` also writes a
    picture beside the output (``.png`` instead of ``.vtu``): truth | prediction | error when the
    mesh held the truth, else the prediction alone.
    """
    from . import io
    from .meshing import default_mesh_size, tetrahedralize

    source = mesh if isinstance(mesh, Mesh) else io.read(mesh)
    predictor = Predictor(model, device=device, max_nodes=max_nodes)
    volume = tetrahedralize(source, mesh_size) if source.is_surface else source
    result = predictor.predict(volume)
    if volume is not source:
        size = mesh_size or default_mesh_size(source)
        result.notes.insert(0, f"filled the closed surface with {volume.n_points} nodes of tetrahedra "
                               f"(gmsh, mesh size {size:.4g}).")
    if write:
        if out is None:
            if source.source is None:
                raise MeshError("give an output path: the mesh was not read from a file.")
            out = source.source.with_name(source.source.name.split(".")[0] + ".pred.vtu")
        result.path = io.write(result.mesh, out)
        if render:
            result.picture = _render(result, Path(result.path).with_suffix(".png"))
    return result


def _render(result: Prediction, out_png: Path) -> Path:
    from . import viz

    target = next(name[: -len("_pred")] for name in result.mesh.point_data if name.endswith("_pred"))
    if target in result.metrics:
        return viz.render_comparison(result.mesh, target, out_png)
    return viz.render(result.mesh, f"{target}_pred", out_png)
