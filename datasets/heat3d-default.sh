#!/usr/bin/env bash
# heat3d-default: the training data of the bundled default model.
#   samples   500 (400 train / 50 val / 50 test), ~2.5-4k tetrahedral-mesh nodes each
#   regimes   heating / boundary / both (docs/datasets.md), parts 1 cm - 2 m
#   time      3.6 min on 2 workers on a busy 2-core machine
# Then: meshop train --config datasets/heat3d-default.yaml
set -euo pipefail
meshop generate heat3d --n 500 --resolution 3000 --seed 0 --workers "${WORKERS:-2}" \
    --out "${OUT:-data/heat3d-default}"
