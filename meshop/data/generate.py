"""Generate a dataset folder of solved samples: ``sample_00000.vtu``, ... and ``dataset.json``.

Sample ``i`` draws from its own generator, ``np.random.SeedSequence(seed).spawn(n)[i]``, and gmsh
runs single-threaded with a fixed seed in each process, so the same seed gives the same bytes
whatever runs the samples: one process, a pool of ``workers`` processes, or a Dask cluster
(``scheduler``, :mod:`meshop.data.dask_cluster`). Samples are written to a hidden staging folder
next to ``out`` (:mod:`meshop.data.staging`) and moved into place only when all of them and the
manifest are done: an interrupted run leaves nothing in ``out``, and running the same command
again solves only the samples it had not finished.
"""

from __future__ import annotations

import json
import multiprocessing
import numbers
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import numpy as np

from ..errors import MeshError, as_path
from ..trajectory import Trajectory
from .problems import Problem, get_problem
from .staging import MANIFEST, SampleTask, Staging, save_entry

FORMAT = "meshop-dataset/1"


def generate(problem: str | Problem, n: int, out: str | os.PathLike, seed: int = 0,
             resolution: int | tuple[int, int] | None = None, workers: int = 1,
             split: tuple[float, float, float] = (0.8, 0.1, 0.1), progress: bool = True,
             overwrite: bool = False, scheduler: str | None = None, **options) -> Path:
    """Draw and solve ``n`` samples of ``problem`` into the folder ``out``.

    Args:
        problem: a registered name (``"poisson2d"``, ``"darcy2d"``, ``"heat3d"``) or a Problem.
        n: number of samples.
        out: output folder; created if needed. A non-empty folder must already hold a meshop
            dataset (its samples and manifest are replaced) unless ``overwrite=True``.
        seed: master seed; the same seed gives the same files byte for byte.
        resolution: problem resolution (see ``Problem.resolution``); None for its default; a pair
            ``(low, high)`` spreads the samples over that range (:func:`sample_resolutions`), so a
            model learns answers that do not depend on how finely a part is meshed.
        workers: parallel processes (``spawn`` context, one gmsh per process).
        split: train / val / test fractions; val and test are rounded, train gets the rest,
            but a non-zero fraction gets at least one sample while two are left for training
            (``n = 4`` gives 2 / 1 / 1), so a small dataset still trains. Samples are i.i.d.,
            so the split is contiguous: train first.
        progress: show a progress bar on stderr.
        overwrite: write into a non-empty folder that is not a meshop dataset (only
            ``sample_*.vtu`` and ``dataset.json`` there are replaced).
        scheduler: run each sample as a task on Dask distributed instead of ``workers``:
            ``"local:N"`` starts a LocalCluster of N one-thread worker processes, an address like
            ``"tcp://host:8786"`` uses a running cluster whose workers all see ``out``'s folder.
            Needs the ``dask`` extra.
        **options: passed to the problem's sample function (``solver="cg"``, ``domain="random"``).
            ``solver="recycle"`` (darcy2d on the square) solves the whole family in one process by
            Sorting Krylov Recycling (:mod:`meshop.data.recycle`): the same inputs as any other
            solver, ``u`` to a relative residual of 1e-8; ``workers`` is then not used.

    Returns:
        The output folder.
    """
    from .. import __version__

    if not isinstance(problem, (str, Problem)):
        raise TypeError(f"problem must be a problem name such as 'heat3d' or a Problem, got {type(problem).__name__} "
                        f"{problem!r:.60}.")
    for name, value in (("n", n), ("workers", workers), ("seed", seed)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise MeshError(f"{name} must be an integer, got {value!r}.")
    out = as_path(out, "out")
    problem = get_problem(problem) if isinstance(problem, str) else problem
    resolution = check_resolution(resolution)
    _check_arguments(problem, n, workers, seed, scheduler, options, resolution)
    split = _split_counts(n, split)
    _check_out(Path(out), overwrite)
    run = {"problem": problem.name, "n": n, "seed": seed, "resolution": resolution, "options": options,
           "meshop_version": __version__}                     # what decides the samples' bytes
    staging = Staging(Path(out).absolute(), run)
    staging.open()
    try:
        tasks = staging.tasks(problem.name, seed, sample_resolutions(resolution, n), options)
        if options.get("solver") == "recycle":
            samples = _run_recycled(problem, tasks, resolution, options)
        else:
            samples = _run_missing(tasks, staging, workers, scheduler, progress, problem.name)
        staging.commit(_manifest(problem, seed, resolution, options, samples, split))
    finally:
        staging.discard_if_empty()
    return Path(out)


def check_resolution(resolution) -> int | tuple[int, int] | None:
    """``resolution`` as None, a positive whole number or an increasing pair of them; :class:`MeshError` otherwise."""
    if resolution is None:
        return None
    ranged = isinstance(resolution, (tuple, list))
    counts = list(resolution) if ranged else [resolution]
    whole = all(isinstance(c, numbers.Real) and not isinstance(c, bool) and c >= 1 and float(c).is_integer()
                for c in counts)
    if not whole or len(counts) != (2 if ranged else 1) or (ranged and counts[0] >= counts[1]):
        raise MeshError(f"resolution {resolution!r}: expected a positive count like 3000 or a range "
                        "(low, high) with 1 <= low < high, like (1000, 12000).")
    return (int(counts[0]), int(counts[1])) if ranged else int(counts[0])


def sample_resolutions(resolution: int | tuple[int, int] | None, n: int) -> list[int | None]:
    """The resolution of each of ``n`` samples: ``resolution`` itself, or for a range ``(low, high)``
    a log-uniform spread over it, ``low (high / low)^t_i`` with ``t_i`` the fractional parts of
    ``i`` times the golden ratio (a low-discrepancy sequence: every run of consecutive samples,
    hence each contiguous train / val / test split, covers the range evenly, and the numbers depend
    on nothing but ``i``, so the seed's random streams are untouched)."""
    if not isinstance(resolution, tuple):
        return [resolution] * n
    low, high = resolution
    fractions = (np.arange(n) * (np.sqrt(5.0) - 1.0) / 2.0) % 1.0
    return [int(round(low * (high / low) ** t)) for t in fractions]


#: the most samples one dataset folder takes (a sample is a file or more; beyond this, n is a typo)
MAX_SAMPLES = 10_000_000

#: the linear solvers of ``--solver`` (recycle: darcy2d on the square only)
LINEAR_SOLVERS = ("direct", "cg", "amg", "recycle")


def _check_arguments(problem: Problem, n: int, workers: int, seed: int, scheduler: str | None, options: dict,
                     resolution: int | tuple[int, int] | None) -> None:
    unknown = sorted(set(options) - set(problem.options))
    if unknown:
        raise MeshError(f"{problem.name} has no option '{unknown[0]}' "
                        f"(options: {', '.join(problem.options) or 'none'}).")
    if n < 1 or workers < 1:
        raise MeshError(f"need n >= 1 samples and workers >= 1, got n={n}, workers={workers}.")
    if n > MAX_SAMPLES:
        raise MeshError(f"n={n} samples is more than one dataset folder holds (at most {MAX_SAMPLES:,}); "
                        "generate fewer, or several datasets with different seeds.")
    if seed < 0:
        raise MeshError(f"seed must be a non-negative integer, got {seed}.")
    if options.get("solver", "direct") not in LINEAR_SOLVERS:
        raise MeshError(f"--solver {options['solver']!r}: unknown linear solver (known: {', '.join(LINEAR_SOLVERS)}).")
    if scheduler is not None and workers != 1:
        raise MeshError("give either workers (local processes) or a Dask scheduler, not both.")
    if scheduler is not None and options.get("solver") == "recycle":
        raise MeshError("--solver recycle solves the whole family in one process; drop --scheduler.")
    if isinstance(resolution, tuple) and options.get("solver") == "recycle":
        raise MeshError("--solver recycle solves one grid size for the whole family; give one resolution, not a range.")
    if scheduler is not None:
        from .dask_cluster import import_distributed, parse_scheduler

        parse_scheduler(scheduler)
        import_distributed()


def _run_missing(tasks: list[SampleTask], staging: Staging, workers: int, scheduler: str | None,
                 progress: bool, name: str) -> list[dict]:
    """Manifest entries of all samples, solving only those the staging folder lacks."""
    from tqdm.auto import tqdm

    done = staging.done(tasks)
    todo = [task for task in tasks if task.index not in done]
    with tqdm(total=len(tasks), initial=len(done), desc=name, unit="sample", disable=not progress) as bar:
        if scheduler is not None:
            from .dask_cluster import run_on_dask

            done.update(run_on_dask(todo, scheduler, _make_sample, bar))
            staging.check_visible(list(done.values()))
        else:
            done.update(_run(todo, workers, bar))
    return [done[i] for i in range(len(tasks))]


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


def _make_sample(task: SampleTask) -> dict:
    """Draw, solve and write one sample (runs in a worker process); its manifest entry."""
    from ..io import write

    name, index, seed_sequence, resolution, options, path = task
    rng = np.random.default_rng(seed_sequence)
    try:
        mesh, info = get_problem(name).sample_with_info(rng, resolution, **options)
    except MeshError as err:
        raise MeshError(f"{name} sample {index}: {err}") from None
    except MemoryError as err:
        raise MeshError(f"{name} sample {index}: out of memory at resolution {resolution} ({err}); "
                        "choose a smaller --resolution.") from None
    except Exception as err:
        raise RuntimeError(f"{name} sample {index} failed: {type(err).__name__}: {err}") from err
    if isinstance(mesh, Trajectory):
        entry = _jsonable({**_write_trajectory(mesh, Path(path)), **info})
    else:
        write(mesh, path)
        entry = _jsonable({**_entry(mesh, path), **info})
    save_entry(path, entry)       # last: the sample counts as done from here on
    return entry


def _entry(mesh, path: str) -> dict:
    return {"file": Path(path).name, "n_points": mesh.n_points,
            "n_cells": int(sum(mesh.cell_counts.values())), "bbox_diagonal": mesh.size}


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
    rngs = [np.random.default_rng(task.seed_sequence) for task in tasks]
    meshes = darcy2d_samples_recycled(rngs, resolution or problem.defaults["resolution"])
    entries = []
    for task, mesh in zip(tasks, meshes):
        write(mesh, task.path)
        entries.append(_jsonable(_entry(mesh, task.path)))
    return entries


def _run(tasks: list[SampleTask], workers: int, bar) -> dict[int, dict]:
    """Index -> manifest entry, in this process or a spawn pool of ``workers``; ``bar`` counts."""
    results: dict[int, dict] = {}
    if workers == 1 or len(tasks) <= 1:
        for task in tasks:
            results[task.index] = _make_sample(task)
            bar.update()
        return results
    context = multiprocessing.get_context("spawn")
    try:
        with ProcessPoolExecutor(max_workers=min(workers, len(tasks)), mp_context=context) as pool:
            futures = {pool.submit(_make_sample, task): task.index for task in tasks}
            try:
                for future in as_completed(futures):
                    results[futures[future]] = future.result()
                    bar.update()
            except BaseException:   # a failed sample, Ctrl-C, SIGTERM: the samples being solved
                pool.shutdown(cancel_futures=True)   # finish (kept for a resume), no others start
                raise
    except BrokenProcessPool:
        raise RuntimeError("a worker process died. Called from a script? Worker processes re-import "
                           "it, so put the generate(...) call under `if __name__ == '__main__':`."
                           ) from None
    return results


def _manifest(problem: Problem, seed: int, resolution: int | tuple[int, int] | None, options: dict,
              samples: list[dict], split: dict[str, int]) -> dict:
    from .. import __version__

    powers = problem.length_powers
    fields = {name: {"role": role, "meaning": meaning, "length_power": powers.get(name, 0)}
              for name, (role, meaning) in problem.fields.items()}
    parameters = {**problem.defaults, **options}
    if resolution is not None:
        parameters["resolution"] = list(resolution) if isinstance(resolution, tuple) else int(resolution)
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
                     "n_frames": first["n_frames"], "initial_defaults": problem.initial_defaults,
                     "held_boundary": problem.held_boundary}}


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
