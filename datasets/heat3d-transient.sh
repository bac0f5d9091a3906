#!/usr/bin/env bash
# Data of the bundled heat3d-transient model: 48 trajectories of 101 frames on ~1.5k-node parts
# (38/5/5 split), cooling or heating, held or convective surfaces.
set -euo pipefail
meshop generate heat3d-transient --n 48 --resolution 1500 --seed 0 --workers 2 --out data/heat3d-transient
