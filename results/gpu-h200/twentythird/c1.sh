#!/bin/sh
# call 1 (twenty-third set): n35 (the key-parallel backward split over CTAs on short grids: nsa's compressed
# branch), n36 (+ the query-tile backward's dz exchanges and full blocks' sums without the zero test), n37 (+ the
# selected branch's chunk mask by one 32-bit compare), n38 (+ the compression's forward in stages of 32 k with
# ldmatrix), n39 (+ the compression's backward into the rows likewise), n40 (+ the pairs' row and key loads with
# fixed chunks), sm_90a builds, against main (n34). verify of n40 (which holds all six: every variant bf16, f16;
# KPSPLIT=0 and KEYPAR=1 on mha,swa,nsa; nsa by union) and sanitizers on fwd+bwd cells first; then each build against
# its base, twice (call 2: the training)
[ -d gpupack/main ] || tar xJf gpupack/packs.tar.xz -C gpupack
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=4
M=./gpupack/main/dmabench A=./gpupack/n35/dmabench C=./gpupack/n36/dmabench E=./gpupack/n37/dmabench F=./gpupack/n38/dmabench G9=./gpupack/n39/dmabench B=./gpupack/n40/dmabench
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader > $O/gpu.txt; cat $O/gpu.txt
okc() { grep -c '"status":[[:space:]]*"ok"' $1; }
t checks
v() { (env $2 timeout 250 $B verify --backend cuda --variants $3 --dtype $4 --quiet --out $O/v-$1.json > $O/v-$1.log 2>&1; echo $? > $O/v-$1.rc) & }
v bf16 X=0 mha,swa,dma,nsa bf16; v f16 X=0 mha,swa,dma,nsa f16; v ks0 DMABENCH_CUDA_BWD_KPSPLIT=0 mha,swa,nsa bf16; v kp1 DMABENCH_CUDA_BWD_KEYPAR=1 mha,swa,nsa bf16; v un DMABENCH_NSA_SLC=union nsa bf16
s() { (env $2 timeout 250 compute-sanitizer --tool $3 --error-exitcode 9 $B kernels --backend cuda --variants $4 --n 300,2048 --w 128 --b 1 --hq 8 --hkv 2 --d 128,64 --dtype bf16 --mode fwdbwd --warmup 0 --repeats 1 --out $O/s-$1.json > $O/san-$1.log 2>&1; echo $? > $O/san-$1.rc) & }
s race-d X=0 racecheck dma,mha; s race-n X=0 racecheck nsa,swa; s mem X=0 memcheck mha,swa,dma,nsa
wait
for x in bf16 f16 ks0 kp1 un; do echo "verify n40 $x rc=$(cat $O/v-$x.rc) $(grep '^verify:' $O/v-$x.log | tail -1)"; grep FAIL $O/v-$x.log | head -3; done
for x in race-d race-n mem; do echo "$x rc=$(cat $O/san-$x.rc) $(grep 'SUMMARY' $O/san-$x.log) cells ok $(okc $O/s-$x.json)"; done
tar czf $OUT/o.tgz -C $OUT o
t kernels
K="kernels --backend cuda --dtype bf16 --warmup 2 --repeats 5 --check-n 0"
k() { env $3 timeout 100 $2 $K $4 --out $O/k-$1.json > $O/k-$1.log 2>&1; echo "$1 rc=$? $(grep -E '^\| (mha|dma|swa|nsa)' $O/k-$1.log | cut -d"|" -f2,4,6,9,11,12 | tr '\n' ' ')"; }
P="--b 1 --hq 32 --hkv 8 --d 128"
NS="--mode fwd,fwdbwd --variants nsa --n 8192 --w 512"
DS="--mode fwd,fwdbwd --variants dma --n 8192,65536 --w 1024"
for r in 1 2; do
  k main-n-$r $M X=0 "$NS $P"; k n35-n-$r $A X=0 "$NS $P"; k n37-n-$r $E X=0 "$NS $P"; k n40-n-$r $B X=0 "$NS $P"
  for x in main:$M n35:$A n37:$E n38:$F n39:$G9 n40:$B; do k ${x%%:*}-nt-$r ${x#*:} X=0 "$NS --b 2 --hq 6 --hkv 3 --d 128"; done
  k main-d-$r $M X=0 "$DS $P"; k n36-d-$r $C X=0 "$DS $P"
done
tar czf $OUT/o.tgz -C $OUT o
t done
rm -f $O/v-*.json; find $O -name '*.json' -size +300k -delete; find $O -name '*.jsonl' -delete
tar czf $OUT/o.tgz -C $OUT o
