#!/bin/sh
# p39a (next/fw1-tma-pp 9bf8396: TM at CTA scope, the backward's MC at CTA scope, the ping-pong on TM, key_slot_store,
# the plan's rows from key_rows). Verify in bf16 the default, WS=1+TMA=1, WS=2, WS=2+TMA=1, and WS=2+TMA=1 in f16
# (every variant); A/B of the forwards at 8192 (dma, mha) and of dma's fwd+bwd; memcheck of dma with the default,
# WS=1+TMA=1 and WS=2+TMA=1; racecheck of dma with the default in 3 shards.
[ -d gpupack/p39a ] || tar xJf gpupack/p39a.tar.xz -C gpupack
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=3
B=./gpupack/p39a/dmabench
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader > $O/gpu.txt; cat $O/gpu.txt
W1T=DMABENCH_CUDA_FWD_WS=1+DMABENCH_CUDA_FWD_TMA=1; W2=DMABENCH_CUDA_FWD_WS=2; W2T=DMABENCH_CUDA_FWD_WS=2+DMABENCH_CUDA_FWD_TMA=1
e() { echo "$1" | tr '+' ' '; }
v() { n=$1; s=$2; shift 2; env $(e $s) timeout 200 $B verify --backend cuda --quiet "$@" --out $O/v-$n.json > $O/v-$n.log 2>&1; echo "$?" > $O/v-$n.rc; }
v def X=0 --dtype bf16 & v w1t $W1T --dtype bf16 & v w2 $W2 --dtype bf16 & v w2t $W2T --dtype bf16 & v w2tf16 $W2T --dtype f16 & wait; t verified
for f in $O/v-*.log; do n=$(basename $f .log); r=$(grep passed $f | tail -1); echo "$n rc=$(cat $O/$n.rc): $r"; echo "$r" | grep -q ' 0 failed' || grep -m8 -E "FAIL|fail|rror" $f; done
tar czf $OUT/o.tgz -C $OUT o
AB="--backend cuda --dtype bf16 --warmup 2 --repeats 5 --check-n 0 --b 1 --hq 32 --hkv 8 --d 128 --w 1024 --n 8192"
DMABENCH=$B OUT=$O/abf timeout 170 sh scripts/kernels-ab.sh 2 - DMABENCH_CUDA_FWD_WS=1 $W1T $W2 $W2T -- $AB --variants dma,mha --mode fwd > $O/abf.txt 2>&1; tail -4 $O/abf.txt
DMABENCH=$B OUT=$O/abfb timeout 150 sh scripts/kernels-ab.sh 2 - DMABENCH_CUDA_FWD_TMA=1 $W2T DMABENCH_CUDA_BWD_MC_SCOPE=cluster -- $AB --variants dma --mode fwdbwd > $O/abfb.txt 2>&1; tail -3 $O/abfb.txt
t timed
tar czf $OUT/o.tgz -C $OUT o
s() { n=$1; tag=$2; x=$3; shift 3; env $(e $x) timeout 250 compute-sanitizer --tool $n --error-exitcode 9 $B verify --backend cuda --variants dma --quiet "$@" --out $O/s-$n-$tag.json > $O/s-$n-$tag.log 2>&1; echo "s-$n-$tag rc=$? $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY|passed' $O/s-$n-$tag.log | tail -2 | tr '\n' ' ')"; }
s memcheck def X=0 > $O/s1.txt & s memcheck w1t $W1T > $O/s2.txt & s memcheck w2t $W2T > $O/s3.txt &
s racecheck def-1 X=0 --shard 1/3 > $O/s4.txt & s racecheck def-2 X=0 --shard 2/3 > $O/s5.txt & s racecheck def-3 X=0 --shard 3/3 > $O/s6.txt & wait
cat $O/s1.txt $O/s2.txt $O/s3.txt $O/s4.txt $O/s5.txt $O/s6.txt
t done
find $O -name '*.json' -size +100k -delete; find $O -name '*.jsonl' -delete
tar czf $OUT/o.tgz -C $OUT o
