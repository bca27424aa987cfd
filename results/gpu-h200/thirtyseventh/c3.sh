#!/bin/sh
# p39b (as call 2). scripts/gpu-check.sh's bench part: the kernels at the paper's shapes and PyTorch SDPA in the same run.
[ -d gpupack/p39b ] || tar xJf gpupack/p39b.tar.xz -C gpupack
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=3
DMABENCH=./gpupack/p39b/dmabench OUT=$O timeout 570 sh scripts/gpu-check.sh bench > $O/bench.txt 2>&1; echo "rc=$?"; cat $O/bench.txt | cut -c1-140
echo "[$(( $(date +%s)-S0 ))s] done"
find $O -name '*.json' -size +300k -delete; find $O -name '*.jsonl' -delete
tar czf $OUT/o.tgz -C $OUT o
