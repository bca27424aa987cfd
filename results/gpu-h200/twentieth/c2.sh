#!/bin/sh
# call 2 (twentieth set): n23 with sub 8 the default: verify and racecheck at sub 16; sub 8 against 16 and 4,
# alternated twice; kernel sums of nsa fwd+bwd at 65536 and dma fwd+bwd at 8192; re-timings of dma decode at K 524288,
# dma and swa fwd+bwd at 65536, dma and swa at 131072 and 262144
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=4
B=./gpupack/n23/dmabench
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader > $O/gpu.txt; cat $O/gpu.txt
okc() { grep -c '"status":[[:space:]]*"ok"' $1; }
t verify
v() { (env $2 timeout 200 $B verify --backend cuda --variants $3 --dtype $4 --quiet --out $O/v-$1.json > $O/v-$1.log 2>&1; echo $? > $O/v-$1.rc) & }
v p16 "DMABENCH_NSA_SLC=pairs DMABENCH_NSA_PAIR_BWD_SUB=16" nsa bf16; v p8f16 "DMABENCH_NSA_SLC=pairs" nsa f16
wait
for x in p16 p8f16; do echo "verify n23 $x rc=$(cat $O/v-$x.rc) $(grep '^verify:' $O/v-$x.log | tail -1)"; grep FAIL $O/v-$x.log | head -3; done
t kernels
K="kernels --backend cuda --dtype bf16 --warmup 2 --repeats 5 --check-n 0"
k() { env $3 timeout 150 $2 $K $4 --out $O/k-$1.json > $O/k-$1.log 2>&1; echo "$1 rc=$? $(grep -E '^\| (mha|dma|swa|nsa)' $O/k-$1.log | cut -d"|" -f2,4,6,9,11,12 | tr '\n' ' ')"; }
NS="--mode fwdbwd --variants nsa --n 8192,65536 --w 512 --b 1 --hq 32 --hkv 8 --d 128"
for r in 1 2; do
  k s8-$r $B X=0 "$NS"; k s16-$r $B DMABENCH_NSA_PAIR_BWD_SUB=16 "$NS"; k s4-$r $B DMABENCH_NSA_PAIR_BWD_SUB=4 "$NS"
done
t racecheck16
s() { (env $2 timeout 200 compute-sanitizer --tool $3 --error-exitcode 9 $B kernels --backend cuda --variants $4 --n 300,2048 --w 128 --b 1 --hq 8 --hkv 2 --d 128,64 --dtype bf16 --mode $5 --warmup 0 --repeats 1 --out $O/s-$1.json > $O/san-$1.log 2>&1; echo $? > $O/san-$1.rc) & }
s race-p16 "DMABENCH_NSA_SLC=pairs DMABENCH_NSA_PAIR_BWD_SUB=16" racecheck nsa fwdbwd
t retime
k dec $B X=0 "--mode decode --variants dma,mha --n 524288 --w 1024 --b 1 --hq 32 --hkv 8 --d 128 --warmup 5 --repeats 50"
k fb65 $B X=0 "--mode fwdbwd --variants dma,swa --n 65536 --w 1024 --b 1 --hq 32 --hkv 8 --d 128"
wait
for x in race-p16; do echo "$x rc=$(cat $O/san-$x.rc) $(grep 'SUMMARY' $O/san-$x.log) cells ok $(okc $O/s-$x.json)"; done
tar czf $OUT/o.tgz -C $OUT o
t profiles
PR="kernels --backend cuda --b 1 --hq 32 --hkv 8 --d 128 --dtype bf16 --mode fwdbwd --warmup 1 --repeats 1 --check-n 0"
OUT=$O PER=2 timeout 100 sh scripts/gpu-profile.sh nsa-65536 $B $PR --variants nsa --n 65536 --w 512 > /dev/null 2>&1; head -24 $O/profile-nsa-65536.txt
OUT=$O PER=2 timeout 60 sh scripts/gpu-profile.sh dma-8192 $B $PR --variants dma --n 8192 --w 1024 > /dev/null 2>&1; head -14 $O/profile-dma-8192.txt
gzip $O/ncu-*.csv
tar czf $OUT/o.tgz -C $OUT o
t long
K="kernels --backend cuda --dtype bf16 --warmup 1 --repeats 3 --check-n 0"
k long $B X=0 "--mode fwd,fwdbwd --variants swa,dma --n 131072,262144 --w 1024 --b 1 --hq 32 --hkv 8 --d 128"
t done
rm -f $O/v-*.json; find $O -name '*.json' -size +300k -delete; find $O -name '*.jsonl' -delete
tar czf $OUT/o.tgz -C $OUT o
