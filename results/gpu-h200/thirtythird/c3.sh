#!/bin/sh
# p35c (main's default kernels and fw2) against p35d, a diagnostic build of the same tree in which dma's forward
# and query-tile backward copy the K/V rows of their first block only (every later block reads stale rows: wrong
# values, the same instructions otherwise): how much the consumers' own gathers cost. dma fwd and fwd+bwd at 8192,
# 3 rounds alternated; both backward kernels profiled; one fwd+bwd call's kernels summed by name (p35c).
for p in p35c p35d; do [ -d gpupack/$p ] || tar xJf gpupack/$p.tar.xz -C gpupack; done
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=4
A=./gpupack/p35c/dmabench B=./gpupack/p35d/dmabench
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader > $O/gpu.txt; cat $O/gpu.txt
AB="--backend cuda --dtype bf16 --warmup 2 --repeats 5 --check-n 0 --b 1 --hq 32 --hkv 8 --d 128 --w 1024 --variants dma"
OUT=$O/ab8k timeout 200 sh scripts/kernels-ab.sh 3 DMABENCH=$A DMABENCH=$B -- $AB --n 8192 --mode fwd,fwdbwd > $O/ab8k.txt 2>&1; tail -4 $O/ab8k.txt
OUT=$O/ab65 timeout 100 sh scripts/kernels-ab.sh 1 DMABENCH=$A DMABENCH=$B -- $AB --n 65536 --mode fwd,fwdbwd --repeats 3 > $O/ab65.txt 2>&1; tail -4 $O/ab65.txt
t timed
tar czf $OUT/o.tgz -C $OUT o
K="kernels --backend cuda --dtype bf16 --warmup 1 --repeats 1 --check-n 0 --w 1024 --b 1 --hq 32 --hkv 8 --d 128 --mode fwdbwd --variants dma --n 8192"
OUT=$O timeout 120 sh scripts/gpu-kernel-profile.sh bwd-c bwd_main_kernel 1 $A $K > $O/p-bwd-c.txt 2>&1; t profiled; tail -6 $O/p-bwd-c.txt
OUT=$O timeout 120 sh scripts/gpu-kernel-profile.sh bwd-d bwd_main_kernel 1 $B $K > $O/p-bwd-d.txt 2>&1; t profiled; tail -6 $O/p-bwd-d.txt
OUT=$O PER=2 timeout 120 sh scripts/gpu-profile.sh split $A $K > $O/p-split.txt 2>&1; cat $O/profile-split.txt
t done
find $O -name '*.json' -size +100k -delete; find $O -name '*.jsonl' -delete
tar czf $OUT/o.tgz -C $OUT o
