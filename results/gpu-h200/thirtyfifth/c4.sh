#!/bin/sh
# p37d (p37c + fw1 with 5 stages of K/V: DMABENCH_CUDA_FWD_WS=3 overlapped, =4 serial; =1, =2 keep 3). Verify WS=3 and
# WS=4 (bf16, every variant), WS=3 f16; A/B of the forwards at 8192 (default, WS=1..4; dma and mha).
[ -d gpupack/p37d ] || tar xJf gpupack/p37d.tar.xz -C gpupack
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=3
B=./gpupack/p37d/dmabench
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader > $O/gpu.txt; cat $O/gpu.txt
v() { n=$1; e=$2; shift 2; env $e timeout 200 $B verify --backend cuda --quiet "$@" --out $O/v-$n.json > $O/v-$n.log 2>&1; echo "$?" > $O/v-$n.rc; }
v ws3 DMABENCH_CUDA_FWD_WS=3 --dtype bf16 & v ws3f16 DMABENCH_CUDA_FWD_WS=3 --dtype f16 & v ws4 DMABENCH_CUDA_FWD_WS=4 --dtype bf16 & wait; t verified
bad=0
for f in $O/v-*.log; do n=$(basename $f .log); r=$(grep passed $f | tail -1); echo "$n rc=$(cat $O/$n.rc): $r"; echo "$r" | grep -q ' 0 failed' || { bad=1; grep -m8 -E "FAIL|fail|rror" $f; }; done
tar czf $OUT/o.tgz -C $OUT o
[ $bad = 0 ] || exit 0
AB="--backend cuda --dtype bf16 --warmup 2 --repeats 5 --check-n 0 --b 1 --hq 32 --hkv 8 --d 128 --w 1024 --n 8192"
DMABENCH=$B OUT=$O/abf timeout 200 sh scripts/kernels-ab.sh 2 - DMABENCH_CUDA_FWD_WS=1 DMABENCH_CUDA_FWD_WS=2 DMABENCH_CUDA_FWD_WS=3 DMABENCH_CUDA_FWD_WS=4 -- $AB --variants dma,mha --mode fwd > $O/abf.txt 2>&1; tail -5 $O/abf.txt
t timed
tar czf $OUT/o.tgz -C $OUT o
K="kernels --backend cuda --dtype bf16 --warmup 1 --repeats 1 --check-n 0 --w 1024 --b 1 --hq 32 --hkv 8 --d 128 --mode fwd --variants dma --n 8192"
DMABENCH_CUDA_FWD_WS=3 OUT=$O timeout 120 sh scripts/gpu-kernel-profile.sh ws3 attn_fwd_ws_kernel 1 $B $K > $O/p-ws3.txt 2>&1; t profiled; tail -8 $O/p-ws3.txt
find $O -name '*.json' -size +100k -delete; find $O -name '*.jsonl' -delete
tar czf $OUT/o.tgz -C $OUT o
