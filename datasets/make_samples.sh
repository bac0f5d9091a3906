#!/usr/bin/env bash
# Regenerate the tiny committed samples under datasets/samples/ (under 1 MB in all, ~15 s).
# Used by tests and examples; the full benchmarks are the *.sh recipes next to this file.
set -euo pipefail
cd "$(dirname "$0")"
meshop generate poisson2d --n 4 --resolution 500  --seed 0 --split 0.5,0.25,0.25 --out samples/poisson2d --quiet
meshop generate darcy2d   --n 4 --resolution 17   --seed 0 --split 0.5,0.25,0.25 --out samples/darcy2d   --quiet
meshop generate heat3d    --n 3 --resolution 2000 --seed 0 --split 0.34,0.33,0.33 --out samples/heat3d  --quiet
