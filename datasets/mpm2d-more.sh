#!/usr/bin/env bash
# benchmarks/lagrangian.table.md, stop 7 "5x the scenes": 200 mpm2d scenes of the generator of
# datasets/mpm2d.sh (other seed; 192 train, 8 validation; ~95 s on one worker), then GIOROM with the
# 3-seed recipe of datasets/mpm2d-seeds.sh for 4 epochs (13,440 steps, ~37 min on one core of a
# 2-core CPU), then the benchmark's accuracy half on its own test sets. SCENES=400 (with other
# DATA and OUT) is the 10x row of the same table (384 train, 16 validation; ~75 min of training),
# whose best.safetensors is the bundled mpm2d (meshop/assets/models/mpm2d.safetensors).
set -euo pipefail
DATA=${DATA:-data/mpm2d-more}; OUT=${OUT:-runs/mpm2d-more}; SCENES=${SCENES:-200}
mkdir -p "$OUT"
meshop generate mpm2d --n "$SCENES" --out "$DATA" --seed 12 --resolution 1000 --frames 40 \
    --shapes polygon --split 0.96,0.04,0 --workers "${WORKERS:-1}"
cat > "$OUT/giorom-more.yaml" <<YAML
data: $DATA
model: giorom
epochs: 4
batch_size: 2
lr: 1.0e-3
schedule: onecycle
noise: 1.0e-3
window_every: 1
seed: 0
model_options: {sparse_nodes: 250, history: 5, latent: 64, message_passing_steps: 5}
out: $OUT/giorom-more
YAML
OMP_NUM_THREADS=1 meshop train --config "$OUT/giorom-more.yaml" -q
OMP_NUM_THREADS=1 python benchmarks/lagrangian.py --only accuracy --full --giorom "$OUT/giorom-more/last.safetensors"
