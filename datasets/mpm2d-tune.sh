#!/usr/bin/env bash
# The bundled mpm2d (meshop/assets/models/mpm2d.safetensors): the 4-epoch GIOROM of
# `SCENES=400 DATA=data/mpm2d-400 OUT=runs/mpm2d-400 bash datasets/mpm2d-more.sh`, fine-tuned
# (`meshop train --init`) on the same 384 scenes for 3 epochs at a cosine learning rate from 3e-4,
# then 3 more from 2e-4 (~64 and ~50 min on one core of a 2-core CPU, the other core busy), and
# the benchmark's accuracy half on its test sets. STAGES=1 stops after the first fine-tune.
set -euo pipefail
DATA=${DATA:-data/mpm2d-400}; OUT=${OUT:-runs/mpm2d-400}; STAGES=${STAGES:-2}
init=$OUT/giorom-more/best.safetensors
for stage in $(seq 1 "$STAGES"); do
    name=giorom-tune$([ "$stage" = 1 ] || echo "$stage")
    lr=$([ "$stage" = 1 ] && echo 3.0e-4 || echo 2.0e-4)
    cat > "$OUT/$name.yaml" <<YAML
data: $DATA
model: giorom
init: $init
epochs: 3
batch_size: 2
lr: $lr
schedule: cosine
noise: 1.0e-3
window_every: 1
seed: $stage
model_options: {sparse_nodes: 250, history: 5, latent: 64, message_passing_steps: 5}
out: $OUT/$name
YAML
    OMP_NUM_THREADS=1 meshop train --config "$OUT/$name.yaml" -q
    init=$OUT/$name/best.safetensors
done
OMP_NUM_THREADS=1 python benchmarks/lagrangian.py --only accuracy --full --giorom "$init"
