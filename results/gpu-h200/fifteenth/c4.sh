#!/bin/sh
# call 4 (main's code): the GPU training throughput (scripts/gpu-train-bench.sh: mha at 2048, mha, dma and nsa at 8192), then the mha step at 2048 under Nsight Compute, kernel times by name (scripts/gpu-train-profile.sh)
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader > $O/gpu.txt
NEW=./gpupack/new/dmabench
DMABENCH=$NEW OUT=$O/train sh scripts/gpu-train-bench.sh
t profile
DMABENCH=$NEW OUT=$O/prof timeout 300 sh scripts/gpu-train-profile.sh mha 2048 8 > $O/prof.log 2>&1; echo "profile rc=$?"
head -40 $O/prof/*.txt 2>/dev/null
t done
rm -f $O/train/bytes.txt $O/prof/bytes.txt; find $O -name '*.ncu-rep' -size +20M -delete
tar czf $OUT/o.tgz -C $OUT o
