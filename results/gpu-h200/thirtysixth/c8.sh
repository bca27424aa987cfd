#!/bin/sh
# p38d (as call 7). fw1's dma forward at 8192 with TMA=1 profiled; the fwd+bwd's kernel durations with TMA=1.
[ -d gpupack/p38d ] || tar xJf gpupack/p38d.tar.xz -C gpupack
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=3
B=./gpupack/p38d/dmabench
K="kernels --backend cuda --dtype bf16 --warmup 1 --repeats 1 --check-n 0 --w 1024 --b 1 --hq 32 --hkv 8 --d 128 --variants dma --n 8192"
DMABENCH_CUDA_FWD_WS=1 DMABENCH_CUDA_FWD_TMA=1 OUT=$O timeout 100 sh scripts/gpu-kernel-profile.sh tma attn_fwd_ws_kernel 1 $B $K --mode fwd > $O/p-tma.txt 2>&1; tail -14 $O/p-tma.txt
DMABENCH_CUDA_FWD_TMA=1 OUT=$O PER=2 timeout 60 sh scripts/gpu-profile.sh fb-tma $B $K --mode fwdbwd > /dev/null 2>&1; cat $O/profile-fb-tma.txt
echo "[$(( $(date +%s)-S0 ))s] done"
rm -f $O/*.ncu-rep $O/ncu-fb-*.csv $O/*-src.csv.gz
tar czf $OUT/o.tgz -C $OUT o
