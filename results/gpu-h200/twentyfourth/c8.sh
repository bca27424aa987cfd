#!/bin/sh
# call 8 (twenty-fourth set): r2 (the pairs' backward kernels' shared pieces as helpers; no change to what they
# compute) against main (n46): verify of nsa in bf16 and f16, W8=1, the one-batch kernels, DSUM=0 with the one-batch
# backward, union, chunks of 37 queries; racecheck and memcheck of nsa's fwd+bwd cells (defaults and W8=1); nsa at
# the model's shape, main and r2 alternated twice
for p in n46 r2; do [ -d gpupack/$p ] || tar xJf gpupack/$p.tar.xz -C gpupack; done
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=2
M=./gpupack/n46/dmabench B=./gpupack/r2/dmabench
okc() { grep -c '"status":[[:space:]]*"ok"' $1; }
v() { (env $2 timeout 120 $B verify --backend cuda --variants nsa --dtype $3 --quiet --out $O/v-$1.json > $O/v-$1.log 2>&1; echo $? > $O/v-$1.rc) & }
v bf16 X=0 bf16; v f16 X=0 f16; v w8 DMABENCH_NSA_PAIR_BWD_W8=1 f16; v one "DMABENCH_NSA_PAIR_FWD_SUB=1 DMABENCH_NSA_PAIR_BWD_SUB=1" bf16
v one0 "DMABENCH_NSA_PAIR_BWD_SUB=1 DMABENCH_NSA_PAIR_DSUM=0" f16; v union DMABENCH_NSA_SLC=union bf16; v q37 DMABENCH_NSA_PAIR_QUERIES=37 f16
s() { (env $2 timeout 120 compute-sanitizer --tool $3 --error-exitcode 9 $B kernels --backend cuda --variants nsa --n 300,2048 --w 128 --b 1 --hq 8 --hkv 2 --d 128,64 --dtype bf16 --mode fwdbwd --warmup 0 --repeats 1 --out $O/s-$1.json > $O/san-$1.log 2>&1; echo $? > $O/san-$1.rc) & }
s race X=0 racecheck; s mem X=0 memcheck; s race-w8 DMABENCH_NSA_PAIR_BWD_W8=1 racecheck; s race-one DMABENCH_NSA_PAIR_BWD_SUB=1 racecheck
wait
for x in bf16 f16 w8 one one0 union q37; do echo "verify $x rc=$(cat $O/v-$x.rc) $(grep '^verify:' $O/v-$x.log | tail -1)"; grep FAIL $O/v-$x.log | head -3; done
for x in race mem race-w8 race-one; do echo "$x rc=$(cat $O/san-$x.rc) $(grep 'SUMMARY' $O/san-$x.log) cells ok $(okc $O/s-$x.json)"; done
tar czf $OUT/o.tgz -C $OUT o
K="kernels --backend cuda --dtype bf16 --warmup 2 --repeats 5 --check-n 0"
k() { env $3 timeout 40 $2 $K $4 --out $O/k-$1.json > $O/k-$1.log 2>&1; echo "$1 rc=$? $(grep -E '^\| (mha|dma|swa|nsa)' $O/k-$1.log | cut -d"|" -f2,4,6,9,11,12 | tr '\n' ' ')"; }
NT="--mode fwd,fwdbwd --variants nsa --n 8192 --w 512 --b 2 --hq 6 --hkv 3 --d 128"
for r in 1 2; do k main-nt-$r $M X=0 "$NT"; k r2-nt-$r $B X=0 "$NT"; done
t done
rm -f $O/v-*.json; find $O -name '*.json' -size +300k -delete
tar czf $OUT/o.tgz -C $OUT o
