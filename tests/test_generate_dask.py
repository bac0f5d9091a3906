"""Dataset generation on Dask distributed: a LocalCluster of 2 worker processes gives the serial
run's bytes; a killed worker costs only its own sample, which is rescheduled; a rerun of an
interrupted run solves only the missing samples."""

from __future__ import annotations

import importlib
import os
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from meshop import MeshError
from meshop.cli import app
from meshop.data import dask_cluster, generate
from meshop.data.dask_cluster import dask_client

distributed = pytest.importorskip("distributed", reason="the dask extra is not installed")
gen = importlib.import_module("meshop.data.generate")   # the attribute is the function
REAL_MAKE_SAMPLE = gen._make_sample
RUN = dict(problem="poisson2d", n=5, seed=7, resolution=200, progress=False)

def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _logged_calls(task) -> dict:
    """``_make_sample`` that first logs the sample index in ``calls.log`` beside ``out``."""
    with open(Path(task.path).parents[1] / "calls.log", "a") as log:
        log.write(f"{task.index}\n")
    return REAL_MAKE_SAMPLE(task)


def _dies_once_on_sample_1(task) -> dict:
    """Kill the worker process the first time sample 1 runs (the worker dies mid-sample)."""
    marker = Path(task.path).parents[1] / "killed"
    if task.index == 1 and not marker.exists():
        marker.touch()
        half = Path(task.path).with_name(f".{Path(task.path).name}.x1y2z3.vtu")   # as meshop.atomic names it
        half.write_text("<VTKFile")                                           # half-written leftovers
        os._exit(1)
    return _logged_calls(task)


def _fails_on_sample_2(task) -> dict:
    if task.index == 2:
        raise RuntimeError("solver exploded")
    return REAL_MAKE_SAMPLE(task)


def _calls(folder: Path) -> Counter:
    return Counter(int(line) for line in (folder / "calls.log").read_text().split())


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[str, bytes]:
    out = generate(out=tmp_path_factory.mktemp("serial") / "ds", **RUN)
    return _files(out)


@pytest.fixture(scope="module")
def cluster():
    """The address of what ``--scheduler local:2`` starts: a LocalCluster of 2 one-thread processes."""
    with dask_client("local:2") as client:
        workers = client.scheduler_info()["workers"].values()
        assert [w["nthreads"] for w in workers] == [1, 1]
        assert len({w["id"] for w in workers}) == 2 and client.cluster.processes
        yield client.scheduler.address


@pytest.mark.slow
def test_cli_on_a_cluster_of_two_processes_writes_the_serial_bytes(tmp_path, reference, cluster):
    result = CliRunner().invoke(app, ["generate", "poisson2d", "--n", "5", "--seed", "7", "--resolution", "200",
                                      "--out", str(tmp_path / "ds"), "--scheduler", cluster, "--quiet"])
    assert result.exit_code == 0, result.output
    assert _files(tmp_path / "ds") == reference
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]          # staging folder gone


@pytest.mark.slow
def test_a_killed_worker_loses_only_its_sample_which_is_rescheduled(tmp_path, reference, cluster, monkeypatch):
    monkeypatch.setattr(gen, "_make_sample", _dies_once_on_sample_1)
    monkeypatch.setattr(dask_cluster, "IN_FLIGHT_PER_THREAD", 1)        # 2 in flight, refilled as they end
    out = generate(out=tmp_path / "ds", scheduler=cluster, **RUN)
    assert (tmp_path / "killed").exists()                                # the worker did die
    calls = _calls(tmp_path)
    assert calls == Counter(range(5))             # each sample solved once (sample 1 after the kill)
    assert _files(out) == reference
    assert sorted(p.name for p in tmp_path.iterdir()) == ["calls.log", "ds", "killed"]


@pytest.mark.slow
def test_rerun_after_a_failure_solves_only_the_missing_samples(tmp_path, reference, cluster, monkeypatch):
    monkeypatch.setattr(gen, "_make_sample", _fails_on_sample_2)
    with pytest.raises(RuntimeError, match="exploded"):
        generate(out=tmp_path / "ds", **RUN)                              # serial: 0 and 1 done
    (partial,) = tmp_path.glob(".ds.partial-*")
    assert not (tmp_path / "ds").exists()
    assert sorted(p.name for p in partial.glob("sample_*.json")) == ["sample_00000.json", "sample_00001.json"]

    monkeypatch.setattr(gen, "_make_sample", _logged_calls)
    out = generate(out=tmp_path / "ds", scheduler=cluster, **RUN)
    assert _calls(tmp_path) == Counter({2: 1, 3: 1, 4: 1})
    assert _files(out) == reference
    assert not partial.exists()


def test_scheduler_mistakes_are_clear_errors(tmp_path, monkeypatch):
    runner = CliRunner()
    result = runner.invoke(app, ["generate", "poisson2d", "--n", "2", "--out", str(tmp_path / "a"),
                                 "--scheduler", "local:two"])
    assert result.exit_code == 2 and "expected local:N" in result.output
    with pytest.raises(MeshError, match="not both"):
        generate("poisson2d", 2, tmp_path / "a", workers=2, scheduler="local:2")
    monkeypatch.setattr(dask_cluster, "CONNECT_TIMEOUT", "1s")
    with pytest.raises(MeshError, match="could not reach the Dask scheduler"):
        generate("poisson2d", 2, tmp_path / "a", scheduler="tcp://127.0.0.1:9", progress=False)
    monkeypatch.setitem(__import__("sys").modules, "distributed", None)   # as if not installed
    with pytest.raises(MeshError, match=r"pip install 'meshop\[dask\]'"):
        generate("poisson2d", 2, tmp_path / "a", scheduler="local:2")
    assert not any(tmp_path.iterdir())
