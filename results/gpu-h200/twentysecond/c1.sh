#!/bin/sh
# call 1 (twenty-second set): n34 = main (n33) + the pair lists' query and batch maps + the review's ctc_cols and
# column-sum guard. verify of nsa (bf16, f16, PAIR_QUERIES=37, CMP_BLK=0, CMP_TC=0) and sanitizers first; against
# n33 alternated twice at the paper shape (8192, 65536) and once at the model's shape; nsa's training at 8192
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=4
A=./gpupack/n33/dmabench B=./gpupack/n34/dmabench
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader > $O/gpu.txt; cat $O/gpu.txt
okc() { grep -c '"status":[[:space:]]*"ok"' $1; }
t checks
v() { (env $2 timeout 150 $B verify --backend cuda --variants $3 --dtype $4 --quiet --out $O/v-$1.json > $O/v-$1.log 2>&1; echo $? > $O/v-$1.rc) & }
v bf16 X=0 nsa bf16; v f16 X=0 nsa f16; v pq37 DMABENCH_NSA_PAIR_QUERIES=37 nsa bf16; v blk0 DMABENCH_NSA_CMP_BLK=0 nsa bf16; v tc0 DMABENCH_NSA_CMP_TC=0 nsa f16
s() { (env $2 timeout 150 compute-sanitizer --tool $3 --error-exitcode 9 $B kernels --backend cuda --variants $4 --n 300,2048 --w 128 --b 1 --hq 8 --hkv 2 --d 128,64 --dtype $6 --mode $5 --warmup 0 --repeats 1 --out $O/s-$1.json > $O/san-$1.log 2>&1; echo $? > $O/san-$1.rc) & }
s race-d X=0 racecheck nsa fwdbwd bf16; s mem-d X=0 memcheck nsa fwdbwd bf16; s mem-h X=0 memcheck nsa fwdbwd f16; s mem-blk0 DMABENCH_NSA_CMP_BLK=0 memcheck nsa fwdbwd bf16
wait
for x in bf16 f16 pq37 blk0 tc0; do echo "verify n34 $x rc=$(cat $O/v-$x.rc) $(grep '^verify:' $O/v-$x.log | tail -1)"; grep FAIL $O/v-$x.log | head -3; done
for x in race-d mem-d mem-h mem-blk0; do echo "$x rc=$(cat $O/san-$x.rc) $(grep 'SUMMARY' $O/san-$x.log) cells ok $(okc $O/s-$x.json)"; done
tar czf $OUT/o.tgz -C $OUT o
t kernels
K="kernels --backend cuda --dtype bf16 --warmup 2 --repeats 5 --check-n 0"
k() { env $3 timeout 100 $2 $K $4 --out $O/k-$1.json > $O/k-$1.log 2>&1; echo "$1 rc=$? $(grep -E '^\| (mha|dma|swa|nsa)' $O/k-$1.log | cut -d"|" -f2,4,6,9,11,12 | tr '\n' ' ')"; }
NS="--mode fwd,fwdbwd --variants nsa --n 8192,65536 --w 512 --b 1 --hq 32 --hkv 8 --d 128"
NT="--mode fwd,fwdbwd --variants nsa --n 8192 --w 512 --b 2 --hq 6 --hkv 3 --d 128"
for r in 1 2; do k n33-$r $A X=0 "$NS"; k n34-$r $B X=0 "$NS"; done
k n33t $A X=0 "$NT"; k n34t $B X=0 "$NT"
tar czf $OUT/o.tgz -C $OUT o
t train
export OMP_NUM_THREADS=8
tr() { env $4 RUNS="$2" DMABENCH=$3 OUT=$O/train-$1 sh scripts/gpu-train-bench.sh 2>&1 | grep -v '^{' | grep -v H200 | sed "s/^/$1 /"; rm -f $O/train-$1/bytes.txt; }
tr n34 "nsa:8192:2" $B X=0
tr n33 "nsa:8192:2" $A X=0
tr n34b "nsa:8192:2" $B X=0
t done
rm -f $O/v-*.json; find $O -name '*.json' -size +300k -delete; find $O -name '*.jsonl' -size +300k -delete
tar czf $OUT/o.tgz -C $OUT o
