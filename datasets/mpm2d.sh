#!/usr/bin/env bash
# Training data of benchmarks/lagrangian.py's models (datasets/mpm2d.yaml): 48 mpm2d trajectories of 41 frames (0.4 s), ~1,000 particles,
# mixed materials, random polygons only at 1 m/s (40/8/0 split), so that discs and faster bodies
# stay unseen for the generalization rows of benchmarks/lagrangian.py. ~2 min on 2 cores.
set -euo pipefail
meshop generate mpm2d --n 48 --out "${OUT:-data/mpm2d}" --seed 11 --resolution 1000 --frames 40 \
    --shapes polygon --split 0.84,0.16,0 --workers "${WORKERS:-1}"
