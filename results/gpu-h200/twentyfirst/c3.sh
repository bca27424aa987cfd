#!/bin/sh
# call 3 (twenty-first set): n31 = n30 + the compression's tensor-core kernels 5 stages deep + the rows'
# backward split along t' + pair_runs (count/scatter) + slc_bwd_pds (next/tidy3).
# verify of nsa (default, union; bf16, f16) and sanitizers first; against n30 alternated twice;
# the training bench's nsa (n31, n30) and mha; a training profile of n31's nsa step
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=4
A=./gpupack/n30/dmabench B=./gpupack/n31/dmabench
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader > $O/gpu.txt; cat $O/gpu.txt
okc() { grep -c '"status":[[:space:]]*"ok"' $1; }
t checks
v() { (env $2 timeout 240 $B verify --backend cuda --variants $3 --dtype $4 --quiet --out $O/v-$1.json > $O/v-$1.log 2>&1; echo $? > $O/v-$1.rc) & }
v bf16 X=0 nsa bf16; v f16 X=0 nsa f16; v union DMABENCH_NSA_SLC=union nsa bf16; v unionh DMABENCH_NSA_SLC=union nsa f16
s() { (env $2 timeout 240 compute-sanitizer --tool $3 --error-exitcode 9 $B kernels --backend cuda --variants $4 --n 300,2048 --w 128 --b 1 --hq 8 --hkv 2 --d 128,64 --dtype $6 --mode $5 --warmup 0 --repeats 1 --out $O/s-$1.json > $O/san-$1.log 2>&1; echo $? > $O/san-$1.rc) & }
s race-d X=0 racecheck nsa fwdbwd bf16; s mem-d X=0 memcheck nsa fwdbwd bf16; s race-u DMABENCH_NSA_SLC=union racecheck nsa fwdbwd bf16
wait
for x in bf16 f16 union unionh; do echo "verify n31 $x rc=$(cat $O/v-$x.rc) $(grep '^verify:' $O/v-$x.log | tail -1)"; grep FAIL $O/v-$x.log | head -3; done
for x in race-d mem-d race-u; do echo "$x rc=$(cat $O/san-$x.rc) $(grep 'SUMMARY' $O/san-$x.log) cells ok $(okc $O/s-$x.json)"; done
tar czf $OUT/o.tgz -C $OUT o
t kernels
K="kernels --backend cuda --dtype bf16 --warmup 2 --repeats 5 --check-n 0"
k() { env $3 timeout 150 $2 $K $4 --out $O/k-$1.json > $O/k-$1.log 2>&1; echo "$1 rc=$? $(grep -E '^\| (mha|dma|swa|nsa)' $O/k-$1.log | cut -d"|" -f2,4,6,9,11,12 | tr '\n' ' ')"; }
NS="--mode fwd,fwdbwd --variants nsa --n 8192,65536 --w 512 --b 1 --hq 32 --hkv 8 --d 128"
for r in 1 2; do
  k n30-$r $A X=0 "$NS"; k n31-$r $B X=0 "$NS"
done
tar czf $OUT/o.tgz -C $OUT o
t train
export OMP_NUM_THREADS=8
tr() { env $4 RUNS="$2" DMABENCH=$3 OUT=$O/train-$1 sh scripts/gpu-train-bench.sh 2>&1 | grep -v '^{' | grep -v H200 | sed "s/^/$1 /"; rm -f $O/train-$1/bytes.txt; }
tr n31 "nsa:8192:2 mha:8192:2" $B X=0
tr n30 "nsa:8192:2" $A X=0
tar czf $OUT/o.tgz -C $OUT o
t profiles
OUT=$O/prof DMABENCH=$B timeout 150 sh scripts/gpu-train-profile.sh nsa 8192 2 > $O/prof.log 2>&1; echo "prof rc=$?"
head -45 $O/prof/profile-train-nsa-8192.txt
gzip $O/prof/ncu-*.csv 2>/dev/null
t done
rm -f $O/v-*.json; find $O -name '*.json' -size +300k -delete; find $O -name '*.jsonl' -size +300k -delete
tar czf $OUT/o.tgz -C $OUT o
