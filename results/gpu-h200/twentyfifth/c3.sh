#!/bin/sh
# call 3 (twenty-fifth set): n49 (the pairs' lists counted and placed per run of queries in shared memory) against
# main (n48). Checks on n49: verify of nsa in bf16 and f16, by union, auto (the choice's count), in chunks of 37
# queries, without the kept lists, W8=1; racecheck and memcheck of nsa's fwd+bwd cells; tests/gpu.sh's model part.
# Then nsa at both shapes, main and n49 alternated twice; the training bench alternated twice; the nsa step's
# kernels under Nsight Compute (3 steps)
for p in n48 n49; do [ -d gpupack/$p ] || tar xJf gpupack/$p.tar.xz -C gpupack; done
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=2
M=./gpupack/n48/dmabench B=./gpupack/n49/dmabench
okc() { grep -c '"status":[[:space:]]*"ok"' $1; }
(OMP_NUM_THREADS=6 DMABENCH_GPU=1 DMABENCH_GPU_PART=model DMABENCH=$B DMABENCH_TESTS=./gpupack/n49/tests DMABENCH_GPU_KEEP=$O/model-keep timeout 300 sh tests/gpu.sh > $O/gpu-model.log 2>&1; echo $? > $O/gpu-model.rc; t "model part done: $(grep -c '^ok' $O/gpu-model.log) ok, $(grep -c '^not ok' $O/gpu-model.log) not ok") &
v() { (env $2 timeout 250 $B verify --backend cuda --variants $3 --dtype $4 --quiet --out $O/v-$1.json > $O/v-$1.log 2>&1; echo $? > $O/v-$1.rc) & }
v bf16 X=0 nsa bf16; v f16 X=0 nsa f16; v union DMABENCH_NSA_SLC=union nsa bf16; v auto "DMABENCH_NSA_SLC=auto DMABENCH_NSA_SLC_STATS=1" nsa f16
v q37 DMABENCH_NSA_PAIR_QUERIES=37 nsa bf16; v keep0 DMABENCH_NSA_KEEP_LISTS=0 nsa f16; v w8 DMABENCH_NSA_PAIR_BWD_W8=1 nsa bf16
s() { (env $2 timeout 250 compute-sanitizer --tool $3 --error-exitcode 9 $B kernels --backend cuda --variants $4 --n 300,2048 --w 128 --b 1 --hq 8 --hkv 2 --d 128,64 --dtype bf16 --mode fwdbwd --warmup 0 --repeats 1 --out $O/s-$1.json > $O/san-$1.log 2>&1; echo $? > $O/san-$1.rc) & }
s race X=0 racecheck nsa; s mem X=0 memcheck nsa; s mem-q37 DMABENCH_NSA_PAIR_QUERIES=37 memcheck nsa
wait
for x in bf16 f16 union auto q37 keep0 w8; do echo "verify $x rc=$(cat $O/v-$x.rc) $(grep '^verify:' $O/v-$x.log | tail -1)"; grep FAIL $O/v-$x.log | head -3; done
for x in race mem mem-q37; do echo "$x rc=$(cat $O/san-$x.rc) $(grep 'SUMMARY' $O/san-$x.log) cells ok $(okc $O/s-$x.json)"; done
grep '^not ok' $O/gpu-model.log
tar czf $OUT/o.tgz -C $OUT o
t kernels
K="kernels --backend cuda --dtype bf16 --warmup 2 --repeats 5 --check-n 0"
k() { env $3 timeout 100 $2 $K $4 --out $O/k-$1.json > $O/k-$1.log 2>&1; echo "$1 rc=$? $(grep -E '^\| (mha|dma|swa|nsa)' $O/k-$1.log | cut -d"|" -f2,4,6,9,11,12 | tr '\n' ' ')"; }
P="--b 1 --hq 32 --hkv 8 --d 128"
NS="--mode fwd,fwdbwd --variants nsa --n 8192 --w 512"
NT="$NS --b 2 --hq 6 --hkv 3 --d 128"
for r in 1 2; do
  k main-nt-$r $M X=0 "$NT"; k n49-nt-$r $B X=0 "$NT"
  k main-n-$r $M X=0 "$NS $P"; k n49-n-$r $B X=0 "$NS $P"
done
tar czf $OUT/o.tgz -C $OUT o
t train
export OMP_NUM_THREADS=8
trn() { RUNS="$2" DMABENCH=$3 OUT=$O/train-$1 sh scripts/gpu-train-bench.sh 2>&1 | grep -v '^{' | grep -v H200 | sed "s/^/$1 /"; rm -f $O/train-$1/bytes.txt; tar czf $OUT/o.tgz -C $OUT o; }
trn main "nsa:8192:2" $M; trn n49 "nsa:8192:2" $B; trn main-2 "nsa:8192:2" $M; trn n49-2 "nsa:8192:2" $B
t profile
DMABENCH=$B OUT=$O/prof timeout 150 sh scripts/gpu-train-profile.sh nsa 8192 2 2>&1 | head -45
t done
rm -f $O/v-*.json; rm -f $O/prof/ncu-*.csv; find $O -name '*.json' -size +300k -delete; find $O -name '*.jsonl' -delete; find $O -name '*.bin' -delete; find $O -name '*.safetensors' -delete
tar czf $OUT/o.tgz -C $OUT o
