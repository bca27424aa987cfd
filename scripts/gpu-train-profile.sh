#!/bin/sh
# gpu-train-profile.sh: where a GPU training step's time goes: a few steps of one
# of the throughput configs (model/configs/gpu-131m-*.json) under Nsight Compute
# (scripts/gpu-profile.sh), the kernels' durations summed by name per step.
#   DMABENCH=./build/dmabench OUT=results/gpu-profile sh scripts/gpu-train-profile.sh [variant] [context] [batch]
set -u
B=${DMABENCH:-./build/dmabench}
OUT=${OUT:-results/gpu-profile}
V=${1:-mha} CTX=${2:-2048} BS=${3:-8} STEPS=${STEPS:-3}
mkdir -p "$OUT"
DATA=$OUT/bytes.txt
cat README.md docs/*.md >"$DATA"
OUT=$OUT PER=$STEPS sh scripts/gpu-profile.sh "train-$V-$CTX" "$B" train --config "model/configs/gpu-131m-$V.json" \
    --data "$DATA" --out "/tmp/gpu-profile-$V" --backend cuda --context "$CTX" --batch-size "$BS" --steps "$STEPS" \
    --log-every 1 --force --quiet
rc=$?
rm -f "$DATA"
exit $rc
