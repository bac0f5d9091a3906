# Two entry points a fresh machine needs: `make demo` and `make test`.
# Each creates .venv, installs torch==2.13.0 (CPU build) only when no torch is present,
# then installs meshop with its extras.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip

.PHONY: venv demo test test-fast bench clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PIP) install -q torch==2.13.0
	$(PIP) install -q -e ".[test]"
	touch $@

venv: $(VENV)/.installed

demo: venv
	$(VENV)/bin/meshop info examples/parts/bracket.vtu

test: venv
	$(PY) -m pytest -q

test-fast: venv
	$(PY) -m pytest -q -m "not slow"

bench: venv
	$(PY) benchmarks/graphs.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
