#!/bin/sh
# p36f (main's code at 8492376): whether MC moves the other variants' fwd+bwd: nsa at 65536 (w 512) and swa, dma at
# 8192 (w 1024), the default against DMABENCH_CUDA_BWD_MC=0, one round each.
[ -d gpupack/p36f ] || tar xJf gpupack/p36f.tar.xz -C gpupack
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=3
B=./gpupack/p36f/dmabench
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader > $O/gpu.txt; cat $O/gpu.txt
P="--backend cuda --dtype bf16 --warmup 2 --repeats 5 --check-n 0 --b 1 --hq 32 --hkv 8 --d 128 --mode fwd,fwdbwd"
DMABENCH=$B OUT=$O/ab8k timeout 80 sh scripts/kernels-ab.sh 1 - DMABENCH_CUDA_BWD_MC=0 -- $P --variants swa,dma --n 8192 --w 1024 > $O/ab8k.txt 2>&1; tail -4 $O/ab8k.txt
t timed8k
tar czf $OUT/o.tgz -C $OUT o
DMABENCH=$B OUT=$O/nsa65 timeout 110 sh scripts/kernels-ab.sh 1 - DMABENCH_CUDA_BWD_MC=0 -- $P --variants nsa --n 65536 --w 512 --repeats 3 > $O/nsa65.txt 2>&1; tail -4 $O/nsa65.txt
t done
find $O -name '*.json' -size +100k -delete; find $O -name '*.jsonl' -delete
tar czf $OUT/o.tgz -C $OUT o
