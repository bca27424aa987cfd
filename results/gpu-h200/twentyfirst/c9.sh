#!/bin/sh
# call 9 (twenty-first set): n33 = n32 + the compression's forward in up to 4 k parts where the tiles leave the
# SMs short (sm_90a builds of both). verify of nsa (bf16, f16), memcheck and racecheck at small sizes (the split
# taken); against n32 at 8192 (paper shape, and the 131M model's attention shape); nsa's training at 8192
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=4
A=./gpupack/n32/dmabench B=./gpupack/n33/dmabench
okc() { grep -c '"status":[[:space:]]*"ok"' $1; }
v() { (env $2 timeout 100 $B verify --backend cuda --variants $3 --dtype $4 --quiet --out $O/v-$1.json > $O/v-$1.log 2>&1; echo $? > $O/v-$1.rc) & }
v bf16 X=0 nsa bf16; v f16 X=0 nsa f16
s() { (env $2 timeout 100 compute-sanitizer --tool $3 --error-exitcode 9 $B kernels --backend cuda --variants $4 --n 300,2048 --w 128 --b 1 --hq 8 --hkv 2 --d 128,64 --dtype $6 --mode $5 --warmup 0 --repeats 1 --out $O/s-$1.json > $O/san-$1.log 2>&1; echo $? > $O/san-$1.rc) & }
s race-d X=0 racecheck nsa fwdbwd bf16; s mem-d X=0 memcheck nsa fwdbwd bf16
wait
for x in bf16 f16; do echo "verify n33 $x rc=$(cat $O/v-$x.rc) $(grep '^verify:' $O/v-$x.log | tail -1)"; grep FAIL $O/v-$x.log | head -3; done
for x in race-d mem-d; do echo "$x rc=$(cat $O/san-$x.rc) $(grep 'SUMMARY' $O/san-$x.log) cells ok $(okc $O/s-$x.json)"; done
tar czf $OUT/o.tgz -C $OUT o
t kernels
K="kernels --backend cuda --dtype bf16 --warmup 2 --repeats 5 --check-n 0"
k() { env $3 timeout 60 $2 $K $4 --out $O/k-$1.json > $O/k-$1.log 2>&1; echo "$1 rc=$? $(grep -E '^\| (mha|dma|swa|nsa)' $O/k-$1.log | cut -d"|" -f2,4,6,9,11,12 | tr '\n' ' ')"; }
NS="--mode fwd,fwdbwd --variants nsa --n 8192 --w 512 --b 1 --hq 32 --hkv 8 --d 128"
NT="--mode fwd,fwdbwd --variants nsa --n 8192 --w 512 --b 2 --hq 6 --hkv 3 --d 128"
k n32 $A X=0 "$NS"; k n33 $B X=0 "$NS"; k n32t $A X=0 "$NT"; k n33t $B X=0 "$NT"
tar czf $OUT/o.tgz -C $OUT o
t train
export OMP_NUM_THREADS=8
tr() { env $4 RUNS="$2" DMABENCH=$3 OUT=$O/train-$1 sh scripts/gpu-train-bench.sh 2>&1 | grep -v '^{' | grep -v H200 | sed "s/^/$1 /"; rm -f $O/train-$1/bytes.txt; }
tr n33 "nsa:8192:2" $B X=0
tr n32 "nsa:8192:2" $A X=0
t done
rm -f $O/v-*.json; find $O -name '*.json' -size +300k -delete; find $O -name '*.jsonl' -size +300k -delete
tar czf $OUT/o.tgz -C $OUT o
