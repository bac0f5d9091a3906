"""Generate a dataset folder of solved samples: ``sample_00000.vtu``, ... and ``dataset.json``.

Sample ``i`` draws from its own generator, ``np.random.SeedSequence(seed).spawn(n)[i]``, and gmsh
runs single-threaded with a fixed seed in each process, so the same seed gives the same arrays
bit for bit whatever the number of worker processes. Samples are written to a hidden staging
folder next to ``out`` and moved into place only when all of them and the manifest are done:
an interrupted run leaves nothing half-written in ``out``.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import numpy as np

from ..errors import MeshError
from ..trajectory import Trajectory
from .problems import Problem, get_problem

MANIFEST = "dataset.json"
FORMAT = "meshop-dataset/1"


def generate(problem: str | Problem, n: int, out: str | os.PathLike, seed: int = 0,
             resolution: int | None = None, workers: int = 1,
             split: tuple[float, float, float] = (0.8, 0.1, 0.1), progress: bool = True,
             overwrite: bool = False, **options) -> Path:
    """Draw and solve ``n`` samples of ``problem`` into the folder ``out``.

    Args:
        problem: a registered name (``"poisson2d"``, ``"darcy2d"``, ``"heat3d"``) or a Problem.
        n: number of samples.
        out: output folder; created if needed. A non-empty folder must already hold a meshop
            dataset (its samples and manifest are replaced) unless ``overwrite=True``.
        seed: master seed; the same seed gives the same arrays bit for bit.
        resolution: problem resolution (see ``Problem.resolution``); None for its default.
        workers: parallel processes (``spawn`` context, one gmsh per process).
        split: train / val / test fractions; val and test are rounded, train gets the rest,
            but a non-zero fraction gets at least one sample while two are left for training
            (``n = 4`` gives 2 / 1 / 1), so a small dataset still trains. Samples are i.i.d.,
            so the split is contiguous: train first.
        progress: show a progress bar on stderr.
        overwrite: write into a non-empty folder that is not a meshop dataset (only
            ``sample_*.vtu`` and ``dataset.json`` there are replaced).
        **options: passed to the problem's sample function (``solver="cg"``, ``domain="random"``).
            ``solver="recycle"`` (darcy2d on the square) solves the whole family in one process by
            Sorting Krylov Recycling (:mod:`meshop.data.recycle`): the same inputs as any other
            solver, ``u`` to a relative residual of 1e-8; ``workers`` is then not used.

    Returns:
        The output folder.
    """
    problem = get_problem(problem) if isinstance(problem, str) else problem
    unknown = sorted(set(options) - set(problem.options))
    if unknown:
        raise MeshError(f"{problem.name} has no option '{unknown[0]}' "
                        f"(options: {', '.join(problem.options) or 'none'}).")
    if n < 1 or workers < 1:
        raise MeshError(f"need n >= 1 samples and workers >= 1, got n={n}, workers={workers}.")
    split = _split_counts(n, split)
    out = Path(out)
    _check_out(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        width = max(5, len(str(n - 1)))
        tasks = [(problem.name, i, child, resolution, options, str(staging / f"sample_{i:0{width}d}.vtu"))
                 for i, child in enumerate(np.random.SeedSequence(seed).spawn(n))]
        if options.get("solver") == "recycle":
            samples = _run_recycled(problem, tasks, resolution, options)
        else:
            samples = _run(tasks, workers, progress, problem.name)
        manifest = _manifest(problem, seed, resolution, options, samples, split)
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
        _commit(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


def _split_counts(n: int, split) -> dict[str, int]:
    fractions = np.asarray(split, dtype=float)
    if fractions.shape != (3,) or (fractions < 0).any() or not np.isclose(fractions.sum(), 1.0):
        raise MeshError(f"split must be three non-negative fractions summing to 1, got {tuple(split)}.")
    val, test = (int(round(n * f)) for f in fractions[1:])
    if fractions[1] > 0 and val == 0 and n >= 2:       # training needs one validation sample
        val = 1
    if fractions[2] > 0 and test == 0 and n - val >= 3:
        test = 1
    return {"train": n - val - test, "val": val, "test": test}


def is_meshop_dataset(folder: Path) -> bool:
    """True when ``folder`` holds a ``dataset.json`` written by :func:`generate`."""
    try:
        return json.loads((Path(folder) / MANIFEST).read_text()).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def _check_out(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise MeshError(f"{out}: exists and is not a folder; choose a folder for the dataset.")
    if not out.exists() or overwrite or not any(out.iterdir()) or is_meshop_dataset(out):
        return
    raise MeshError(f"{out}: the folder is not empty and holds no meshop dataset; choose an empty "
                    "folder or pass overwrite=True (--overwrite on the command line).")


def _make_sample(task) -> dict:
    """Draw, solve and write one sample (runs in a worker process); its manifest entry."""
    from ..io import write

    name, index, seed_sequence, resolution, options, path = task
    rng = np.random.default_rng(seed_sequence)
    try:
        mesh, info = get_problem(name).sample_with_info(rng, resolution, **options)
    except MeshError as err:
        raise MeshError(f"{name} sample {index}: {err}") from None
    except Exception as err:
        raise RuntimeError(f"{name} sample {index} failed: {type(err).__name__}: {err}") from err
    if isinstance(mesh, Trajectory):
        return _jsonable({**_write_trajectory(mesh, Path(path)), **info})
    write(mesh, path)
    entry = {"file": Path(path).name, "n_points": mesh.n_points,
             "n_cells": int(sum(mesh.cell_counts.values())), "bbox_diagonal": mesh.size}
    return _jsonable({**entry, **info})


def _write_trajectory(traj: Trajectory, path: Path) -> dict:
    """Write a time-dependent sample as ``sample_NNNNN.pvd`` (+ its frames folder); its entry."""
    from ..io import write_series

    path = write_series(traj, path.with_suffix(".pvd"))
    return {"file": path.name, "n_points": traj.n_points, "n_cells": int(sum(traj.mesh.cell_counts.values())),
            "bbox_diagonal": traj.mesh.size, "n_frames": traj.n_frames, "frame_dt": traj.dt,
            "state": traj.state, "varying": sorted(traj.fields), "moving": traj.moving,
            "dt": traj.metadata.get("dt"), "stride": traj.metadata.get("stride")}


def _run_recycled(problem: Problem, tasks: list, resolution: int | None, options: dict) -> list[dict]:
    """All samples of a darcy2d family at once, solved by Sorting Krylov Recycling."""
    from ..io import write
    from .problems.darcy2d import darcy2d_samples_recycled

    if problem.name != "darcy2d" or options.get("domain", "square") != "square":
        raise MeshError("--solver recycle needs one mesh for the whole family: darcy2d on the square.")
    rngs = [np.random.default_rng(task[2]) for task in tasks]
    meshes = darcy2d_samples_recycled(rngs, resolution or problem.defaults["resolution"])
    entries = []
    for task, mesh in zip(tasks, meshes):
        write(mesh, task[5])
        entries.append(_jsonable({"file": Path(task[5]).name, "n_points": mesh.n_points,
                                  "n_cells": int(sum(mesh.cell_counts.values())), "bbox_diagonal": mesh.size}))
    return entries


def _run(tasks: list, workers: int, progress: bool, name: str) -> list[dict]:
    from tqdm.auto import tqdm

    bar = tqdm(total=len(tasks), desc=f"{name}", unit="sample", disable=not progress)
    results: dict[int, dict] = {}
    try:
        if workers == 1:
            for task in tasks:
                results[task[1]] = _make_sample(task)
                bar.update()
        else:
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=min(workers, len(tasks)), mp_context=context) as pool:
                futures = {pool.submit(_make_sample, task): task[1] for task in tasks}
                for future in as_completed(futures):
                    results[futures[future]] = future.result()
                    bar.update()
    except BrokenProcessPool:
        raise RuntimeError("a worker process died. Called from a script? Worker processes re-import "
                           "it, so put the generate(...) call under `if __name__ == '__main__':`."
                           ) from None
    finally:
        bar.close()
    return [results[i] for i in range(len(tasks))]


def _manifest(problem: Problem, seed: int, resolution: int | None, options: dict,
              samples: list[dict], split: dict[str, int]) -> dict:
    from .. import __version__

    powers = problem.length_powers
    fields = {name: {"role": role, "meaning": meaning, "length_power": powers.get(name, 0)}
              for name, (role, meaning) in problem.fields.items()}
    parameters = {**problem.defaults, **options}
    if resolution is not None:
        parameters["resolution"] = int(resolution)
    files = [s["file"] for s in samples]
    bounds = np.cumsum([0, split["train"], split["val"], split["test"]])
    return _jsonable({
        "format": FORMAT,
        "problem": problem.name,
        "summary": problem.summary,
        "parameters": parameters,
        "seed": seed,
        "meshop_version": __version__,
        "n_samples": len(samples),
        "inputs": list(problem.inputs),
        "targets": list(problem.targets),
        "fields": fields,
        "dirichlet": problem.dirichlet,
        "input_defaults": problem.input_defaults,
        "linear_inputs": problem.linear_inputs,
        "split": {part: files[bounds[k]:bounds[k + 1]] for k, part in enumerate(split)},
        **_time_section(problem, samples),
        "samples": samples,
    })


def _time_section(problem: Problem, samples: list[dict]) -> dict:
    """The manifest's ``time`` entry of a trajectory dataset (empty for steady samples): the state
    fields, the inputs that vary per frame, the frame spacing, the solver step and the stride."""
    first = samples[0]
    if "n_frames" not in first:
        return {}
    varying = [name for name in problem.inputs if name in first["varying"]]
    return {"time": {"state": first["state"], "varying_inputs": varying, "frame_dt": first["frame_dt"],
                     "dt": first["dt"], "stride": first["stride"], "moving": first["moving"],
                     "n_frames": first["n_frames"]}}


def _commit(staging: Path, out: Path) -> None:
    """Move the finished dataset from ``staging`` into ``out``, replacing an earlier one."""
    if not out.exists():
        os.replace(staging, out)
        return
    for old in [*out.glob("sample_*"), out / MANIFEST]:
        if old.is_dir():
            shutil.rmtree(old)
        else:
            old.unlink(missing_ok=True)
    for new in sorted(staging.iterdir(), key=lambda p: p.name == MANIFEST):  # manifest last
        os.replace(new, out / new.name)


def _jsonable(value):
    """numpy scalars and arrays -> Python numbers and lists, recursively."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value
