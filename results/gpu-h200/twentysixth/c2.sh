#!/bin/sh
# call 2 (twenty-sixth set): w2 (dK, dV written by the compression's rows; one row pass; review items) against w1.
# Checks on w2: verify of every variant in bf16 and f16; nsa with the argmax pick, DMABENCH_NSA_BWD_ROWS=scalar with
# KEEP_LISTS=0, PAIR_BWD_W8=1, CMP_WIDE=0; racecheck and memcheck of nsa's fwd+bwd cells (and with W8=1, rows scalar);
# tests/gpu.sh's model part. Then nsa at the model's shape w1/w2 alternated; training nsa w1/w2 alternated twice, mha,
# dma; then nsa's training step under Nsight Compute
for p in w1 w2; do [ -d gpupack/$p ] || tar xJf gpupack/$p.tar.xz -C gpupack; done
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=2
A=./gpupack/w1/dmabench B=./gpupack/w2/dmabench
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader > $O/gpu.txt; cat $O/gpu.txt
okc() { grep -c '"status":[[:space:]]*"ok"' $1; }
(OMP_NUM_THREADS=4 DMABENCH_GPU=1 DMABENCH_GPU_PART=model DMABENCH=$B DMABENCH_TESTS=./gpupack/w2/tests DMABENCH_GPU_KEEP=$O/model-keep timeout 300 sh tests/gpu.sh > $O/gpu-model.log 2>&1; echo $? > $O/gpu-model.rc; t "model part done: $(grep -c '^ok' $O/gpu-model.log) ok, $(grep -c '^not ok' $O/gpu-model.log) not ok") &
v() { (env $2 timeout 280 $B verify --backend cuda --variants $3 --dtype $4 --quiet --out $O/v-$1.json > $O/v-$1.log 2>&1; echo $? > $O/v-$1.rc) & }
v bf16 X=0 mha,swa,dma,nsa bf16; v f16 X=0 mha,swa,dma,nsa f16
v argmax DMABENCH_NSA_PICK=argmax nsa bf16; v rows "DMABENCH_NSA_BWD_ROWS=scalar DMABENCH_NSA_KEEP_LISTS=0" nsa f16
v w8 DMABENCH_NSA_PAIR_BWD_W8=1 nsa bf16; v wide0 DMABENCH_NSA_CMP_WIDE=0 nsa f16
s() { (env $2 timeout 250 compute-sanitizer --tool $3 --error-exitcode 9 $B kernels --backend cuda --variants $4 --n 300,2048 --w 128 --b 1 --hq 8 --hkv 2 --d 128,64 --dtype bf16 --mode fwdbwd --warmup 0 --repeats 1 --out $O/s-$1.json > $O/san-$1.log 2>&1; echo $? > $O/san-$1.rc) & }
s race X=0 racecheck nsa; s mem X=0 memcheck nsa; s racew8 DMABENCH_NSA_PAIR_BWD_W8=1 racecheck nsa; s memrows DMABENCH_NSA_BWD_ROWS=scalar memcheck nsa
wait
for x in bf16 f16 argmax rows w8 wide0; do echo "verify $x rc=$(cat $O/v-$x.rc) $(grep '^verify:' $O/v-$x.log | tail -1)"; grep FAIL $O/v-$x.log | head -3; done
for x in race mem racew8 memrows; do echo "$x rc=$(cat $O/san-$x.rc) $(grep 'SUMMARY' $O/san-$x.log) cells ok $(okc $O/s-$x.json)"; done
grep '^not ok' $O/gpu-model.log; grep -h "^# .*gpu vs cpu" $O/model-keep/test_model_gpu_train.log
tar czf $OUT/o.tgz -C $OUT o
t kernels
K="kernels --backend cuda --dtype bf16 --warmup 2 --repeats 5 --check-n 0"
k() { timeout 100 $2 $K $3 --out $O/k-$1.json > $O/k-$1.log 2>&1; echo "$1 rc=$? $(grep -E '^\| (mha|dma|swa|nsa)' $O/k-$1.log | cut -d"|" -f2,4,6,9,11,12 | tr '\n' ' ')"; }
NT="--mode fwd,fwdbwd --variants nsa --n 8192 --w 512 --b 2 --hq 6 --hkv 3 --d 128"
for r in 1 2; do k w1-nt-$r $A "$NT"; k w2-nt-$r $B "$NT"; done
tar czf $OUT/o.tgz -C $OUT o
t train
export OMP_NUM_THREADS=8
trn() { RUNS="$2" DMABENCH=$3 OUT=$O/train-$1 sh scripts/gpu-train-bench.sh 2>&1 | grep -v '^{' | grep -v H200 | sed "s/^/$1 /"; rm -f $O/train-$1/bytes.txt; tar czf $OUT/o.tgz -C $OUT o; }
trn w1 "nsa:8192:2" $A; trn w2 "nsa:8192:2" $B; trn w1-2 "nsa:8192:2" $A; trn w2-2 "nsa:8192:2" $B
trn mha "mha:8192:2" $B; trn dma "dma:8192:2" $B
t profile
DMABENCH=$B OUT=$O/prof timeout 150 sh scripts/gpu-train-profile.sh nsa 8192 2 > $O/prof.log 2>&1; echo "prof rc=$?"; head -45 $O/prof/profile-train-nsa-8192.txt 2>/dev/null | cut -c1-130
t done
rm -f $O/v-*.json; find $O -name '*.json' -size +300k -delete; find $O -name '*.jsonl' -delete; find $O -name '*.bin' -delete; find $O -name '*.safetensors' -delete; rm -f $O/prof/*.ncu-rep
tar czf $OUT/o.tgz -C $OUT o
