#!/bin/sh
# call 2 (twenty-fourth set): next/d16 with the 8-warp pairs' backward fixed and opt-in (the merge candidate, with its
# test programs). tests/gpu.sh's model part, and at the same time: verify of nsa (defaults: the pairs' forward in sub
# batches; W8=1 bf16/f16; FWD_SUB=16 in chunks of 37 queries; W8=1 with DSUM=0), racecheck and memcheck of nsa's
# fwd+bwd cells with the defaults and with W8=1, and racecheck of nsa's whole verify grid in 2 shards
[ -d gpupack/n25 ] || tar xJf gpupack/n25.tar.xz -C gpupack
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=2
B=./gpupack/n25/dmabench
okc() { grep -c '"status":[[:space:]]*"ok"' $1; }
(OMP_NUM_THREADS=6 DMABENCH_GPU=1 DMABENCH_GPU_PART=model DMABENCH=$B DMABENCH_TESTS=./gpupack/n25/tests DMABENCH_GPU_KEEP=$O/model-keep timeout 560 sh tests/gpu.sh > $O/gpu-model.log 2>&1; echo $? > $O/gpu-model.rc; t "model part done: $(grep -c '^ok' $O/gpu-model.log) ok, $(grep -c '^not ok' $O/gpu-model.log) not ok") &
v() { (env $2 timeout 300 $B verify --backend cuda --variants $3 --dtype $4 --quiet --out $O/v-$1.json > $O/v-$1.log 2>&1; echo $? > $O/v-$1.rc) & }
v bf16 X=0 nsa bf16; v f16 X=0 nsa f16; v w8b DMABENCH_NSA_PAIR_BWD_W8=1 nsa bf16; v w8f DMABENCH_NSA_PAIR_BWD_W8=1 nsa f16
v q37 "DMABENCH_NSA_PAIR_FWD_SUB=16 DMABENCH_NSA_PAIR_QUERIES=37" nsa bf16
v w8ds0 "DMABENCH_NSA_PAIR_BWD_W8=1 DMABENCH_NSA_PAIR_DSUM=0" nsa f16
s() { (env $2 timeout 300 compute-sanitizer --tool $3 --error-exitcode 9 $B kernels --backend cuda --variants nsa --n 300,2048 --w 128 --b 1 --hq 8 --hkv 2 --d 128,64 --dtype bf16 --mode fwdbwd --warmup 0 --repeats 1 --out $O/s-$1.json > $O/san-$1.log 2>&1; echo $? > $O/san-$1.rc) & }
s race X=0 racecheck; s race-w8 DMABENCH_NSA_PAIR_BWD_W8=1 racecheck; s mem X=0 memcheck; s mem-w8 DMABENCH_NSA_PAIR_BWD_W8=1 memcheck
for sh in 1/2 2/2; do n=r$(echo $sh | tr / -)
  (timeout 540 compute-sanitizer --tool racecheck --error-exitcode 9 $B verify --backend cuda --variants nsa --quiet --shard $sh --out $O/$n.json > $O/$n.log 2>&1; echo $? > $O/$n.rc; t "$n done") &
done
wait
for x in bf16 f16 w8b w8f q37 w8ds0; do echo "verify $x rc=$(cat $O/v-$x.rc) $(grep '^verify:' $O/v-$x.log | tail -1)"; grep FAIL $O/v-$x.log | head -3; done
for x in race race-w8 mem mem-w8; do echo "$x rc=$(cat $O/san-$x.rc) $(grep 'SUMMARY' $O/san-$x.log) cells ok $(okc $O/s-$x.json)"; done
for x in r1-2 r2-2; do echo "$x rc=$(cat $O/$x.rc) $(grep 'RACECHECK SUMMARY' $O/$x.log) $(grep '^verify:' $O/$x.log | tail -1)"; done
grep '^not ok' $O/gpu-model.log
grep -E 'agree|gap|within' $O/gpu-model.log | head -20
find $O -name '*.json' -delete; find $O -name '*.jsonl' -delete; find $O -name '*.bin' -delete; find $O -name '*.safetensors' -delete
tar czf $OUT/o.tgz -C $OUT o
t done
