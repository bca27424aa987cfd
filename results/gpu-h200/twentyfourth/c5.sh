#!/bin/sh
# call 5 (twenty-fourth set): n44 (on n43b: the pairs' row copies from per-row offsets in the backward only, and the
# next batch's rows fetched during the current one) against main (n25) and n43b. Checks on n44: tests/gpu.sh's model
# part; verify of nsa (bf16, f16, W8=1, FWD_SUB=1, FWD_SUB=16 with QUERIES=37, union); racecheck and memcheck of
# nsa's fwd+bwd cells (defaults, W8=1). Then nsa at the model's and the paper shape (main, n43b, n44, alternated
# twice), dma at the model's shape with and without W16; then the training bench: nsa main/n44 and dma W16 0/1,
# alternated twice
for p in n25 n43b n44; do [ -d gpupack/$p ] || tar xJf gpupack/$p.tar.xz -C gpupack; done
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=2
M=./gpupack/n25/dmabench C=./gpupack/n43b/dmabench B=./gpupack/n44/dmabench
okc() { grep -c '"status":[[:space:]]*"ok"' $1; }
(OMP_NUM_THREADS=6 DMABENCH_GPU=1 DMABENCH_GPU_PART=model DMABENCH=$B DMABENCH_TESTS=./gpupack/n44/tests DMABENCH_GPU_KEEP=$O/model-keep timeout 400 sh tests/gpu.sh > $O/gpu-model.log 2>&1; echo $? > $O/gpu-model.rc; t "model part done: $(grep -c '^ok' $O/gpu-model.log) ok, $(grep -c '^not ok' $O/gpu-model.log) not ok") &
v() { (env $2 timeout 200 $B verify --backend cuda --variants nsa --dtype $3 --quiet --out $O/v-$1.json > $O/v-$1.log 2>&1; echo $? > $O/v-$1.rc) & }
v bf16 X=0 bf16; v f16 X=0 f16; v w8 DMABENCH_NSA_PAIR_BWD_W8=1 f16; v sub1 DMABENCH_NSA_PAIR_FWD_SUB=1 bf16
v q37 "DMABENCH_NSA_PAIR_FWD_SUB=16 DMABENCH_NSA_PAIR_QUERIES=37" bf16; v union DMABENCH_NSA_SLC=union bf16
s() { (env $2 timeout 200 compute-sanitizer --tool $3 --error-exitcode 9 $B kernels --backend cuda --variants nsa --n 300,2048 --w 128 --b 1 --hq 8 --hkv 2 --d 128,64 --dtype bf16 --mode fwdbwd --warmup 0 --repeats 1 --out $O/s-$1.json > $O/san-$1.log 2>&1; echo $? > $O/san-$1.rc) & }
s race X=0 racecheck; s mem X=0 memcheck; s race-w8 DMABENCH_NSA_PAIR_BWD_W8=1 racecheck
wait
for x in bf16 f16 w8 sub1 q37 union; do echo "verify $x rc=$(cat $O/v-$x.rc) $(grep '^verify:' $O/v-$x.log | tail -1)"; grep FAIL $O/v-$x.log | head -3; done
for x in race mem race-w8; do echo "$x rc=$(cat $O/san-$x.rc) $(grep 'SUMMARY' $O/san-$x.log) cells ok $(okc $O/s-$x.json)"; done
grep '^not ok' $O/gpu-model.log; grep -h "^# .*gpu vs cpu" $O/model-keep/test_model_gpu_train.log
tar czf $OUT/o.tgz -C $OUT o
t kernels
K="kernels --backend cuda --dtype bf16 --warmup 2 --repeats 5 --check-n 0"
k() { env $3 timeout 100 $2 $K $4 --out $O/k-$1.json > $O/k-$1.log 2>&1; echo "$1 rc=$? $(grep -E '^\| (mha|dma|swa|nsa)' $O/k-$1.log | cut -d"|" -f2,4,6,9,11,12 | tr '\n' ' ')"; }
P="--b 1 --hq 32 --hkv 8 --d 128"
NS="--mode fwd,fwdbwd --variants nsa --n 8192 --w 512"
NT="$NS --b 2 --hq 6 --hkv 3 --d 128"
DT="--mode fwdbwd --variants dma --n 8192 --w 1024 --b 2 --hq 6 --hkv 3 --d 128"
for r in 1 2; do
  k main-nt-$r $M X=0 "$NT"; k n43b-nt-$r $C X=0 "$NT"; k n44-nt-$r $B X=0 "$NT"
  k main-n-$r $M X=0 "$NS $P"; k n43b-n-$r $C X=0 "$NS $P"; k n44-n-$r $B X=0 "$NS $P"
  k w16off-dt-$r $B X=0 "$DT"; k w16on-dt-$r $B DMABENCH_CUDA_BWD_W16=1 "$DT"
done
tar czf $OUT/o.tgz -C $OUT o
t train
export OMP_NUM_THREADS=8
trn() { env $4 RUNS="$2" DMABENCH=$3 OUT=$O/train-$1 sh scripts/gpu-train-bench.sh 2>&1 | grep -v '^{' | grep -v H200 | sed "s/^/$1 /"; rm -f $O/train-$1/bytes.txt; tar czf $OUT/o.tgz -C $OUT o; }
trn main "nsa:8192:2" $M X=0; trn n44 "nsa:8192:2" $B X=0; trn dma "dma:8192:2" $B X=0; trn dmaw16 "dma:8192:2" $B DMABENCH_CUDA_BWD_W16=1
trn main2 "nsa:8192:2" $M X=0; trn n44b "nsa:8192:2" $B X=0; trn dma2 "dma:8192:2" $B X=0; trn dmaw16b "dma:8192:2" $B DMABENCH_CUDA_BWD_W16=1
t done
rm -f $O/v-*.json; find $O -name '*.json' -size +300k -delete; find $O -name '*.jsonl' -delete; find $O -name '*.bin' -delete; find $O -name '*.safetensors' -delete
tar czf $OUT/o.tgz -C $OUT o
