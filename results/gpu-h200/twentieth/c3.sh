#!/bin/sh
# call 3 (twentieth set): n25 = n24 (the pair lists' count and scatter by runs of 32 queries per slot, one atomic per
# run of equal blocks) + fp16 partial results with a power-of-two scale per row; against n23 (sub 16) alternated twice;
# verify (nsa, default and pairs forced, several chunks), sanitizers; kernel sums at 65536
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=4
A=./gpupack/n23/dmabench B=./gpupack/n25/dmabench
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader > $O/gpu.txt; cat $O/gpu.txt
okc() { grep -c '"status":[[:space:]]*"ok"' $1; }
t verify
v() { (env $2 timeout 200 $B verify --backend cuda --variants $3 --dtype $4 --quiet --out $O/v-$1.json > $O/v-$1.log 2>&1; echo $? > $O/v-$1.rc) & }
v d X=0 nsa bf16; v df16 X=0 nsa f16; v p DMABENCH_NSA_SLC=pairs nsa bf16; v pf16 DMABENCH_NSA_SLC=pairs nsa f16
v pq "DMABENCH_NSA_SLC=pairs DMABENCH_NSA_PAIR_QUERIES=7" nsa bf16
wait
for x in d df16 p pf16 pq; do echo "verify n25 $x rc=$(cat $O/v-$x.rc) $(grep '^verify:' $O/v-$x.log | tail -1)"; grep FAIL $O/v-$x.log | head -3; done
t kernels
K="kernels --backend cuda --dtype bf16 --warmup 2 --repeats 5 --check-n 0"
k() { env $3 timeout 150 $2 $K $4 --out $O/k-$1.json > $O/k-$1.log 2>&1; echo "$1 rc=$? $(grep -E '^\| (mha|dma|swa|nsa)' $O/k-$1.log | cut -d"|" -f2,4,6,9,11,12 | tr '\n' ' ')"; }
NS="--mode fwd,fwdbwd --variants nsa --n 8192,65536 --w 512 --b 1 --hq 32 --hkv 8 --d 128"
for r in 1 2; do
  k n23-$r $A DMABENCH_NSA_PAIR_BWD_SUB=16 "$NS"; k n25-$r $B X=0 "$NS"
done
t sanitize
s() { (env $2 timeout 200 compute-sanitizer --tool $3 --error-exitcode 9 $B kernels --backend cuda --variants $4 --n 300,2048 --w 128 --b 1 --hq 8 --hkv 2 --d 128,64 --dtype bf16 --mode $5 --warmup 0 --repeats 1 --out $O/s-$1.json > $O/san-$1.log 2>&1; echo $? > $O/san-$1.rc) & }
s race-p DMABENCH_NSA_SLC=pairs racecheck nsa fwdbwd; s mem-p DMABENCH_NSA_SLC=pairs memcheck nsa fwdbwd
s mem-pq "DMABENCH_NSA_SLC=pairs DMABENCH_NSA_PAIR_QUERIES=7" memcheck nsa fwdbwd; s mem-d X=0 memcheck nsa fwdbwd
wait
for x in race-p mem-p mem-pq mem-d; do echo "$x rc=$(cat $O/san-$x.rc) $(grep 'SUMMARY' $O/san-$x.log) cells ok $(okc $O/s-$x.json)"; done
tar czf $OUT/o.tgz -C $OUT o
t profiles
PR="kernels --backend cuda --b 1 --hq 32 --hkv 8 --d 128 --dtype bf16 --mode fwdbwd --warmup 1 --repeats 1 --check-n 0"
OUT=$O PER=2 timeout 100 sh scripts/gpu-profile.sh nsa-65536 $B $PR --variants nsa --n 65536 --w 512 > /dev/null 2>&1; head -16 $O/profile-nsa-65536.txt
gzip $O/ncu-*.csv
t done
rm -f $O/v-*.json; find $O -name '*.json' -size +300k -delete; find $O -name '*.jsonl' -delete
tar czf $OUT/o.tgz -C $OUT o
