#!/usr/bin/env bash
# heat3d-default: the training data of the bundled default model.
#   samples   500 (400 train / 50 val / 50 test), tetrahedral meshes of 1k to 16k nodes spread
#             log-uniformly (--resolution 1000:16000; 935-18,335 nodes, median 4,062), so the
#             model sees coarse and fine meshes of the same families and a finer mesh of a part
#             gets a better answer (docs/models.md, *Meshes of every resolution*)
#   regimes   heating / boundary / both (docs/datasets.md), parts 1 cm - 2 m
#   time      3.7 min on 2 workers of a 2-core machine; ~300 MB
# Then: meshop train --config datasets/heat3d-default.yaml
set -euo pipefail
meshop generate heat3d --n 500 --resolution 1000:16000 --seed 0 --workers "${WORKERS:-2}" \
    --out "${OUT:-data/heat3d-default}"
