# Two entry points a fresh machine needs: `make demo` and `make test`.
# Each creates .venv, installs torch==2.13.0 only when no torch is present, then installs meshop
# with its extras. torch comes from TORCH_INDEX, PyTorch's CPU-only wheels (~200 MB) by default;
# where that index cannot be reached, from what plain pip finds (on Linux from PyPI: the CUDA
# build plus ~20 NVIDIA packages, several GB). `make demo TORCH_INDEX=https://download.pytorch.org/whl/cu128`
# picks a CUDA build. `make test` also installs, when it runs as root and they are missing, the
# Debian packages the tests need: EGL/Mesa for off-screen rendering and Chromium for the browser
# test of the HTML view; as another user without them, it says what is missing and runs the
# tests, the browser test skipped with its reason.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
TORCH  ?= torch==2.13.0
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
DEBIAN_PACKAGES := chromium libegl1 libegl-mesa0 libgl1-mesa-dri

.PHONY: venv system demo test test-fast bench clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PIP) install -q --timeout 10 --retries 1 --index-url $(TORCH_INDEX) "$(TORCH)" \
	  || { echo "$(TORCH_INDEX) unreachable or without $(TORCH); installing $(TORCH) from the default index"; \
	       $(PIP) install -q "$(TORCH)"; }
	$(PIP) install -q -e ".[test,dask]"
	touch $@

venv: $(VENV)/.installed

system:
	@missing=$$(for p in $(DEBIAN_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing $$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  elif [ -n "$$CI" ]; then echo "CI needs: $$missing (run as root)"; exit 1; \
	  else echo "not installed: $$missing (Debian/Ubuntu: sudo apt-get install $$missing); the tests that need them will be skipped or may fail"; fi; \
	fi

demo: venv
	$(VENV)/bin/meshop info examples/parts/bracket.vtu
	mkdir -p out
	$(VENV)/bin/meshop predict examples/parts/bracket.vtu --out out/bracket.pred.vtu --render

test: system venv
	$(PY) -m pytest -q

test-fast: venv
	$(PY) -m pytest -q -m "not slow"

bench: venv
	$(PY) benchmarks/graphs.py
	$(PY) benchmarks/predict.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
