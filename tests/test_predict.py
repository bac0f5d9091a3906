"""Predictor: partitioned == whole, physical scale invariance, CAD input, and bad input on the CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh
from skfem import MeshTet

import meshop
from meshop import MeshError, checkpoint, models
from meshop.fields import FieldSpec
from meshop.graph import GraphSettings, build_graph, feature_count
from meshop.prediction import Predictor, predict
from meshop.priors import coarse_prior

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _cube(n: int = 9, scale: float = 1.0, shift=(0.0, 0.0, 0.0)) -> meshop.Mesh:
    m = MeshTet.init_tensor(*(np.linspace(0, 1, n),) * 3)
    points = m.p.T * scale + np.asarray(shift)
    x = m.p[0]
    return meshop.Mesh(points, {"tetra": m.t.T}, {"source": 1.0 + x, "boundary_temperature": np.zeros(len(x)),
                                                  "temperature": x * (1 - x) * scale ** 2})


@pytest.fixture(scope="module")
def heat_checkpoint(tmp_path_factory):
    """An untrained GNO with heat3d's field coding: predictions are arbitrary but deterministic."""
    spec = FieldSpec(["source", "boundary_temperature"], ["temperature"],
                     input_defaults={"source": 1.0, "boundary_temperature": 0.0},
                     length_powers={"source": 2, "temperature": 0},
                     dirichlet={"temperature": "boundary_temperature"},
                     linear_inputs=["source", "boundary_temperature"]).fit([_cube()])
    torch.manual_seed(0)
    model = models.get("gno", feature_count(spec, 3), 1, 3, width=16, layers=3, kernel_width=16)
    path = tmp_path_factory.mktemp("ckpt") / "heat.safetensors"
    checkpoint.save(path, checkpoint.Checkpoint(model, "gno", spec, GraphSettings(k=8)))
    return path


def test_partitioned_equals_whole(heat_checkpoint):
    mesh = _cube(13)
    whole = Predictor(heat_checkpoint).predict(mesh)
    parts = Predictor(heat_checkpoint, max_nodes=800).predict(mesh)
    assert whole.n_parts == 1 and parts.n_parts > 2
    for result in (whole, parts):                   # every stage timed, together the whole call
        assert set(result.timings) == {"features", "graph", "model"} and min(result.timings.values()) > 0
        assert sum(result.timings.values()) == pytest.approx(result.seconds, rel=1e-9)
    a = whole.mesh.point_data["temperature_pred"]
    b = parts.mesh.point_data["temperature_pred"]
    assert np.abs(a - b).max() / np.abs(a).max() < 1e-5


def test_prediction_feeds_the_model_what_training_builds(heat_checkpoint, monkeypatch):
    """One encode path: the predictor's model input is build_graph's, attribute for attribute."""
    predictor = Predictor(heat_checkpoint)
    ckpt, mesh = predictor.checkpoint, _cube(7)
    seen = []
    forward = type(ckpt.model).forward
    monkeypatch.setattr(type(ckpt.model), "forward", lambda self, data: seen.append(data) or forward(self, data))
    predictor.predict(mesh, estimate=False)
    built = build_graph(mesh, ckpt.fields, ckpt.graph, with_targets=False, prepare=ckpt.model.prepare)
    (fed,) = seen
    assert sorted(fed.keys()) == sorted(built.keys())
    for key in built.keys():
        assert torch.equal(fed[key], built[key]), key


#: each bundled model's relative L2 error on the bundled bracket against scikit-fem, as measured by
#: benchmarks/default_model.py, plus room for BLAS differences (not for a worse model)
BUNDLED_ON_BRACKET = {"heat3d": 0.074, "heat3d-gno": 0.083}
#: the default's error on the bracket remeshed from its STL at 1x and 0.5x the default mesh size
#: is 0.077 (2,153 nodes) and 0.061 (9,833 nodes); the default trained on ~3k-node meshes only had
#: 0.095 and 0.076, the one before it, whose coarse levels grew with the mesh, 0.122 and 0.105
FINER_MESH_ERROR = 0.105


@pytest.mark.parametrize("name", sorted(BUNDLED_ON_BRACKET))
def test_bundled_models_on_the_bracket(name):
    from meshop.data.problems.heat3d import uniform_heating
    from meshop.checkpoint import read_metadata
    from meshop.prediction import bundled_models

    steady = {n for n, path in bundled_models().items() if not read_metadata(path).get("dynamics") and n != "dmm"}
    assert steady == set(BUNDLED_ON_BRACKET)    # every shipped steady model is measured here (time steppers:
                                                # test_time_training, particles: test_particles, the mesh
                                                # mover dmm: test_dmm)
    bracket = meshop.read(EXAMPLES / "parts" / "bracket.vtu")
    truth = uniform_heating(bracket)
    predicted = Predictor(name).predict(bracket).mesh.point_data["temperature_pred"]
    error = np.linalg.norm(predicted - truth) / np.linalg.norm(truth)
    assert error < BUNDLED_ON_BRACKET[name] + 0.01, error


def test_bundled_default_keeps_its_error_on_a_finer_mesh():
    """The bracket from its STL at the default mesh size (~2k nodes) and at half of it (~10k):
    a discretization-independent model is as right on the finer mesh (FEM on each mesh)."""
    from meshop.data.problems.heat3d import uniform_heating
    from meshop.meshing import default_mesh_size, tetrahedralize

    surface = meshop.read(EXAMPLES / "parts" / "bracket.stl")
    predictor = Predictor()
    errors = []
    for fraction in (1.0, 0.5):
        mesh = tetrahedralize(surface, default_mesh_size(surface) * fraction)
        truth = uniform_heating(mesh)
        predicted = predictor.predict(mesh).mesh.point_data["temperature_pred"]
        errors.append(np.linalg.norm(predicted - truth) / np.linalg.norm(truth))
    assert max(errors) < FINER_MESH_ERROR and errors[1] < errors[0] + 0.02, errors


def _star_prism(mesh_size: float) -> meshop.Mesh:
    """A 14-point star prism (0.4 m across, 0.12 m thick), a shape no training family makes."""
    from meshop.meshing import gmsh_session, mesh_arrays

    with gmsh_session("star prism") as gmsh:
        occ = gmsh.model.occ
        angles = np.linspace(0, 2 * np.pi, 14, endpoint=False)
        radii = np.where(np.arange(14) % 2 == 0, 0.2, 0.09)
        corners = [occ.addPoint(r * np.cos(a), r * np.sin(a), 0) for r, a in zip(radii, angles)]
        lines = [occ.addLine(corners[i], corners[(i + 1) % 14]) for i in range(14)]
        occ.extrude([(2, occ.addPlaneSurface([occ.addCurveLoop(lines)]))], 0, 0, 0.12)
        occ.synchronize()
        gmsh.option.setNumber("Mesh.MeshSizeMax", mesh_size)
        gmsh.option.setNumber("Mesh.MeshSizeMin", mesh_size / 3)
        gmsh.model.mesh.generate(3)
        points, tets = mesh_arrays(gmsh, 3)
    return meshop.Mesh(points, {"tetra": tets})


@pytest.mark.slow
def test_bundled_default_error_falls_when_a_part_is_meshed_finer():
    """Issue 15: meshing finer must not make the answer worse. A star prism at ~7k and ~47k nodes
    (FEM on each mesh): the default trained on meshes of 1k-16k nodes (--resolution 1000:16000)
    is 2.9 % then 2.2 % off; the previous default, trained on ~3k-node meshes only, 2.3 % then
    2.7 % (the rise this test catches)."""
    from meshop.data.problems.heat3d import uniform_heating

    predictor = Predictor()
    errors = []
    for mesh_size in (0.01, 0.005):
        mesh = _star_prism(mesh_size)
        truth = uniform_heating(mesh, solver="cg")
        predicted = predictor.predict(mesh, estimate=False).mesh.point_data["temperature_pred"]
        errors.append(np.linalg.norm(predicted - truth) / np.linalg.norm(truth))
    assert errors[1] < errors[0] < 0.04, errors


def test_same_part_in_millimetres_and_metres(heat_checkpoint):
    """-ΔT = q: with q fixed, T scales with L²; the model sees q L² and predicts T consistently."""
    predictor = Predictor(heat_checkpoint)
    metres = _cube(7)
    millimetres = _cube(7, scale=1000.0, shift=(250.0, -40.0, 3.0))
    t_m = predictor.predict(metres).mesh.point_data["temperature_pred"]
    t_mm = predictor.predict(millimetres).mesh.point_data["temperature_pred"]
    np.testing.assert_allclose(t_mm, t_m * 1e6, rtol=1e-4, atol=1e-6 * np.abs(t_mm).max())


def test_boundary_values_imposed_and_error_reported(heat_checkpoint):
    mesh = _cube(7)
    g = np.where(mesh.boundary_mask, 3.0 + mesh.points[:, 1], 0.0)
    result = Predictor(heat_checkpoint).predict(mesh.with_point_data(boundary_temperature=g))
    pred = result.mesh.point_data["temperature_pred"]
    np.testing.assert_allclose(pred[mesh.boundary_mask], g[mesh.boundary_mask], rtol=1e-6)
    error = result.mesh.point_data["temperature_error"]
    truth = mesh.point_data["temperature"]
    np.testing.assert_allclose(error, pred - truth, rtol=1e-6, atol=1e-12)
    assert result.metrics["temperature"]["relative_l2"] == pytest.approx(
        np.linalg.norm(pred - truth) / np.linalg.norm(truth), rel=1e-6)


def test_missing_input_uses_default_and_says_so(heat_checkpoint, tmp_path):
    mesh = _cube(5)
    bare = meshop.Mesh(mesh.points, mesh.cells)
    meshop.write(bare, tmp_path / "bare.vtu")
    result = predict(tmp_path / "bare.vtu", heat_checkpoint)
    assert set(result.defaults) == {"source", "boundary_temperature"}
    assert any("source = 1" in note for note in result.notes)
    written = meshop.read(tmp_path / "bare.pred.vtu")
    assert "temperature_pred" in written.point_data and "temperature_error" not in written.point_data


def test_predicting_on_a_prediction_leaves_the_earlier_ones_fields_out(heat_checkpoint, tmp_path):
    """A ``.pred.vtu`` given to predict again: what the earlier prediction wrote (its estimate, its
    refinement, another model's target) does not survive beside the new prediction as if it were
    its own; the new prediction's fields replace those of the same name, the user's own are kept."""
    mesh = _cube(5)
    bare = meshop.Mesh(mesh.points, mesh.cells)
    n = bare.n_points
    earlier = bare.with_point_data(temperature_pred=np.full(n, 7.0), temperature_estimated_error=np.ones(n),
                                   temperature_refined=np.full(n, 8.0), velocity_pred=np.ones((n, 3)),
                                   my_data=np.arange(n, dtype=float)
                                   ).with_field_data(temperature_error_estimate=0.5, velocity_error_estimate=0.1,
                                                     my_note=3.0)
    meshop.write(earlier, tmp_path / "part.pred.vtu")
    result = predict(tmp_path / "part.pred.vtu", heat_checkpoint, estimate=False)
    written = meshop.read(tmp_path / "part.pred.pred.vtu")
    assert set(written.point_data) == {"temperature_pred", "my_data"}
    assert set(written.field_data) == {"my_note"}
    np.testing.assert_array_equal(written.point_data["my_data"], np.arange(n))
    assert not np.allclose(written.point_data["temperature_pred"], 7.0)
    assert any("holds an earlier prediction" in note and "temperature_refined" in note for note in result.notes)


def test_closed_stl_is_tetrahedralized(heat_checkpoint, tmp_path):
    trimesh.creation.box((30.0, 20.0, 10.0)).export(tmp_path / "box.stl")
    result = predict(tmp_path / "box.stl", heat_checkpoint, mesh_size=3.0)
    out = meshop.read(tmp_path / "box.stl.pred.vtu")        # the STL's own name: no clash with box.vtu's
    assert "tetra" in out.cells and out.n_points == result.mesh.n_points > 100
    assert np.isfinite(out.point_data["temperature_pred"]).all()
    assert "filled the closed surface" in result.notes[0]
    # every node of the volume mesh lies inside the box
    assert (out.points >= -15 - 1e-9).all() and (out.points <= 15 + 1e-9).all()


def _cli(*args, subprocess_run: bool = False):
    """Exit code, stdout and stderr of the meshop command (in-process unless asked)."""
    if subprocess_run:
        run = subprocess.run([sys.executable, "-m", "meshop", *map(str, args)], capture_output=True, text=True)
        return run.returncode, run.stdout, run.stderr
    from typer.testing import CliRunner

    from meshop.cli import app

    result = CliRunner().invoke(app, list(map(str, args)))
    return result.exit_code, result.stdout, result.stderr


def _bad_cases(tmp_path, heat_checkpoint):
    good = tmp_path / "part.vtu"
    meshop.write(_cube(5), good)
    no_default = tmp_path / "strict.safetensors"
    ckpt = checkpoint.load(heat_checkpoint)
    ckpt.fields.input_defaults = {}
    checkpoint.save(no_default, ckpt)
    bare = tmp_path / "bare.vtu"
    meshop.write(meshop.Mesh(_cube(5).points, _cube(5).cells), bare)
    sphere = trimesh.creation.icosphere(2)
    sphere.faces = sphere.faces[:-4]
    sphere.export(tmp_path / "open.stl")
    corrupt_mesh = tmp_path / "corrupt.vtu"
    corrupt_mesh.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    corrupt_ckpt = tmp_path / "corrupt.safetensors"
    corrupt_ckpt.write_bytes(heat_checkpoint.read_bytes()[:500])
    mismatched = tmp_path / "mismatched.safetensors"
    wide = models.get("gno", feature_count(ckpt.fields, 3) + 1, 1, 3, width=8, layers=1, kernel_width=8)
    checkpoint.save(mismatched, checkpoint.Checkpoint(wide, "gno", ckpt.fields, ckpt.graph))
    flat = tmp_path / "flat.vtu"
    square = meshop.Mesh(np.array([[0, 0], [1, 0], [0, 1.0]]), {"triangle": np.array([[0, 1, 2]])})
    meshop.write(square, flat)
    vector_source = tmp_path / "wide.vtu"      # a vector where the model reads a scalar: was a matmul traceback
    meshop.write(_cube(5).with_point_data(source=np.ones((_cube(5).n_points, 2))), vector_source)
    box = trimesh.creation.box(extents=(1, 1, 1))        # two boxes sharing an edge: was "open (0 edges ...)"
    edge = trimesh.util.concatenate([box, box.copy().apply_translation([1, 1, 0])])
    edge.merge_vertices()
    edge.export(tmp_path / "edge.stl")
    top = trimesh.creation.icosphere(1)                  # two balls touching at a vertex: was "gmsh produced no tetrahedra"
    pole = top.vertices[np.argmax(top.vertices[:, 2])]
    pinched = trimesh.util.concatenate([top, top.copy().apply_translation(2 * pole)])
    pinched.merge_vertices()
    pinched.export(tmp_path / "pinched.stl")
    return [
        (tmp_path / "edge.stl", heat_checkpoint, "the surface is not manifold: 1 edge(s) belong to more than two "
                                                 "triangles (first: the edge from (0.5, 0.5, -0.5) to (0.5, 0.5, 0.5), "
                                                 "shared by 4)"),
        (tmp_path / "pinched.stl", heat_checkpoint, "the surface is not manifold: 2 separate sheets of triangles meet "
                                                    "at point"),
        (bare, no_default, "point field 'source' is missing"),
        (tmp_path / "open.stl", heat_checkpoint, "surface is open"),
        (corrupt_mesh, heat_checkpoint, "corrupt.vtu"),
        (good, corrupt_ckpt, "not a readable safetensors checkpoint"),
        (good, mismatched, "node features but this meshop builds"),
        (flat, heat_checkpoint, "the mesh is 2D but model 'gno' was trained on 3D meshes (every point has z = 0: "
                                "a flat triangle mesh"),
        (flat, "heat3d", "the mesh is 2D but model 'heat3d' (a 'mgno') was trained on 3D meshes"),   # said 'mgno
        (tmp_path / "missing.vtu", heat_checkpoint, "no such file"),
        (vector_source, heat_checkpoint, "wide.vtu: point field 'source' has 2 component(s) per point but the model reads 1"),
    ]


def test_cli_bad_input_exit_code_2_one_line_no_output(tmp_path, heat_checkpoint):
    for i, (mesh_path, model, phrase) in enumerate(_bad_cases(tmp_path, heat_checkpoint)):
        code, _, err = _cli("predict", mesh_path, "--model", model, subprocess_run=i == 0)
        assert code == 2, (mesh_path, err)
        lines = [line for line in err.strip().splitlines() if not line.endswith(" ...")]   # progress lines aside
        assert len(lines) == 1 and "Traceback" not in err, err
        assert phrase in lines[0], (phrase, lines[0])
        stem = mesh_path.name.split(".")[0]
        assert not list(tmp_path.glob(f"{stem}.pred*")), "a failed prediction left a file behind"
        assert not list(tmp_path.glob(".*")), "a temporary file was left behind"


def test_a_mesh_without_interior_nodes_is_warned_about(tmp_path, heat_checkpoint):
    """A 1 x 1 x 0.01 slab one cell thick (a thin plate meshed coarser than its thickness): every
    node is on the surface, so the prediction is the boundary temperature and the error estimate
    says 0. It was silent; now one warning names the cause."""
    slab = MeshTet.init_tensor(np.linspace(0, 1, 6), np.linspace(0, 1, 6), np.array([0.0, 0.01]))
    meshop.write(meshop.Mesh(slab.p.T, {"tetra": slab.t.T}), tmp_path / "slab.vtu")
    code, out, err = _cli("predict", tmp_path / "slab.vtu", "--model", heat_checkpoint)
    assert code == 0, err
    assert ("meshop: warning: every one of the 72 nodes is on the part's surface, none inside, so temperature_pred "
            "is just boundary_temperature there: the mesh does not resolve the part's thickness (the thinnest side "
            "of its bounding box is 0.01)") in err, err
    assert not [note for note in Predictor(heat_checkpoint).predict(_cube(5)).notes if "none inside" in note]


def test_a_mesh_coarser_than_every_training_mesh_is_noted():
    """The bundled default was trained on meshes of 935-18,335 nodes; on a 216-node cube its
    estimated error is several times its usual; a note says why (a finer mesh, none)."""
    coarse = Predictor("heat3d").predict(_cube(6))
    assert [n for n in coarse.notes if n.startswith("note: the mesh has 216 nodes, fewer than any of the model's "
                                                     "training meshes (935-18,335 nodes)")]
    assert coarse.estimate["temperature"].relative > 0.08
    fine = Predictor("heat3d").predict(_cube(11))
    assert fine.mesh.n_points == 1331 and not [n for n in fine.notes if "training meshes" in n]


def test_an_interrupted_picture_leaves_no_earlier_one_beside_the_new_prediction(heat_checkpoint, tmp_path,
                                                                               monkeypatch):
    """Ctrl-C (or a failure) while --render drew left the earlier run's picture beside the new
    prediction or series, as if it were theirs."""
    import meshop.prediction as prediction
    import meshop.viz

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    part = meshop.write(_cube(5), tmp_path / "part.vtu")
    earlier = tmp_path / "part.pred.png"
    earlier.write_bytes(b"the picture of an earlier prediction")
    monkeypatch.setattr(prediction, "_render", interrupted)
    with pytest.raises(KeyboardInterrupt):
        predict(part, heat_checkpoint, render=True, estimate=False)
    assert (tmp_path / "part.pred.vtu").is_file() and not earlier.exists()

    earlier = [tmp_path / "b.pred.gif", tmp_path / "b.pred.errors.png"]
    for path in earlier:
        path.write_bytes(b"the pictures of an earlier rollout")
    monkeypatch.setattr(meshop.viz, "animate", interrupted)
    with pytest.raises(KeyboardInterrupt):
        predict(EXAMPLES / "parts" / "bracket.vtu", "heat3d-transient", steps=1, out=tmp_path / "b.pred.pvd",
                render=True)
    assert (tmp_path / "b.pred.pvd").is_file() and not any(path.exists() for path in earlier)


def test_cli_predict_writes_and_reports(tmp_path, heat_checkpoint):
    meshop.write(_cube(5), tmp_path / "part.vtu")
    code, out, err = _cli("predict", tmp_path / "part.vtu", "--model", heat_checkpoint, "--render",
                          subprocess_run=True)
    assert code == 0, err
    assert "part.pred.vtu" in out and "relative L2" in out and "features" in out and "model" in out
    assert "temperature_error" in meshop.read(tmp_path / "part.pred.vtu").point_data
    # the comparison picture: three panels side by side, not blank
    from PIL import Image

    picture = np.asarray(Image.open(tmp_path / "part.pred.png").convert("RGB"), dtype=float)
    assert picture.shape[1] > 2 * picture.shape[0]
    assert picture.std() > 10 and len(np.unique(picture.reshape(-1, 3), axis=0)) > 50


def test_bundled_local_model_gives_the_outputs_pinned_in_tests_data(kernel_path):
    """``heat3d-gno``'s predictions on the bracket equal those stored in tests/data to 1e-6 of
    their range: bundled_bracket_tie_band.npz, since kNN near-ties are settled by node id (issue
    18, item 8). That moved them from the outputs of commit f68e3e2 (before the time axis) by
    1.1 % relative L2 (max 4.5 % of the range, where the ties were), with the same
    finite-element error estimate (8.26 % -> 8.27 %)."""
    data = Path(__file__).parent / "data"
    reference, before = (np.load(data / f"bundled_bracket_{tag}.npz")["heat3d_gno"] for tag in ("tie_band", "f68e3e2"))
    bracket = meshop.read(EXAMPLES / "parts" / "bracket.vtu")
    predicted = Predictor("heat3d-gno").predict(bracket, estimate=False).mesh.point_data["temperature_pred"]
    assert np.abs(predicted - reference).max() <= 1e-6 * np.abs(reference).max()
    assert np.linalg.norm(predicted - before) <= 0.015 * np.linalg.norm(before)


def test_bundled_default_gives_its_pinned_outputs_and_beats_its_prior(kernel_path):
    """The default (``heat3d``: the hybrid with a coarse prior, trained on meshes of 1k-16k nodes,
    issue 15) predicts on the bracket what bundled_bracket_multires.npz holds, to 1e-6 of the
    range; there it is within 8 % of the finite-element solution and better than its coarse prior
    alone (12.5 %); on a ball, the compact shape the prior-free default of two releases ago
    overestimated by 15-20 %, within 4 %. (The previous default, trained on ~3k-node meshes, was
    6.7 % off on the bracket: the price of the training on coarse and fine meshes is 0.7 points
    here; what it buys is test_bundled_default_error_falls_when_a_part_is_meshed_finer.)"""
    from meshop.data.problems.heat3d import uniform_heating

    data = Path(__file__).parent / "data"
    reference = np.load(data / "bundled_bracket_multires.npz")["heat3d"]
    bracket = meshop.read(EXAMPLES / "parts" / "bracket.vtu")
    predictor = Predictor("heat3d")
    predicted = predictor.predict(bracket, estimate=False).mesh.point_data["temperature_pred"]
    assert np.abs(predicted - reference).max() <= 1e-6 * np.abs(reference).max()
    mesh = meshop.Mesh(bracket.points, bracket.cells)
    truth = uniform_heating(mesh)
    error = lambda u: np.linalg.norm(u - truth) / np.linalg.norm(truth)
    fields = predictor.checkpoint.fields
    prior = coarse_prior(mesh, fields, {n: fields.input_array(mesh, n)[0] for n in fields.inputs})
    assert error(predicted) < 0.08 and error(prior[:, 0]) > 0.12
    ball = MeshTet.init_ball(4)
    ball = meshop.Mesh(ball.p.T * 0.05, {"tetra": ball.t.T})       # 5 cm, 6,017 nodes
    truth = uniform_heating(ball)
    predicted = predictor.predict(ball, estimate=False).mesh.point_data["temperature_pred"]
    assert error(predicted) < 0.04


def test_bundled_time_models_give_the_outputs_pinned_in_tests_data(kernel_path):
    """The bundled time-dependent models roll out what bundled_time_models.npz holds, to 1e-6 of
    the range. ``heat3d-transient`` 5 steps on the bracket (defaults: 1 K start, surfaces held at
    0 K), recorded with the code of commit 66dffbe, before the stepper hooks, the device radius
    graphs and the decoder's query order, which were to keep behaviour; ``mpm2d`` 4 steps of a
    jittered 15 x 15 cloud of the four materials thrown sideways, recorded when the model was
    replaced (stop 13: the GIOROM trained on 400 scenes, then fine-tuned twice, issue 13; commit
    2ab6ca0's model; before it stop 8's, commit f9cacc5). The particles' range is their
    positions' (float32 arithmetic: a CPU with other SIMD kernels, e.g. AVX-512, rounds a few ulp
    differently, ~1e-7 m at 0.3 m; 1e-6 of the 4-step displacement would be below one ulp)."""
    pinned = np.load(Path(__file__).parent / "data" / "bundled_time_models.npz")
    bracket = meshop.read(EXAMPLES / "parts" / "bracket.vtu")
    transient = meshop.predict(bracket, model="heat3d-transient", steps=5, write=False)
    temperature = transient.trajectory.fields["temperature_pred"]
    assert np.abs(temperature - pinned["transient"]).max() <= 1e-6 * np.abs(pinned["transient"]).max()
    points = pinned["cloud"]
    cloud = meshop.Mesh(points, None, {"material": np.arange(len(points)) % 4,
                                       "velocity": np.tile([0.3, -0.1], (len(points), 1))})
    positions = meshop.predict(cloud, model="mpm2d", steps=4, write=False).trajectory.positions
    assert np.abs(positions - pinned["particles"]).max() <= 1e-6 * np.abs(pinned["particles"]).max()


@pytest.mark.parametrize("args, kwargs, error, message", [
    ((np.zeros((4, 3)),), {}, TypeError, "predict needs a meshop.Mesh, a Trajectory or a mesh file path, got ndarray"),
    ((None,), {}, TypeError, "predict needs a meshop.Mesh"),
    ((EXAMPLES / "parts" / "bracket.vtu",), {"out": 5}, TypeError, "out must be a file path"),
    ((EXAMPLES / "parts" / "bracket.vtu",), {"device": 5, "write": False}, TypeError, "device must be a string"),
    ((EXAMPLES / "parts" / "bracket.vtu",), {"max_nodes": "10", "write": False}, MeshError,
     "--max-nodes must be an integer, got '10'"),
    ((EXAMPLES / "parts" / "bracket.vtu",), {"max_nodes": 2.5, "write": False}, MeshError, "--max-nodes must be an integer"),
    ((EXAMPLES / "parts" / "bracket.vtu",), {"dt": "x", "steps": 2, "write": False}, MeshError, "--dt must be a number"),
    ((EXAMPLES / "parts" / "bracket.vtu",), {"refine": "x", "write": False}, MeshError, "--refine must be a number"),
    ((EXAMPLES / "parts" / "bracket.stl",), {"mesh_size": "a", "write": False}, MeshError, "--mesh-size must be a number"),
])
def test_python_arguments_of_the_wrong_type_are_named(args, kwargs, error, message):
    """Not pathlib's, re's or numpy's TypeError from deep inside, nor 2.5 nodes taken as a count."""
    with pytest.raises(error, match=message):
        meshop.predict(*args, **kwargs)
