#!/bin/sh
# p38d (main 8b7c242 + fw1's rows by tensor-memory boxes multicast over a cluster of two heads,
# DMABENCH_CUDA_FWD_TMA=1; branch next/fw1-tma). Verify fw1 with TMA=1 (WS=1: every forward through fw1) in bf16 and f16
# (every variant); then A/B of the forwards at 8192 (WS=1 against WS=1 + TMA=1; dma, mha) and of dma's fwd+bwd (default
# against TMA=1).
[ -d gpupack/p38d ] || tar xJf gpupack/p38d.tar.xz -C gpupack
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=3
B=./gpupack/p38d/dmabench
v() { n=$1; shift; env DMABENCH_CUDA_FWD_WS=1 DMABENCH_CUDA_FWD_TMA=1 timeout 120 $B verify --backend cuda --quiet "$@" --out $O/v-$n.json > $O/v-$n.log 2>&1; echo "$?" > $O/v-$n.rc; }
v bf16 --dtype bf16 & v f16 --dtype f16 & wait; t verified
bad=0
for f in $O/v-*.log; do n=$(basename $f .log); r=$(grep passed $f | tail -1); echo "$n rc=$(cat $O/$n.rc): $r"; echo "$r" | grep -q ' 0 failed' || { bad=1; grep -m12 -E "FAIL|fail|rror" $f; }; done
tar czf $OUT/o.tgz -C $OUT o
[ $bad = 0 ] || exit 0
AB="--backend cuda --dtype bf16 --warmup 2 --repeats 5 --check-n 0 --b 1 --hq 32 --hkv 8 --d 128 --w 1024 --n 8192"
DMABENCH=$B OUT=$O/abf timeout 100 sh scripts/kernels-ab.sh 2 DMABENCH_CUDA_FWD_WS=1 DMABENCH_CUDA_FWD_WS=1+DMABENCH_CUDA_FWD_TMA=1 -- $AB --variants dma,mha --mode fwd > $O/abf.txt 2>&1; tail -4 $O/abf.txt
DMABENCH=$B OUT=$O/abfb timeout 60 sh scripts/kernels-ab.sh 2 - DMABENCH_CUDA_FWD_TMA=1 -- $AB --variants dma --mode fwdbwd > $O/abfb.txt 2>&1; tail -3 $O/abfb.txt
t done
find $O -name '*.json' -size +100k -delete; find $O -name '*.jsonl' -delete
tar czf $OUT/o.tgz -C $OUT o
