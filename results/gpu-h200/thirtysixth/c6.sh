#!/bin/sh
# p38c (p38b's main + fw1's ping-pong, FNS templated: DMABENCH_CUDA_FWD_WS=2 ping-pong with 3 stages, =3 ping-pong
# with 5, =4 serial with 5). Verify =3 and =4 in bf16 and =3 in f16 (every variant); A/B of dma and mha fwd at 8192
# (=1..=4) and of dma fwd+bwd (default, =3).
[ -d gpupack/p38c ] || tar xJf gpupack/p38c.tar.xz -C gpupack
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=3
B=./gpupack/p38c/dmabench
v() { n=$1; e=$2; shift 2; env $e timeout 200 $B verify --backend cuda --quiet "$@" --out $O/v-$n.json > $O/v-$n.log 2>&1; echo "$?" > $O/v-$n.rc; }
v ws3 DMABENCH_CUDA_FWD_WS=3 --dtype bf16 & v ws4 DMABENCH_CUDA_FWD_WS=4 --dtype bf16 & v ws3f16 DMABENCH_CUDA_FWD_WS=3 --dtype f16 & wait; t verified
for f in $O/v-*.log; do n=$(basename $f .log); r=$(grep passed $f | tail -1); echo "$n rc=$(cat $O/$n.rc): $r"; echo "$r" | grep -q ' 0 failed' || grep -m8 -E "FAIL|fail|rror" $f; done
tar czf $OUT/o.tgz -C $OUT o
AB="--backend cuda --dtype bf16 --warmup 2 --repeats 5 --check-n 0 --b 1 --hq 32 --hkv 8 --d 128 --w 1024 --n 8192"
DMABENCH=$B OUT=$O/abf timeout 150 sh scripts/kernels-ab.sh 2 DMABENCH_CUDA_FWD_WS=1 DMABENCH_CUDA_FWD_WS=2 DMABENCH_CUDA_FWD_WS=3 DMABENCH_CUDA_FWD_WS=4 -- $AB --variants dma,mha --mode fwd > $O/abf.txt 2>&1; tail -4 $O/abf.txt
DMABENCH=$B OUT=$O/abfb timeout 100 sh scripts/kernels-ab.sh 2 - DMABENCH_CUDA_FWD_WS=3 -- $AB --variants dma --mode fwdbwd > $O/abfb.txt 2>&1; tail -3 $O/abfb.txt
t done
find $O -name '*.json' -size +100k -delete; find $O -name '*.jsonl' -delete
tar czf $OUT/o.tgz -C $OUT o
