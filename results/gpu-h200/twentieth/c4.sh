#!/bin/sh
# call 4 (twentieth set): n27 = n25 + the combine's slots four at a time with a running max (n26) + the engine's
# backward adding dQ into the caller's fp32 buffer (cuda_attn_spec.dq_add; nsa's window and compressed branches);
# against n25 alternated twice; verify of every variant (bf16, f16) and of nsa with the key-parallel backward off and
# forced; sanitizers; kernel sums at 65536
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=4
A=./gpupack/n25/dmabench B=./gpupack/n27/dmabench
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader > $O/gpu.txt; cat $O/gpu.txt
okc() { grep -c '"status":[[:space:]]*"ok"' $1; }
t verify
v() { (env $2 timeout 230 $B verify --backend cuda --variants $3 --dtype $4 --quiet --out $O/v-$1.json > $O/v-$1.log 2>&1; echo $? > $O/v-$1.rc) & }
v bf16 X=0 mha,swa,dma,nsa bf16; v f16 X=0 mha,swa,dma,nsa f16
v kp0 DMABENCH_CUDA_BWD_KEYPAR=0 nsa bf16; v kp1 DMABENCH_CUDA_BWD_KEYPAR=1 nsa bf16; v p DMABENCH_NSA_SLC=pairs nsa bf16
wait
for x in bf16 f16 kp0 kp1 p; do echo "verify n27 $x rc=$(cat $O/v-$x.rc) $(grep '^verify:' $O/v-$x.log | tail -1)"; grep FAIL $O/v-$x.log | head -3; done
t kernels
K="kernels --backend cuda --dtype bf16 --warmup 2 --repeats 5 --check-n 0"
k() { env $3 timeout 150 $2 $K $4 --out $O/k-$1.json > $O/k-$1.log 2>&1; echo "$1 rc=$? $(grep -E '^\| (mha|dma|swa|nsa)' $O/k-$1.log | cut -d"|" -f2,4,6,9,11,12 | tr '\n' ' ')"; }
NS="--mode fwd,fwdbwd --variants nsa --n 8192,65536 --w 512 --b 1 --hq 32 --hkv 8 --d 128"
for r in 1 2; do
  k n25-$r $A X=0 "$NS"; k n27-$r $B X=0 "$NS"
done
k n25-s $A X=0 "--mode fwdbwd --variants mha,swa --n 8192 --w 1024 --b 1 --hq 32 --hkv 8 --d 128"
k n27-s $B X=0 "--mode fwdbwd --variants mha,swa --n 8192 --w 1024 --b 1 --hq 32 --hkv 8 --d 128"
t sanitize
s() { (env $2 timeout 200 compute-sanitizer --tool $3 --error-exitcode 9 $B kernels --backend cuda --variants $4 --n 300,2048 --w 128 --b 1 --hq 8 --hkv 2 --d 128,64 --dtype bf16 --mode $5 --warmup 0 --repeats 1 --out $O/s-$1.json > $O/san-$1.log 2>&1; echo $? > $O/san-$1.rc) & }
s race-d X=0 racecheck nsa fwdbwd; s mem-d X=0 memcheck nsa fwdbwd; s mem-p DMABENCH_NSA_SLC=pairs memcheck nsa fwdbwd
s mem-kp0 DMABENCH_CUDA_BWD_KEYPAR=0 memcheck nsa,swa fwdbwd
wait
for x in race-d mem-d mem-p mem-kp0; do echo "$x rc=$(cat $O/san-$x.rc) $(grep 'SUMMARY' $O/san-$x.log) cells ok $(okc $O/s-$x.json)"; done
tar czf $OUT/o.tgz -C $OUT o
t profiles
PR="kernels --backend cuda --b 1 --hq 32 --hkv 8 --d 128 --dtype bf16 --mode fwdbwd --warmup 1 --repeats 1 --check-n 0"
OUT=$O PER=2 timeout 100 sh scripts/gpu-profile.sh nsa-65536 $B $PR --variants nsa --n 65536 --w 512 > /dev/null 2>&1; head -20 $O/profile-nsa-65536.txt
gzip $O/ncu-*.csv
t done
rm -f $O/v-*.json; find $O -name '*.json' -size +300k -delete; find $O -name '*.jsonl' -delete
tar czf $OUT/o.tgz -C $OUT o
