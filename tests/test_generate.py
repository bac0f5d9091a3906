"""Dataset generation: bit-for-bit determinism across workers, manifest, fields, CLI."""

from __future__ import annotations

import importlib
import json

import numpy as np
import pytest
from typer.testing import CliRunner

import meshop
from meshop import MeshError
from meshop.cli import app
from meshop.data import generate
from meshop.data.fem import assemble
from meshop.data.problems import PROBLEMS, get_problem
from meshop.data.shapes import random_domain_2d


def _arrays(folder, n):
    meshes = [meshop.read(folder / f"sample_{i:05d}.vtu") for i in range(n)]
    return [(m.points, m.cells, m.point_data) for m in meshes]


def _same(a, b) -> bool:
    for (pa, ca, da), (pb, cb, db) in zip(a, b):
        if not (np.array_equal(pa, pb) and ca.keys() == cb.keys() and da.keys() == db.keys()):
            return False
        if not all(np.array_equal(ca[k], cb[k]) for k in ca) or not all(np.array_equal(da[k], db[k]) for k in da):
            return False
    return True


def test_same_seed_same_arrays_whatever_the_workers(tmp_path):
    one = generate("poisson2d", 3, tmp_path / "one", seed=11, resolution=200, progress=False)
    two = generate("poisson2d", 3, tmp_path / "two", seed=11, resolution=200, workers=2, progress=False)
    other = generate("poisson2d", 3, tmp_path / "other", seed=12, resolution=200, progress=False)
    assert _same(_arrays(one, 3), _arrays(two, 3))
    assert not _same(_arrays(one, 3), _arrays(other, 3))
    assert (one / "dataset.json").read_text() == (two / "dataset.json").read_text()


def test_a_resolution_range_spreads_every_split_over_it_log_uniformly(tmp_path):
    from meshop.data.generate import sample_resolutions

    targets = np.array(sample_resolutions((1000, 16000), 500))
    assert targets.min() == 1000 and 15000 < targets.max() <= 16000
    # log-uniform: each quarter of log(range) holds a quarter of the samples, in every split
    for part in (targets[:400], targets[400:450], targets[450:]):
        counts, _ = np.histogram(np.log(part), bins=4, range=(np.log(1000), np.log(16000)))
        assert np.abs(counts - len(part) / 4).max() <= 0.05 * len(part) + 1
    assert sample_resolutions(300, 3) == [300, 300, 300] and sample_resolutions(None, 2) == [None, None]

    out = generate("poisson2d", 4, tmp_path / "ds", seed=2, resolution=(150, 600), progress=False)
    manifest = json.loads((out / "dataset.json").read_text())
    assert manifest["parameters"]["resolution"] == [150, 600]
    nodes = [entry["n_points"] for entry in manifest["samples"]]
    expected = sample_resolutions((150, 600), 4)          # 150, 353, 208, 490 nodes asked
    # (poisson2d lands within ~35 % of a target this small; the order of the sizes is exact)
    assert np.allclose(nodes, expected, rtol=0.4) and (np.argsort(nodes) == np.argsort(expected)).all(), nodes
    # each sample is the one a fixed resolution draws from the same seed stream
    alone = generate("poisson2d", 2, tmp_path / "alone", seed=2, resolution=150, progress=False)
    assert _same(_arrays(out, 1), _arrays(alone, 1))


@pytest.mark.parametrize("resolution", [(600, 600), (0, 10), (10,), (1, 2, 3), 2.5, True, (10, float("nan"))])
def test_bad_resolutions_are_refused_with_the_expected_form(tmp_path, resolution):
    with pytest.raises(MeshError, match="expected a positive count"):
        generate("poisson2d", 2, tmp_path / "ds", resolution=resolution, progress=False)


def test_cli_reads_a_resolution_range_and_refuses_a_malformed_one(tmp_path):
    runner = CliRunner()
    good = runner.invoke(app, ["generate", "poisson2d", "--n", "3", "--out", str(tmp_path / "ds"),
                               "--resolution", "150:300", "--quiet"])
    assert good.exit_code == 0, good.output
    assert json.loads((tmp_path / "ds" / "dataset.json").read_text())["parameters"]["resolution"] == [150, 300]
    bad = runner.invoke(app, ["generate", "poisson2d", "--n", "3", "--out", str(tmp_path / "bad"),
                              "--resolution", "150-300", "--quiet"])
    assert bad.exit_code == 2 and "LOW:HIGH" in bad.output and not (tmp_path / "bad").exists()


def test_manifest_describes_problem_fields_split_and_samples(tmp_path):
    out = generate("poisson2d", 5, tmp_path / "ds", seed=4, resolution=150, progress=False,
                   split=(0.6, 0.2, 0.2))
    manifest = json.loads((out / "dataset.json").read_text())
    assert manifest["problem"] == "poisson2d" and manifest["seed"] == 4
    assert manifest["meshop_version"] == meshop.__version__
    assert manifest["parameters"]["resolution"] == 150
    assert manifest["inputs"] == ["source", "boundary_value"] and manifest["targets"] == ["u"]
    roles = {name: f["role"] for name, f in manifest["fields"].items()}
    assert roles == {"source": "input", "boundary_value": "input", "u": "target"}
    assert all(f["meaning"] for f in manifest["fields"].values())
    assert manifest["fields"]["source"]["length_power"] == 2
    assert [len(manifest["split"][k]) for k in ("train", "val", "test")] == [3, 1, 1]
    files = sorted(p.name for p in out.glob("sample_*.vtu"))
    assert sorted(sum(manifest["split"].values(), [])) == files
    for entry in manifest["samples"]:
        mesh = meshop.read(out / entry["file"])
        assert entry["n_points"] == mesh.n_points and entry["n_cells"] == len(mesh.cells["triangle"])
        assert entry["n_holes"] == _count_holes(mesh)


def _count_holes(mesh) -> int:
    from meshop.data.problems.poisson2d import boundary_loops

    return boundary_loops(mesh) - 1


def test_poisson2d_fields_and_stored_solution_satisfy_the_system(tmp_path):
    out = generate("poisson2d", 2, tmp_path / "ds", seed=1, resolution=300, progress=False)
    for i in range(2):
        mesh = meshop.read(out / f"sample_{i:05d}.vtu")
        f, g, u = (mesh.point_data[k] for k in ("source", "boundary_value", "u"))
        boundary = mesh.boundary_mask
        assert np.all(g[~boundary] == 0.0) and np.any(g[boundary] != 0.0)
        assert np.array_equal(u[boundary], g[boundary])            # Dirichlet values exactly
        stiffness, load = assemble(mesh.points, mesh.cells["triangle"], f)
        interior = ~boundary
        residual = (stiffness @ u - load)[interior]
        assert np.linalg.norm(residual) <= 1e-8 * np.linalg.norm(load[interior])


def test_poisson_solver_on_random_domains_with_holes_reproduces_a_harmonic_function():
    from meshop.data.fem import solve_poisson

    points, triangles = random_domain_2d(np.random.default_rng(2), 1500)   # seed 2 has holes
    exact = points[:, 0] ** 2 - points[:, 1] ** 2 + 0.5 * points[:, 0] * points[:, 1]
    boundary = meshop.Mesh(points, {"triangle": triangles}).boundary_mask
    u = solve_poisson(points, triangles, np.zeros(len(points)), np.flatnonzero(boundary), exact[boundary]).u
    assert np.abs(u - exact).max() < 5e-3                          # O(h^2), h ~ 0.07
    assert u.max() <= exact[boundary].max() + 1e-12 and u.min() >= exact[boundary].min() - 1e-12


def test_heat3d_sample_fields_and_size_are_recorded(tmp_path):
    out = generate("heat3d", 1, tmp_path / "heat", seed=0, resolution=600, progress=False)
    entry = json.loads((out / "dataset.json").read_text())["samples"][0]
    mesh = meshop.read(out / entry["file"])
    q, g, t = (mesh.point_data[k] for k in ("source", "boundary_temperature", "temperature"))
    boundary = mesh.boundary_mask
    assert mesh.dim == 3 and "tetra" in mesh.cells
    assert np.all(g[~boundary] == 0.0) and np.array_equal(t[boundary], g[boundary])
    assert np.std(q) > 0.1 and np.std(g[boundary]) > 0.1           # O(1) fields in physical units
    assert entry["size"] <= entry["bbox_diagonal"] <= 3 * entry["size"]
    assert np.isclose(entry["source_scale"], entry["size"] ** 2)
    assert np.isclose(entry["bbox_diagonal"], mesh.size)


def test_refuses_a_foreign_folder_and_replaces_its_own_dataset(tmp_path):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(MeshError, match="not empty"):
        generate("darcy2d", 1, foreign, resolution=9, progress=False)
    generate("darcy2d", 1, foreign, resolution=9, progress=False, overwrite=True)
    assert (foreign / "notes.txt").exists() and (foreign / "sample_00000.vtu").exists()

    ours = generate("darcy2d", 3, tmp_path / "ours", resolution=9, progress=False)
    generate("darcy2d", 2, ours, resolution=9, progress=False)      # a meshop dataset: replaced
    assert sorted(p.name for p in ours.iterdir()) == ["dataset.json", "sample_00000.vtu", "sample_00001.vtu"]


def test_failure_leaves_nothing_half_written(tmp_path, monkeypatch):
    gen = importlib.import_module("meshop.data.generate")   # the attribute is the function

    def boom(task):
        raise RuntimeError("solver exploded")

    monkeypatch.setattr(gen, "_make_sample", boom)
    with pytest.raises(RuntimeError, match="exploded"):
        generate("darcy2d", 2, tmp_path / "ds", resolution=9, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_at_the_start_leaves_no_staging_folder(tmp_path, monkeypatch):
    """The manifest of the run could not be written: its empty staging folder stayed."""
    import errno

    from meshop.data import staging

    def full_disk(path):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(staging, "atomic_path", full_disk)
    with pytest.raises(MeshError, match="ds: cannot create the dataset folder there \\(No space left on device\\)"):
        generate("darcy2d", 2, tmp_path / "ds", resolution=9, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_an_interrupted_pool_starts_no_more_samples(monkeypatch):
    """Ctrl-C or SIGTERM reaching the parent alone (kill PID) waited for every queued sample."""
    gen = importlib.import_module("meshop.data.generate")
    shutdowns = []

    class Future:
        def result(self):
            raise KeyboardInterrupt

    class Pool:
        def __init__(self, **kwargs):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.shutdown()

        def submit(self, fn, task):
            return Future()

        def shutdown(self, wait=True, cancel_futures=False):
            shutdowns.append(cancel_futures)

    monkeypatch.setattr(gen, "ProcessPoolExecutor", Pool)
    monkeypatch.setattr(gen, "as_completed", iter)
    with pytest.raises(KeyboardInterrupt):
        gen._run([gen.SampleTask("darcy2d", i, None, 9, {}, f"s{i}.vtu") for i in range(4)], 2, None)
    assert shutdowns[0] is True        # queued samples cancelled before the pool is waited for


def test_bad_arguments_are_clear_errors(tmp_path):
    with pytest.raises(MeshError, match="unknown problem 'nope'"):
        generate("nope", 1, tmp_path / "a")
    with pytest.raises(MeshError, match="no option 'domain'"):
        generate("poisson2d", 1, tmp_path / "a", domain="random")
    with pytest.raises(MeshError, match="split"):
        generate("darcy2d", 1, tmp_path / "a", split=(0.5, 0.2, 0.2))


def test_cli_refuses_an_unknown_solver_and_a_negative_frame_count(tmp_path):
    """Both were tracebacks from inside the first sample (ValueError: unknown solver; high <= 0)."""
    runner = CliRunner()
    for args, phrase in [(["heat3d", "--solver", "bogus"], "--solver 'bogus': unknown linear solver (known: direct, cg, amg, recycle)."),
                         (["heat3d-transient", "--frames", "-1"], "heat3d-transient needs frames >= 1, stride >= 1 and frame_dt > 0, got -1")]:
        result = runner.invoke(app, ["generate", *args, "--n", "1", "--out", str(tmp_path / "ds"), "--quiet"])
        assert result.exit_code == 2 and "Traceback" not in result.output, result.output
        assert phrase in result.stderr
        assert list(tmp_path.iterdir()) == []


def test_registry_lists_fields_of_every_problem():
    assert set(PROBLEMS) == {"poisson2d", "darcy2d", "heat3d", "heat3d-transient", "mpm2d", "mpm3d", "burgers2d"}
    assert set(get_problem("mpm2d").inputs) == {"material"} and set(get_problem("mpm3d").targets) == {"velocity"}
    assert set(get_problem("burgers2d").targets) == {"velocity"}
    assert set(get_problem("heat3d").inputs) == {"source", "boundary_temperature"}
    assert set(get_problem("heat3d").targets) == {"temperature"}
    assert set(get_problem("darcy2d").inputs) == {"permeability"}
    mesh = get_problem("darcy2d").sample(np.random.default_rng(0), resolution=9)
    assert set(mesh.point_data) == {"permeability", "u"} and mesh.n_points == 81


def test_cli_generate(tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["generate", "darcy2d", "--n", "2", "--out", str(tmp_path / "d"),
                                 "--resolution", "9", "--quiet", "--split", "0.5,0.5,0"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "d" / "dataset.json").read_text())
    assert manifest["split"] == {"train": ["sample_00000.vtu"], "val": ["sample_00001.vtu"], "test": []}
    result = runner.invoke(app, ["generate", "poisson2d", "--n", "1", "--out", str(tmp_path / "p"),
                                 "--domain", "random"])
    assert result.exit_code == 2 and "no option 'domain'" in result.output


def test_a_rerun_resumes_only_the_same_run(tmp_path, monkeypatch):
    gen = importlib.import_module("meshop.data.generate")
    real, solved = gen._make_sample, []

    def fails_on_sample_2(task):
        if task.index == 2:
            raise RuntimeError("solver exploded")
        return real(task)

    def counted(task):
        solved.append(task.index)
        return real(task)

    monkeypatch.setattr(gen, "_make_sample", fails_on_sample_2)
    with pytest.raises(RuntimeError, match="exploded"):
        generate("darcy2d", 4, tmp_path / "ds", seed=7, resolution=9, progress=False)
    monkeypatch.setattr(gen, "_make_sample", counted)
    generate("darcy2d", 4, tmp_path / "ds", seed=8, resolution=9, progress=False)   # another run: all solved
    assert solved == [0, 1, 2, 3] and len(list(tmp_path.glob(".ds.partial-*"))) == 1
    other = generate("darcy2d", 4, tmp_path / "fresh", seed=7, resolution=9, progress=False)
    solved.clear()
    generate("darcy2d", 4, tmp_path / "ds", seed=7, resolution=9, progress=False)   # the same run: resumed
    assert solved == [2, 3] and not list(tmp_path.glob(".ds.partial-*"))
    assert [p.read_bytes() for p in sorted((tmp_path / "ds").iterdir())] == \
        [p.read_bytes() for p in sorted(other.iterdir())]


@pytest.mark.parametrize("kwargs, error, message", [
    ({"problem": 123}, TypeError, "problem must be a problem name such as 'heat3d' or a Problem, got int"),
    ({"n": 1.5}, MeshError, "n must be an integer, got 1.5"),
    ({"n": "2"}, MeshError, "n must be an integer, got '2'"),
    ({"out": 5}, TypeError, "out must be a file path"),
])
def test_generate_arguments_of_the_wrong_type_are_named(tmp_path, kwargs, error, message):
    with pytest.raises(error, match=message):
        meshop.generate(**{"problem": "poisson2d", "n": 1, "out": tmp_path / "d", "progress": False, **kwargs})
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args, phrase", [
    (["poisson2d", "--seed", "-1"], "seed must be a non-negative integer, got -1."),
    (["poisson2d", "--n", "99999999999999999999"], "more than one dataset folder holds (at most 10,000,000)"),
    (["darcy2d", "--domain", "circle"], "darcy2d sample 0: unknown darcy2d domain 'circle'"),
    (["darcy2d", "--resolution", "2"], "darcy2d sample 0: darcy2d resolution must be >= 3 nodes per side, got 2."),
    (["darcy2d", "--resolution", "2", "--solver", "recycle"], "darcy2d resolution must be >= 3 nodes per side, got 2."),
])
def test_cli_generate_refuses_bad_values_in_one_sentence(tmp_path, args, phrase):
    """Each was a traceback: numpy's ValueError on a negative seed, an OverflowError on a huge n, a
    RuntimeError wrapping darcy2d's ValueError."""
    args = [*args, "--n", "2"] if "--n" not in args else args
    result = CliRunner().invoke(app, ["generate", *args, "--out", str(tmp_path / "ds"), "--quiet"])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("meshop: error: ") and phrase in lines[0], lines
    assert list(tmp_path.iterdir()) == []


def test_cli_generate_into_an_impossible_folder_is_one_sentence(tmp_path):
    """An --out below a file was a NotADirectoryError traceback from the staging folder."""
    (tmp_path / "notes.txt").write_text("a file")
    out = tmp_path / "notes.txt" / "ds"
    result = CliRunner().invoke(app, ["generate", "darcy2d", "--n", "2", "--resolution", "9",
                                      "--out", str(out), "--quiet"])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert result.stderr.strip() == (f"meshop: error: {out}: cannot create the dataset folder there "
                                     "(Not a directory); choose a writable folder for --out.")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_a_sample_out_of_memory_names_the_resolution(tmp_path, monkeypatch):
    """A resolution too large for the machine was a MemoryError traceback inside a RuntimeError."""
    from meshop.data.problems import Problem

    def too_big(self, rng, resolution=None, **options):
        raise MemoryError("Unable to allocate 7.28 TiB for an array")

    monkeypatch.setattr(Problem, "sample_with_info", too_big)
    with pytest.raises(MeshError, match=r"^darcy2d sample 0: out of memory at resolution 1000000 \(Unable to "
                                        r"allocate 7\.28 TiB for an array\); choose a smaller --resolution\.$"):
        generate("darcy2d", 2, tmp_path / "ds", resolution=1_000_000, progress=False)
    assert list(tmp_path.iterdir()) == []
