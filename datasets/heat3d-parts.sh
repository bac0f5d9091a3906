#!/usr/bin/env bash
# heat3d-parts: steady conduction -ΔT = q in random 3D mechanical parts (plates, blocks,
# L-brackets, flanges, shafts with holes, slots, bosses, pockets, gussets, steps, bores), 1 cm to 2 m, randomly rotated
# and placed; T = g on the boundary.
#   samples   1000 (800 train / 100 val / 100 test), ~4500-5500 tetrahedral-mesh nodes each
#   inputs    source, boundary_temperature  target  temperature
#   disk      ~550 MB (~550 kB per sample)
#   time      0.6 s CPU per sample (CSG + gmsh + direct solve; 2 s wall on a busy 2-core box);
#             10-20 min on 2 workers
# Each sample is one of three regimes (heating: q > 0, g = 0; boundary: q = 0; both), with the
# source strength set from the part's thickness so q and g matter alike (docs/datasets.md).
# The manifest records each part's family, parameters, size (m) and regime.
set -euo pipefail
meshop generate heat3d --n 1000 --resolution 5000 --seed 0 --workers "${WORKERS:-2}" \
    --out "${OUT:-data/heat3d-parts}"
