"""The staging folder of a generation run: where finished samples persist until the dataset is whole.

A run writes into ``.<out>.partial-<key>`` next to ``out``, where ``key`` hashes everything that
decides the samples' bytes (problem, n, seed, resolution, options, meshop version). Each finished
sample leaves two files there, both written atomically (temporary name, then rename):
``sample_<i>.vtu`` (or a ``sample_<i>.pvd`` series and its frames folder) and, after it, its
manifest entry ``sample_<i>.json``. A sample is *done* when
its entry exists, so a worker killed mid-sample leaves at most a stray temporary file, never a
sample that counts. Running the same command again finds the same folder and solves only the
samples without an entry; when all are done the manifest is written and the samples are moved
into ``out`` (manifest last), and the staging folder is removed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..atomic import atomic_path
from ..errors import MeshError

MANIFEST = "dataset.json"
RUN = "run.json"


class SampleTask(NamedTuple):
    """Everything a worker needs to draw, solve and write sample ``index`` (picklable)."""

    problem: str
    index: int
    seed_sequence: np.random.SeedSequence
    resolution: int | None
    options: dict
    path: str


def entry_path(sample: str | os.PathLike) -> Path:
    """Where the manifest entry of the sample file ``sample`` is kept while staging."""
    return Path(sample).with_suffix(".json")


def save_entry(sample: str | os.PathLike, entry: dict) -> None:
    """Mark ``sample`` done: its manifest entry, written atomically after the sample file."""
    with atomic_path(entry_path(sample)) as tmp:
        tmp.write_text(json.dumps(entry) + "\n")


def load_entry(sample: str | os.PathLike) -> dict | None:
    """The manifest entry of ``sample`` if it is done (its entry and the file it names exist), else None."""
    entry = entry_path(sample)
    if not entry.exists():
        return None
    entry = json.loads(entry.read_text())
    return entry if (Path(sample).parent / entry["file"]).exists() else None


class Staging:
    """The staging folder of one run (see the module docstring)."""

    def __init__(self, out: Path, run: dict):
        text = json.dumps(run, sort_keys=True)
        key = hashlib.sha256(text.encode()).hexdigest()[:12]
        self.out = out
        self.folder = out.parent / f".{out.name}.partial-{key}"
        self.run_text = text

    def open(self) -> None:
        """Create the folder (or find the one an interrupted run of the same command left)."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with atomic_path(self.folder / RUN) as tmp:
                tmp.write_text(self.run_text + "\n")
        except OSError as err:
            self.discard_if_empty()          # no empty staging folder left behind (a full disk)
            raise MeshError(f"{self.out}: cannot create the dataset folder there ({err.strerror or err}); "
                            "choose a writable folder for --out.") from None

    def tasks(self, problem: str, seed: int, resolutions: list[int | None], options: dict) -> list[SampleTask]:
        """One task per sample, at ``resolutions[i]``; sample ``i`` draws from ``SeedSequence(seed).spawn(n)[i]``."""
        n = len(resolutions)
        width = max(5, len(str(n - 1)))
        return [SampleTask(problem, i, child, resolutions[i], options, str(self.folder / f"sample_{i:0{width}d}.vtu"))
                for i, child in enumerate(np.random.SeedSequence(seed).spawn(n))]

    def done(self, tasks: list[SampleTask]) -> dict[int, dict]:
        """Index -> manifest entry of the samples already finished in this folder."""
        entries = {task.index: load_entry(task.path) for task in tasks}
        return {index: entry for index, entry in entries.items() if entry is not None}

    def check_visible(self, entries: list[dict]) -> None:
        """Every sample file is here; else the workers wrote to a folder this machine does not see."""
        missing = [self.folder / e["file"] for e in entries if not (self.folder / e["file"]).exists()]
        if missing:
            raise MeshError(f"{missing[0]}: a worker reported this sample written but it is not visible "
                            "here; --out must be a folder shared by every Dask worker.")

    def commit(self, manifest: dict) -> None:
        """Write the manifest and move it with the samples into ``out`` (manifest last); clean up."""
        with atomic_path(self.folder / MANIFEST) as tmp:
            tmp.write_text(json.dumps(manifest, indent=1) + "\n")
        for path in self.folder.iterdir():      # entries, run.json, temporaries of killed workers
            if path.name == RUN or path.name.startswith(".") or _is_entry(path):
                _remove(path)
        if not self.out.exists():
            os.replace(self.folder, self.out)
            return
        for old in [*self.out.glob("sample_*"), self.out / MANIFEST]:
            _remove(old)
        for path in sorted(self.folder.iterdir(), key=lambda path: path.name == MANIFEST):
            os.replace(path, self.out / path.name)
        self.discard()

    def discard(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def discard_if_empty(self) -> None:
        """Remove the folder when no sample in it is done (nothing worth resuming)."""
        if not any(self.folder.glob("sample_*.json")):
            self.discard()


def _is_entry(path: Path) -> bool:
    return path.name.startswith("sample_") and path.suffix == ".json"


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
