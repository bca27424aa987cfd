#!/bin/sh
# call 1 (twenty-fourth set): one build of next/d16 (n41: the pairs' sub-batch backward on 8 warps; n42: the pairs'
# forward in sub batches; d16: the query-tile backward on 16 warps, opt-in), sm_90a. Checks first (verify of every
# variant bf16/f16 with the defaults; W16=1 on dma,nsa bf16/f16 and mha,swa with KEYPAR=0; nsa with the old kernels,
# FWD_SUB=16 in chunks of 37 queries, DSUM=0; dma W16=1 without the residual; racecheck/memcheck of fwd+bwd cells),
# then timings: the old paths and the new by environment in the same binary, alternated twice.
[ -d gpupack/n25 ] || tar xJf gpupack/n25.tar.xz -C gpupack
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=2
B=./gpupack/n25/dmabench
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader > $O/gpu.txt; cat $O/gpu.txt
okc() { grep -c '"status":[[:space:]]*"ok"' $1; }
t checks
v() { (env $2 timeout 280 $B verify --backend cuda --variants $3 --dtype $4 --quiet --out $O/v-$1.json > $O/v-$1.log 2>&1; echo $? > $O/v-$1.rc) & }
v bf16 X=0 mha,swa,dma,nsa bf16; v f16 X=0 mha,swa,dma,nsa f16
v w16b DMABENCH_CUDA_BWD_W16=1 dma,nsa bf16; v w16f DMABENCH_CUDA_BWD_W16=1 dma,nsa f16
v w16ms "DMABENCH_CUDA_BWD_W16=1 DMABENCH_CUDA_BWD_KEYPAR=0" mha,swa bf16
v old "DMABENCH_NSA_PAIR_BWD_W8=0 DMABENCH_NSA_PAIR_FWD_SUB=1" nsa bf16
v q37 "DMABENCH_NSA_PAIR_FWD_SUB=16 DMABENCH_NSA_PAIR_QUERIES=37" nsa bf16
v ds0 DMABENCH_NSA_PAIR_DSUM=0 nsa f16
v w16r "DMABENCH_CUDA_BWD_W16=1 DMABENCH_DMA_RESIDUAL=0" dma bf16
s() { (env $2 timeout 280 compute-sanitizer --tool $3 --error-exitcode 9 $B kernels --backend cuda --variants $4 --n 300,2048 --w 128 --b 1 --hq 8 --hkv 2 --d 128,64 --dtype bf16 --mode fwdbwd --warmup 0 --repeats 1 --out $O/s-$1.json > $O/san-$1.log 2>&1; echo $? > $O/san-$1.rc) & }
s race-n X=0 racecheck nsa; s race-d DMABENCH_CUDA_BWD_W16=1 racecheck dma; s mem-n X=0 memcheck nsa; s mem-d DMABENCH_CUDA_BWD_W16=1 memcheck dma
wait
for x in bf16 f16 w16b w16f w16ms old q37 ds0 w16r; do echo "verify $x rc=$(cat $O/v-$x.rc) $(grep '^verify:' $O/v-$x.log | tail -1)"; grep FAIL $O/v-$x.log | head -3; done
for x in race-n race-d mem-n mem-d; do echo "$x rc=$(cat $O/san-$x.rc) $(grep 'SUMMARY' $O/san-$x.log) cells ok $(okc $O/s-$x.json)"; done
tar czf $OUT/o.tgz -C $OUT o
t kernels
K="kernels --backend cuda --dtype bf16 --warmup 2 --repeats 5 --check-n 0"
k() { env $2 timeout 100 $B $K $3 --out $O/k-$1.json > $O/k-$1.log 2>&1; echo "$1 rc=$? $(grep -E '^\| (mha|dma|swa|nsa)' $O/k-$1.log | cut -d"|" -f2,4,6,9,11,12 | tr '\n' ' ')"; }
P="--b 1 --hq 32 --hkv 8 --d 128"
NS="--mode fwd,fwdbwd --variants nsa --n 8192 --w 512"
NT="$NS --b 2 --hq 6 --hkv 3 --d 128"
DS="--mode fwd,fwdbwd --variants dma --n 8192,65536 --w 1024"
OLD="DMABENCH_NSA_PAIR_BWD_W8=0 DMABENCH_NSA_PAIR_FWD_SUB=1"
for r in 1 2; do
  k base-nt-$r "$OLD" "$NT"; k w8-nt-$r DMABENCH_NSA_PAIR_FWD_SUB=1 "$NT"; k new-nt-$r X=0 "$NT"
  k base-n-$r "$OLD" "$NS $P"; k new-n-$r X=0 "$NS $P"
  k w16off-d-$r X=0 "$DS $P"; k w16on-d-$r DMABENCH_CUDA_BWD_W16=1 "$DS $P"
done
tar czf $OUT/o.tgz -C $OUT o
t done
rm -f $O/v-*.json; find $O -name '*.json' -size +300k -delete; find $O -name '*.jsonl' -delete
tar czf $OUT/o.tgz -C $OUT o
