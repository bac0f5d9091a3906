"""Every snippet of README.md runs as written, from a copy of the checkout's examples.

```python`` blocks run in this interpreter; in ```bash`` and ```console`` blocks, ``meshop ...``
lines run through the command line (in process: one torch import), ``make TARGET`` lines must
name a target whose recipe make accepts (``make -n``; CI runs ``make test`` itself), and the
install lines (``python -m venv``, ``pip install``) must name extras and the index the project
has. Any other command fails the test, so a new kind of snippet needs a rule here. The output a
```console`` block shows must be what the command prints, digits aside.
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from meshop.cli import app

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
BLOCK = re.compile(r"^```(python|bash|console)\n(.*?)^```", re.S | re.M)

def blocks(language: str) -> list[str]:
    return [body for lang, body in BLOCK.findall(README.read_text()) if lang == language]


def commands(body: str) -> list[list[str]]:
    """The commands of a bash block: comments dropped, ``a && b`` split."""
    out = []
    for line in body.splitlines():
        words = shlex.split(line, comments=True)
        while words:
            cut = words.index("&&") if "&&" in words else len(words)
            out.append(words[:cut])
            words = words[cut + 1:]
    return out


@pytest.fixture
def checkout(tmp_path, monkeypatch):
    """A folder with the checkout's examples, as the README's working directory."""
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run_meshop(words: list[str]) -> str:
    assert words[0] == "meshop"
    result = CliRunner().invoke(app, words[1:])
    assert result.exit_code == 0, f"{shlex.join(words)}:\n{result.output}"
    return result.output


def digits_blurred(line: str) -> str:
    return re.sub(r"\d+", "#", line.strip())


def test_the_readme_has_the_snippets_this_test_runs():
    assert len(blocks("python")) == 1 and len(blocks("console")) == 1 and len(blocks("bash")) == 4
    two = commands(blocks("bash")[0])
    assert two == [["make", "demo"], ["make", "test"]]          # "Two commands", exactly


def test_setup_commands(tmp_path):
    """make targets exist and parse; pip lines name the project's extras and the Makefile's index."""
    pyproject, makefile = (ROOT / "pyproject.toml").read_text(), (ROOT / "Makefile").read_text()
    index = re.search(r"^TORCH_INDEX \?= (\S+)$", makefile, re.M).group(1)
    for body in blocks("bash")[:2]:
        for words in commands(body):
            if words[0] == "make":       # a fresh clone's view: no .venv yet
                for name in ("Makefile", "pyproject.toml"):
                    shutil.copy(ROOT / name, tmp_path / name)
                dry = subprocess.run(["make", "-n", *words[1:]], cwd=tmp_path, capture_output=True,
                                     text=True, timeout=60)
                assert dry.returncode == 0, dry.stderr
            elif words[:3] == ["python", "-m", "venv"] or words == [".", ".venv/bin/activate"]:
                continue
            elif words[:2] == ["pip", "install"]:
                for extra in re.findall(r"\[(\w+)\]", " ".join(words)):
                    assert re.search(rf"^{extra} = \[", pyproject, re.M), extra
                if "--index-url" in words:
                    assert words[words.index("--index-url") + 1] == index
            else:
                pytest.fail(f"no rule for the README command {shlex.join(words)!r}")


@pytest.mark.slow
@pytest.mark.usefixtures("one_torch_thread")
def test_console_and_python_snippets(checkout):
    (console,) = blocks("console")
    shown = [line for line in console.splitlines() if line.strip()]
    assert shown[0].startswith("$ meshop ")
    printed = run_meshop(shlex.split(shown[0][2:]))
    got = {digits_blurred(line) for line in printed.splitlines()}
    for line in shown[1:]:
        assert digits_blurred(line) in got, f"README shows {line!r}; meshop printed:\n{printed}"

    (python,) = blocks("python")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(python, str(README), "exec"), {"__name__": "__readme__"})
    assert (checkout / "bracket.pred.vtu").is_file() and (checkout / "runs/heat/best.safetensors").is_file()
    assert len(out.getvalue().splitlines()) == python.count("print(")


#: the README's command-line blocks (after the set-up ones) and the files each must leave behind
CLI_BLOCKS = [
    (2, ("data/heat/dataset.json", "runs/heat/best.safetensors", "data/heat/sample_00003.pred.vtu",
         "data/heat/sample_00003.pred.compare.png", "examples/parts/bracket.stl.pred.vtu", "bracket.html")),
    (3, ("examples/parts/bracket.pred.pvd", "examples/parts/bracket.pred.gif")),      # time series
]


@pytest.mark.slow
@pytest.mark.usefixtures("one_torch_thread")
@pytest.mark.parametrize("block, made", CLI_BLOCKS)
def test_command_line_snippet(checkout, block, made):
    for words in commands(blocks("bash")[block]):
        assert words[0] == "meshop", f"no rule for the README command {shlex.join(words)!r}"
        run_meshop(words)
    for path in made:
        assert (checkout / path).is_file(), path
