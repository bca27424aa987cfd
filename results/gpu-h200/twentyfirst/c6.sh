#!/bin/sh
# call 6 (twenty-first set): n32 (sm_90a build). The GPU model's training tests again, to place call 5's one
# failure (dma: a GPU checkpoint scored 1.23% from the CPU's score): the same program by default (twice), with
# cuBLASLt's first heuristic answers (DMABENCH_GEMM_TUNE=0), without O's residual (DMABENCH_DMA_RESIDUAL=0) and
# without the saved plan (DMABENCH_DMA_SAVED=0)
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
P=./gpupack/n32/tests/test_model_gpu_train
for c in def:X=0 def2:X=0 tune0:DMABENCH_GEMM_TUNE=0 res0:DMABENCH_DMA_RESIDUAL=0 saved0:DMABENCH_DMA_SAVED=0; do
  n=${c%%:*} e=${c#*:}
  env DMABENCH_GPU=1 $e timeout 100 $P > $O/tmgt-$n.log 2>&1
  echo "[$(( $(date +%s)-S0 ))s] $n rc=$? ok $(grep -c '^ok' $O/tmgt-$n.log) notok $(grep -c '^not ok' $O/tmgt-$n.log) | $(grep -E '^# (dma|mha|nsa)( \(gates fixed\))? checkpoint|^# dma:' $O/tmgt-$n.log | tr '\n' ' ')"
done
tar czf $OUT/o.tgz -C $OUT o
