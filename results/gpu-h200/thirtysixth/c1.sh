#!/bin/sh
# p38a (main eeb7cc2 + next/fw1-meta + next/fw1-pingpong, rebased: 60e0f41). Verify the default, WS=1 and WS=2 in
# bf16 and f16 (every variant); A/B of the forwards (default, WS=1, WS=2; dma and mha) and dma's fwd+bwd at 8192;
# memcheck of dma with WS=1 and WS=2, racecheck of dma with WS=2 in 3 shards.
[ -d gpupack/p38a ] || tar xJf gpupack/p38a.tar.xz -C gpupack
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=3
B=./gpupack/p38a/dmabench
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader > $O/gpu.txt; cat $O/gpu.txt
v() { n=$1; e=$2; shift 2; env $e timeout 200 $B verify --backend cuda --quiet "$@" --out $O/v-$n.json > $O/v-$n.log 2>&1; echo "$?" > $O/v-$n.rc; }
v ws1 DMABENCH_CUDA_FWD_WS=1 --dtype bf16 & v ws2 DMABENCH_CUDA_FWD_WS=2 --dtype bf16 & v ws1f16 DMABENCH_CUDA_FWD_WS=1 --dtype f16 & v ws2f16 DMABENCH_CUDA_FWD_WS=2 --dtype f16 & v def X=0 --dtype bf16 & wait; t verified
for f in $O/v-*.log; do n=$(basename $f .log); r=$(grep passed $f | tail -1); echo "$n rc=$(cat $O/$n.rc): $r"; echo "$r" | grep -q ' 0 failed' || grep -m8 -E "FAIL|fail|rror" $f; done
tar czf $OUT/o.tgz -C $OUT o
AB="--backend cuda --dtype bf16 --warmup 2 --repeats 5 --check-n 0 --b 1 --hq 32 --hkv 8 --d 128 --w 1024 --n 8192"
DMABENCH=$B OUT=$O/abf timeout 150 sh scripts/kernels-ab.sh 2 - DMABENCH_CUDA_FWD_WS=1 DMABENCH_CUDA_FWD_WS=2 -- $AB --variants dma,mha --mode fwd > $O/abf.txt 2>&1; tail -4 $O/abf.txt
DMABENCH=$B OUT=$O/abfb timeout 120 sh scripts/kernels-ab.sh 2 - DMABENCH_CUDA_FWD_WS=1 DMABENCH_CUDA_FWD_WS=2 -- $AB --variants dma --mode fwdbwd > $O/abfb.txt 2>&1; tail -3 $O/abfb.txt
t timed
tar czf $OUT/o.tgz -C $OUT o
s() { n=$1; tag=$2; e=$3; shift 3; env $e timeout 290 compute-sanitizer --tool $n --error-exitcode 9 $B verify --backend cuda --variants dma --quiet "$@" --out $O/s-$n-$tag.json > $O/s-$n-$tag.log 2>&1; echo "s-$n-$tag rc=$? $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY|passed' $O/s-$n-$tag.log | tail -2 | tr '\n' ' ')"; }
s memcheck ws1 DMABENCH_CUDA_FWD_WS=1 > $O/s1.txt & s memcheck ws2 DMABENCH_CUDA_FWD_WS=2 > $O/s2.txt &
s racecheck ws2-1 DMABENCH_CUDA_FWD_WS=2 --shard 1/3 > $O/s3.txt & s racecheck ws2-2 DMABENCH_CUDA_FWD_WS=2 --shard 2/3 > $O/s4.txt &
s racecheck ws2-3 DMABENCH_CUDA_FWD_WS=2 --shard 3/3 > $O/s5.txt & wait; cat $O/s1.txt $O/s2.txt $O/s3.txt $O/s4.txt $O/s5.txt
t done
find $O -name '*.json' -size +100k -delete; find $O -name '*.jsonl' -delete
tar czf $OUT/o.tgz -C $OUT o
