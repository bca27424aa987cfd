#!/bin/sh
# p34a: Nsight Compute profiles of the query-tile backward (dma fwd+bwd at 8192, paper shape): the default (rw1)
# and DMABENCH_CUDA_BWD_RW_CLUSTER=4 / =2, which call 1 timed 1.22x / 1.37x slower: where the clusters' time goes.
[ -d gpupack/p34a ] || tar xJf gpupack/p34a.tar.xz -C gpupack
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=4
B=./gpupack/p34a/dmabench
K="kernels --backend cuda --dtype bf16 --warmup 1 --repeats 1 --check-n 0 --w 1024 --b 1 --hq 32 --hkv 8 --d 128 --mode fwdbwd --variants dma --n 8192"
OUT=$O timeout 200 sh scripts/gpu-kernel-profile.sh rw1 bwd_main_kernel 1 $B $K > $O/p-rw1.txt 2>&1; t rw1; cat $O/p-rw1.txt | tail -8
tar czf $OUT/o.tgz -C $OUT o
env DMABENCH_CUDA_BWD_RW_CLUSTER=4 OUT=$O timeout 200 sh scripts/gpu-kernel-profile.sh cl4 bwd_main_kernel 1 $B $K > $O/p-cl4.txt 2>&1; t cl4; tail -8 $O/p-cl4.txt
tar czf $OUT/o.tgz -C $OUT o
