#!/bin/sh
# call 6 (twentieth set): n29 = n28 with the dW GEMM's k -> (batch, block) by steps, not a 64-bit division per
# element; verify of nsa (bf16, f16) and memcheck first; against n28 alternated twice, nsa fwd+bwd at 65536
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=4
A=./gpupack/n28/dmabench B=./gpupack/n29/dmabench
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader > $O/gpu.txt; cat $O/gpu.txt
okc() { grep -c '"status":[[:space:]]*"ok"' $1; }
t checks
v() { (env $2 timeout 100 $B verify --backend cuda --variants $3 --dtype $4 --quiet --out $O/v-$1.json > $O/v-$1.log 2>&1; echo $? > $O/v-$1.rc) & }
v bf16 X=0 nsa bf16; v f16 X=0 nsa f16
(timeout 100 compute-sanitizer --tool memcheck --error-exitcode 9 $B kernels --backend cuda --variants nsa --n 300,2048 --w 128 --b 1 --hq 8 --hkv 2 --d 128,64 --dtype bf16 --mode fwdbwd --warmup 0 --repeats 1 --out $O/s-mem.json > $O/san-mem.log 2>&1; echo $? > $O/san-mem.rc) &
wait
for x in bf16 f16; do echo "verify n29 $x rc=$(cat $O/v-$x.rc) $(grep '^verify:' $O/v-$x.log | tail -1)"; grep FAIL $O/v-$x.log | head -3; done
echo "mem rc=$(cat $O/san-mem.rc) $(grep 'SUMMARY' $O/san-mem.log) cells ok $(okc $O/s-mem.json)"
t kernels
K="kernels --backend cuda --dtype bf16 --warmup 1 --repeats 5 --check-n 0"
k() { env $3 timeout 60 $2 $K $4 --out $O/k-$1.json > $O/k-$1.log 2>&1; echo "$1 rc=$? $(grep -E '^\| (mha|dma|swa|nsa)' $O/k-$1.log | cut -d"|" -f2,4,6,9,11,12 | tr '\n' ' ')"; }
NS="--mode fwdbwd --variants nsa --n 65536 --w 512 --b 1 --hq 32 --hkv 8 --d 128"
for r in 1 2; do k n28-$r $A X=0 "$NS"; k n29-$r $B X=0 "$NS"; done
t done
rm -f $O/v-*.json; find $O -name '*.json' -size +300k -delete; find $O -name '*.jsonl' -delete
tar czf $OUT/o.tgz -C $OUT o
