#!/usr/bin/env bash
# The 3-seed comparison of benchmarks/lagrangian.table.md (stop 6): GIOROM and GNS at an equal
# compute budget on the data of datasets/mpm2d.sh, then the benchmark's accuracy half on its test
# sets. GIOROM: one epoch over every training window (680 Adam steps of 2 scenes); GNS: one epoch
# over every 6th window (~120 steps): about the same CPU time (~9 min per model for its 3 seeds
# on one core of a 2-core CPU). DATA: datasets/mpm2d.sh's output; TESTS: folders of the
# benchmark's TEST_SETS (benchmarks/lagrangian.py generates them when --data is not given).
set -euo pipefail
DATA=${DATA:-data/mpm2d}; OUT=${OUT:-runs/mpm2d-seeds}
mkdir -p "$OUT"
for seed in 0 1 2; do
  for model in giorom gns; do
    if [ "$model" = giorom ]; then every=1; sparse="sparse_nodes: 250, "; else every=6; sparse=""; fi
    cat > "$OUT/$model-$seed.yaml" <<YAML
data: $DATA
model: $model
epochs: 1
batch_size: 2
lr: 1.0e-3
schedule: onecycle
noise: 1.0e-3
window_every: $every
seed: $seed
model_options: {${sparse}history: 5, latent: 64, message_passing_steps: 5}
out: $OUT/$model-$seed
YAML
    meshop train --config "$OUT/$model-$seed.yaml" -q
  done
done
python benchmarks/lagrangian.py --only accuracy --full --data ${TESTS:?folders of the test sets} \
    --giorom "$OUT"/giorom-{0,1,2}/last.safetensors --gns "$OUT"/gns-{0,1,2}/last.safetensors
