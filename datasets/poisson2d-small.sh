#!/usr/bin/env bash
# poisson2d-small: -Δu = f on random planar domains with 0-3 holes, u = g on the boundary
# (the BENO setting on unstructured meshes).
#   samples   1000 (800 train / 100 val / 100 test), ~2000-2200 triangle-mesh nodes each
#   inputs    source, boundary_value        target  u
#   disk      ~135 MB (compressed binary .vtu, ~135 kB per sample)
#   time      0.14 s CPU per sample (gmsh + direct solve; 0.4 s wall on a busy 2-core box);
#             a few minutes on 2 workers
set -euo pipefail
meshop generate poisson2d --n 1000 --resolution 2000 --seed 0 --workers "${WORKERS:-2}" \
    --out "${OUT:-data/poisson2d-small}"
