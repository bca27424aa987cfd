#!/bin/sh
# call 1 (twenty-fifth set): n47 (the backward batches the forward's pair lists from the saved area) and n48 (one
# pass over the rows for dg, the three gated dO and their Dsum), with the review items (ld_a, bwd_smem's KS, bwd_optin).
# Checks on n48: tests/gpu.sh's model part; verify of every variant in bf16 and f16; nsa with both switches off, in
# chunks of 37 queries, with DSUM=0, W8=1, union, SAVED=0; dma and nsa with W16=1; racecheck and memcheck of nsa's
# fwd+bwd cells, racecheck with W8=1 and memcheck of dma with W16=1. Then nsa at both shapes: main, n48, n47 alone
# (ROWS=0), n48's rows alone (KEEP_LISTS=0), alternated twice
for p in r2 n48; do [ -d gpupack/$p ] || tar xJf gpupack/$p.tar.xz -C gpupack; done
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=2
M=./gpupack/r2/dmabench B=./gpupack/n48/dmabench
okc() { grep -c '"status":[[:space:]]*"ok"' $1; }
(OMP_NUM_THREADS=6 DMABENCH_GPU=1 DMABENCH_GPU_PART=model DMABENCH=$B DMABENCH_TESTS=./gpupack/n48/tests DMABENCH_GPU_KEEP=$O/model-keep timeout 300 sh tests/gpu.sh > $O/gpu-model.log 2>&1; echo $? > $O/gpu-model.rc; t "model part done: $(grep -c '^ok' $O/gpu-model.log) ok, $(grep -c '^not ok' $O/gpu-model.log) not ok") &
v() { (env $2 timeout 250 $B verify --backend cuda --variants $3 --dtype $4 --quiet --out $O/v-$1.json > $O/v-$1.log 2>&1; echo $? > $O/v-$1.rc) & }
v bf16 X=0 mha,swa,dma,nsa bf16; v f16 X=0 mha,swa,dma,nsa f16
v off "DMABENCH_NSA_KEEP_LISTS=0 DMABENCH_NSA_BWD_ROWS=0" nsa f16; v q37 DMABENCH_NSA_PAIR_QUERIES=37 nsa bf16
v ds0 DMABENCH_NSA_PAIR_DSUM=0 nsa f16; v w8 DMABENCH_NSA_PAIR_BWD_W8=1 nsa bf16; v union DMABENCH_NSA_SLC=union nsa f16
v sv0 DMABENCH_NSA_SAVED=0 nsa bf16; v w16 DMABENCH_CUDA_BWD_W16=1 dma,nsa bf16
s() { (env $2 timeout 250 compute-sanitizer --tool $3 --error-exitcode 9 $B kernels --backend cuda --variants $4 --n 300,2048 --w 128 --b 1 --hq 8 --hkv 2 --d 128,64 --dtype bf16 --mode fwdbwd --warmup 0 --repeats 1 --out $O/s-$1.json > $O/san-$1.log 2>&1; echo $? > $O/san-$1.rc) & }
s race X=0 racecheck nsa; s mem X=0 memcheck nsa; s race-w8 DMABENCH_NSA_PAIR_BWD_W8=1 racecheck nsa; s mem-w16 DMABENCH_CUDA_BWD_W16=1 memcheck dma
wait
for x in bf16 f16 off q37 ds0 w8 union sv0 w16; do echo "verify $x rc=$(cat $O/v-$x.rc) $(grep '^verify:' $O/v-$x.log | tail -1)"; grep FAIL $O/v-$x.log | head -3; done
for x in race mem race-w8 mem-w16; do echo "$x rc=$(cat $O/san-$x.rc) $(grep 'SUMMARY' $O/san-$x.log) cells ok $(okc $O/s-$x.json)"; done
grep '^not ok' $O/gpu-model.log; grep -h "^# .*gpu vs cpu" $O/model-keep/test_model_gpu_train.log
tar czf $OUT/o.tgz -C $OUT o
t kernels
K="kernels --backend cuda --dtype bf16 --warmup 2 --repeats 5 --check-n 0"
k() { env $3 timeout 100 $2 $K $4 --out $O/k-$1.json > $O/k-$1.log 2>&1; echo "$1 rc=$? $(grep -E '^\| (mha|dma|swa|nsa)' $O/k-$1.log | cut -d"|" -f2,4,6,9,11,12 | tr '\n' ' ')"; }
P="--b 1 --hq 32 --hkv 8 --d 128"
NS="--mode fwd,fwdbwd --variants nsa --n 8192 --w 512"
NT="$NS --b 2 --hq 6 --hkv 3 --d 128"
for r in 1 2; do
  k main-nt-$r $M X=0 "$NT"; k n48-nt-$r $B X=0 "$NT"; k n47-nt-$r $B DMABENCH_NSA_BWD_ROWS=0 "$NT"; k rows-nt-$r $B DMABENCH_NSA_KEEP_LISTS=0 "$NT"
done
for r in 1 2; do
  k main-n-$r $M X=0 "$NS $P"; k n48-n-$r $B X=0 "$NS $P"
done
t done
rm -f $O/v-*.json; find $O -name '*.json' -size +300k -delete; find $O -name '*.jsonl' -delete; find $O -name '*.bin' -delete; find $O -name '*.safetensors' -delete
tar czf $OUT/o.tgz -C $OUT o
