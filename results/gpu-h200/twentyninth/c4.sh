#!/bin/sh
# p31b (main at a649741): tests/gpu.sh's sanitize part (memcheck over verify of mha, swa, dma, nsa; racecheck of
# dma and nsa; the model ops), all at once
[ -d gpupack/p31b ] || tar xJf gpupack/p31b.tar.xz -C gpupack
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=2
DMABENCH_GPU=1 DMABENCH_GPU_PART=sanitize DMABENCH_GPU_JOBS=8 DMABENCH=./gpupack/p31b/dmabench DMABENCH_TESTS=./gpupack/p31b/tests \
  DMABENCH_GPU_KEEP=$O/keep timeout 540 sh tests/gpu.sh > $O/gpu-sanitize.log 2>&1; echo "rc=$? after $(( $(date +%s)-S0 ))s"
cat $O/gpu-sanitize.log
find $O -name '*.json' -size +100k -delete; find $O -name '*.jsonl' -delete
tar czf $OUT/o.tgz -C $OUT o
