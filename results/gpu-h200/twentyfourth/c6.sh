#!/bin/sh
# call 6 (twenty-fourth set): n45 (on main with the review items: one pair-list layout, the split backward's tile
# steps counted once, the W products' ldmatrix lanes and the column sums' total in one helper each; then the pairs'
# backward reading each batch's lse and Dsum a batch ahead) against main (n44). Checks on n45: tests/gpu.sh's model
# part; verify of every variant in bf16 and f16, nsa with DSUM=0, W8=1, FWD_SUB=1 (so BWD_SUB=1 too: the one-batch
# kernels), union, mha/swa/nsa with KPSPLIT=0 and KEYPAR=1; racecheck and memcheck of nsa's fwd+bwd cells. Then nsa
# at both shapes, main and n45 alternated twice, and the training bench for nsa, main and n45 alternated twice
for p in n44 n45; do [ -d gpupack/$p ] || tar xJf gpupack/$p.tar.xz -C gpupack; done
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=2
M=./gpupack/n44/dmabench B=./gpupack/n45/dmabench
okc() { grep -c '"status":[[:space:]]*"ok"' $1; }
(OMP_NUM_THREADS=6 DMABENCH_GPU=1 DMABENCH_GPU_PART=model DMABENCH=$B DMABENCH_TESTS=./gpupack/n45/tests DMABENCH_GPU_KEEP=$O/model-keep timeout 400 sh tests/gpu.sh > $O/gpu-model.log 2>&1; echo $? > $O/gpu-model.rc; t "model part done: $(grep -c '^ok' $O/gpu-model.log) ok, $(grep -c '^not ok' $O/gpu-model.log) not ok") &
v() { (env $2 timeout 250 $B verify --backend cuda --variants $3 --dtype $4 --quiet --out $O/v-$1.json > $O/v-$1.log 2>&1; echo $? > $O/v-$1.rc) & }
v bf16 X=0 mha,swa,dma,nsa bf16; v f16 X=0 mha,swa,dma,nsa f16
v ds0 DMABENCH_NSA_PAIR_DSUM=0 nsa bf16; v w8 DMABENCH_NSA_PAIR_BWD_W8=1 nsa f16
v one "DMABENCH_NSA_PAIR_FWD_SUB=1 DMABENCH_NSA_PAIR_BWD_SUB=1" nsa bf16; v one0 "DMABENCH_NSA_PAIR_BWD_SUB=1 DMABENCH_NSA_PAIR_DSUM=0" nsa f16
v union DMABENCH_NSA_SLC=union nsa bf16
v ks0 DMABENCH_CUDA_BWD_KPSPLIT=0 mha,swa,nsa bf16; v kp1 DMABENCH_CUDA_BWD_KEYPAR=1 mha,swa,nsa bf16
s() { (env $2 timeout 250 compute-sanitizer --tool $3 --error-exitcode 9 $B kernels --backend cuda --variants nsa --n 300,2048 --w 128 --b 1 --hq 8 --hkv 2 --d 128,64 --dtype bf16 --mode fwdbwd --warmup 0 --repeats 1 --out $O/s-$1.json > $O/san-$1.log 2>&1; echo $? > $O/san-$1.rc) & }
s race X=0 racecheck; s mem X=0 memcheck; s race-one DMABENCH_NSA_PAIR_BWD_SUB=1 racecheck
wait
for x in bf16 f16 ds0 w8 one one0 union ks0 kp1; do echo "verify $x rc=$(cat $O/v-$x.rc) $(grep '^verify:' $O/v-$x.log | tail -1)"; grep FAIL $O/v-$x.log | head -3; done
for x in race mem race-one; do echo "$x rc=$(cat $O/san-$x.rc) $(grep 'SUMMARY' $O/san-$x.log) cells ok $(okc $O/s-$x.json)"; done
grep '^not ok' $O/gpu-model.log; grep -h "^# .*gpu vs cpu" $O/model-keep/test_model_gpu_train.log
tar czf $OUT/o.tgz -C $OUT o
t kernels
K="kernels --backend cuda --dtype bf16 --warmup 2 --repeats 5 --check-n 0"
k() { env $3 timeout 100 $2 $K $4 --out $O/k-$1.json > $O/k-$1.log 2>&1; echo "$1 rc=$? $(grep -E '^\| (mha|dma|swa|nsa)' $O/k-$1.log | cut -d"|" -f2,4,6,9,11,12 | tr '\n' ' ')"; }
P="--b 1 --hq 32 --hkv 8 --d 128"
NS="--mode fwd,fwdbwd --variants nsa --n 8192 --w 512"
NT="$NS --b 2 --hq 6 --hkv 3 --d 128"
for r in 1 2; do
  k main-nt-$r $M X=0 "$NT"; k n45-nt-$r $B X=0 "$NT"
  k main-n-$r $M X=0 "$NS $P"; k n45-n-$r $B X=0 "$NS $P"
done
tar czf $OUT/o.tgz -C $OUT o
t train
export OMP_NUM_THREADS=8
trn() { RUNS="$2" DMABENCH=$3 OUT=$O/train-$1 sh scripts/gpu-train-bench.sh 2>&1 | grep -v '^{' | grep -v H200 | sed "s/^/$1 /"; rm -f $O/train-$1/bytes.txt; tar czf $OUT/o.tgz -C $OUT o; }
trn main "nsa:8192:2" $M; trn n45 "nsa:8192:2" $B; trn main-2 "nsa:8192:2" $M; trn n45-2 "nsa:8192:2" $B; trn mha "mha:8192:2" $B
t done
rm -f $O/v-*.json; find $O -name '*.json' -size +300k -delete; find $O -name '*.jsonl' -delete; find $O -name '*.bin' -delete; find $O -name '*.safetensors' -delete
tar czf $OUT/o.tgz -C $OUT o
