#!/bin/sh
# call 4 (twenty-fourth set): n43 (the pairs' row copies from per-row offsets) against main (n25 pack: n41, n42, d16
# merged). verify of nsa (bf16, f16, W8=1, FWD_SUB=1, QUERIES=37) and racecheck/memcheck of nsa's fwd+bwd cells on
# n43; then nsa at the model's and the paper shape, main and n43 alternated twice; then the training bench for nsa,
# main and n43 alternated twice
[ -d gpupack/n25 ] || tar xJf gpupack/n25.tar.xz -C gpupack
[ -d gpupack/n43 ] || tar xJf gpupack/n43.tar.xz -C gpupack
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=2
M=./gpupack/n25/dmabench B=./gpupack/n43/dmabench
okc() { grep -c '"status":[[:space:]]*"ok"' $1; }
v() { (env $2 timeout 200 $B verify --backend cuda --variants nsa --dtype $3 --quiet --out $O/v-$1.json > $O/v-$1.log 2>&1; echo $? > $O/v-$1.rc) & }
v bf16 X=0 bf16; v f16 X=0 f16; v w8 DMABENCH_NSA_PAIR_BWD_W8=1 bf16; v sub1 DMABENCH_NSA_PAIR_FWD_SUB=1 f16; v q37 DMABENCH_NSA_PAIR_QUERIES=37 bf16
v union DMABENCH_NSA_SLC=union bf16
s() { (env $2 timeout 200 compute-sanitizer --tool $3 --error-exitcode 9 $B kernels --backend cuda --variants nsa --n 300,2048 --w 128 --b 1 --hq 8 --hkv 2 --d 128,64 --dtype bf16 --mode fwdbwd --warmup 0 --repeats 1 --out $O/s-$1.json > $O/san-$1.log 2>&1; echo $? > $O/san-$1.rc) & }
s race X=0 racecheck; s mem X=0 memcheck; s race-w8 DMABENCH_NSA_PAIR_BWD_W8=1 racecheck
wait
for x in bf16 f16 w8 sub1 q37 union; do echo "verify $x rc=$(cat $O/v-$x.rc) $(grep '^verify:' $O/v-$x.log | tail -1)"; grep FAIL $O/v-$x.log | head -3; done
for x in race mem race-w8; do echo "$x rc=$(cat $O/san-$x.rc) $(grep 'SUMMARY' $O/san-$x.log) cells ok $(okc $O/s-$x.json)"; done
tar czf $OUT/o.tgz -C $OUT o
t kernels
K="kernels --backend cuda --dtype bf16 --warmup 2 --repeats 5 --check-n 0"
k() { env $3 timeout 100 $2 $K $4 --out $O/k-$1.json > $O/k-$1.log 2>&1; echo "$1 rc=$? $(grep -E '^\| (mha|dma|swa|nsa)' $O/k-$1.log | cut -d"|" -f2,4,6,9,11,12 | tr '\n' ' ')"; }
P="--b 1 --hq 32 --hkv 8 --d 128"
NS="--mode fwd,fwdbwd --variants nsa --n 8192 --w 512"
NT="$NS --b 2 --hq 6 --hkv 3 --d 128"
for r in 1 2; do
  k main-nt-$r $M X=0 "$NT"; k n43-nt-$r $B X=0 "$NT"; k n43w8-nt-$r $B DMABENCH_NSA_PAIR_BWD_W8=1 "$NT"
  k main-n-$r $M X=0 "$NS $P"; k n43-n-$r $B X=0 "$NS $P"
done
tar czf $OUT/o.tgz -C $OUT o
t train
export OMP_NUM_THREADS=8
trn() { RUNS="nsa:8192:2" DMABENCH=$2 OUT=$O/train-$1 sh scripts/gpu-train-bench.sh 2>&1 | grep -v '^{' | grep -v H200 | sed "s/^/$1 /"; rm -f $O/train-$1/bytes.txt; tar czf $OUT/o.tgz -C $OUT o; }
trn main $M; trn n43 $B; trn main2 $M; trn n43b $B
t done
rm -f $O/v-*.json; find $O -name '*.json' -size +300k -delete; find $O -name '*.jsonl' -delete
tar czf $OUT/o.tgz -C $OUT o
