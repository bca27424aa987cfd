#!/bin/sh
# p37c (main f7b1e47 + fw1's overlap: DMABENCH_CUDA_FWD_WS=2 issues S_j with P_{j-1} V_{j-1} and forms S_j's softmax
# under it). Verify WS=2 (bf16, f16; every variant); A/B of the forwards at 8192 (default, WS=1, WS=2; dma and mha) and
# dma's fwd+bwd; memcheck and racecheck of dma with WS=2; the WS=2 dma forward profiled.
[ -d gpupack/p37c ] || tar xJf gpupack/p37c.tar.xz -C gpupack
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=3
B=./gpupack/p37c/dmabench
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader > $O/gpu.txt; cat $O/gpu.txt
v() { n=$1; e=$2; shift 2; env $e timeout 200 $B verify --backend cuda --quiet "$@" --out $O/v-$n.json > $O/v-$n.log 2>&1; echo "$?" > $O/v-$n.rc; }
v ws2 DMABENCH_CUDA_FWD_WS=2 --dtype bf16 & v ws2f16 DMABENCH_CUDA_FWD_WS=2 --dtype f16 & wait; t verified
bad=0
for f in $O/v-*.log; do n=$(basename $f .log); r=$(grep passed $f | tail -1); echo "$n rc=$(cat $O/$n.rc): $r"; echo "$r" | grep -q ' 0 failed' || { bad=1; grep -m8 -E "FAIL|fail|rror" $f; }; done
tar czf $OUT/o.tgz -C $OUT o
[ $bad = 0 ] || exit 0
AB="--backend cuda --dtype bf16 --warmup 2 --repeats 5 --check-n 0 --b 1 --hq 32 --hkv 8 --d 128 --w 1024 --n 8192"
DMABENCH=$B OUT=$O/abf timeout 150 sh scripts/kernels-ab.sh 2 - DMABENCH_CUDA_FWD_WS=1 DMABENCH_CUDA_FWD_WS=2 -- $AB --variants dma,mha --mode fwd > $O/abf.txt 2>&1; tail -5 $O/abf.txt
DMABENCH=$B OUT=$O/abfb timeout 100 sh scripts/kernels-ab.sh 2 - DMABENCH_CUDA_FWD_WS=2 -- $AB --variants dma --mode fwdbwd > $O/abfb.txt 2>&1; tail -3 $O/abfb.txt
t timed
tar czf $OUT/o.tgz -C $OUT o
K="kernels --backend cuda --dtype bf16 --warmup 1 --repeats 1 --check-n 0 --w 1024 --b 1 --hq 32 --hkv 8 --d 128 --mode fwd --variants dma --n 8192"
DMABENCH_CUDA_FWD_WS=2 OUT=$O timeout 120 sh scripts/gpu-kernel-profile.sh ws2 attn_fwd_ws_kernel 1 $B $K > $O/p-ws2.txt 2>&1; t profiled; tail -8 $O/p-ws2.txt
tar czf $OUT/o.tgz -C $OUT o
s() { n=$1; v=$2; shift 2; env "$@" timeout 250 compute-sanitizer --tool $n --error-exitcode 9 $B verify --backend cuda --variants $v --quiet --out $O/s-$n-$v.json > $O/s-$n-$v.log 2>&1; echo "s-$n-$v rc=$? $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY|passed' $O/s-$n-$v.log | tail -2 | tr '\n' ' ')"; }
s memcheck dma DMABENCH_CUDA_FWD_WS=2 > $O/s1.txt & s racecheck dma DMABENCH_CUDA_FWD_WS=2 > $O/s2.txt & wait; cat $O/s1.txt $O/s2.txt
t done
find $O -name '*.json' -size +100k -delete; find $O -name '*.jsonl' -delete
tar czf $OUT/o.tgz -C $OUT o
