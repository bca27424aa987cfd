#!/bin/sh
# p39d (main d73f7e1, as call 5). The backward kernel of dma's fwd+bwd at 8192 under Nsight Compute's full set with stall
# samples (bwd-*); A/B of dma's forward (without O's residual) on mma.sync (the default) against fw1 (WS=1) at 8192 and
# 65536.
[ -d gpupack/p39d ] || tar xJf gpupack/p39d.tar.xz -C gpupack
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=3
B=./gpupack/p39d/dmabench
K="kernels --backend cuda --dtype bf16 --warmup 1 --repeats 1 --check-n 0 --w 1024 --b 1 --hq 32 --hkv 8 --d 128 --variants dma --n 8192 --mode fwdbwd"
OUT=$O timeout 120 sh scripts/gpu-kernel-profile.sh bwd bwd_main_kernel 1 $B $K > $O/p-bwd.txt 2>&1; t profiled; tail -14 $O/p-bwd.txt
tar czf $OUT/o.tgz -C $OUT o
AB="--backend cuda --dtype bf16 --warmup 2 --repeats 5 --check-n 0 --b 1 --hq 32 --hkv 8 --d 128 --w 1024 --variants dma --mode fwd"
DMABENCH=$B OUT=$O/ab8 timeout 60 sh scripts/kernels-ab.sh 3 - DMABENCH_CUDA_FWD_WS=1 -- $AB --n 8192 > $O/ab8.txt 2>&1; tail -3 $O/ab8.txt
DMABENCH=$B OUT=$O/ab64 timeout 60 sh scripts/kernels-ab.sh 1 - DMABENCH_CUDA_FWD_WS=1 -- $AB --n 65536 --repeats 3 > $O/ab64.txt 2>&1; tail -3 $O/ab64.txt
t done
find $O -name '*.json' -size +100k -delete; find $O -name '*.jsonl' -delete
tar czf $OUT/o.tgz -C $OUT o
