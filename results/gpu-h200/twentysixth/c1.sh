#!/bin/sh
# call 1 (twenty-sixth set): w1 (the compression's forward and its backward into the rows in wide tiles) against
# DMABENCH_NSA_CMP_WIDE=0 in the same binary. Checks: verify of nsa bf16/f16 (f16 takes the lo products), racecheck
# and memcheck of nsa's fwd+bwd cells, tests/gpu.sh's model part. Then nsa at the model's and paper shapes, alternated;
# the training bench alternated twice, then mha
for p in w1; do [ -d gpupack/$p ] || tar xJf gpupack/$p.tar.xz -C gpupack; done
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=2
B=./gpupack/w1/dmabench
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader > $O/gpu.txt; cat $O/gpu.txt
okc() { grep -c '"status":[[:space:]]*"ok"' $1; }
(OMP_NUM_THREADS=6 DMABENCH_GPU=1 DMABENCH_GPU_PART=model DMABENCH=$B DMABENCH_TESTS=./gpupack/w1/tests DMABENCH_GPU_KEEP=$O/model-keep timeout 300 sh tests/gpu.sh > $O/gpu-model.log 2>&1; echo $? > $O/gpu-model.rc; t "model part done: $(grep -c '^ok' $O/gpu-model.log) ok, $(grep -c '^not ok' $O/gpu-model.log) not ok") &
v() { (env $2 timeout 200 $B verify --backend cuda --variants $3 --dtype $4 --quiet --out $O/v-$1.json > $O/v-$1.log 2>&1; echo $? > $O/v-$1.rc) & }
v bf16 X=0 nsa bf16; v f16 X=0 nsa f16; v old DMABENCH_NSA_CMP_WIDE=0 nsa bf16
s() { (env $2 timeout 200 compute-sanitizer --tool $3 --error-exitcode 9 $B kernels --backend cuda --variants $4 --n 300,2048 --w 128 --b 1 --hq 8 --hkv 2 --d 128,64 --dtype $5 --mode fwdbwd --warmup 0 --repeats 1 --out $O/s-$1.json > $O/san-$1.log 2>&1; echo $? > $O/san-$1.rc) & }
s race X=0 racecheck nsa bf16; s mem X=0 memcheck nsa bf16; s memf16 X=0 memcheck nsa f16
wait
for x in bf16 f16 old; do echo "verify $x rc=$(cat $O/v-$x.rc) $(grep '^verify:' $O/v-$x.log | tail -1)"; grep FAIL $O/v-$x.log | head -3; done
for x in race mem memf16; do echo "$x rc=$(cat $O/san-$x.rc) $(grep 'SUMMARY' $O/san-$x.log) cells ok $(okc $O/s-$x.json)"; done
grep '^not ok' $O/gpu-model.log; grep -h "^# .*gpu vs cpu" $O/model-keep/test_model_gpu_train.log
tar czf $OUT/o.tgz -C $OUT o
t kernels
K="kernels --backend cuda --dtype bf16 --warmup 2 --repeats 5 --check-n 0"
k() { env $2 timeout 100 $B $K $3 --out $O/k-$1.json > $O/k-$1.log 2>&1; echo "$1 rc=$? $(grep -E '^\| (mha|dma|swa|nsa)' $O/k-$1.log | cut -d"|" -f2,4,6,9,11,12 | tr '\n' ' ')"; }
P="--b 1 --hq 32 --hkv 8 --d 128"
NS="--mode fwd,fwdbwd --variants nsa --n 8192 --w 512"
NT="$NS --b 2 --hq 6 --hkv 3 --d 128"
for r in 1 2; do
  k old-nt-$r DMABENCH_NSA_CMP_WIDE=0 "$NT"; k w1-nt-$r X=0 "$NT"
done
k old-n DMABENCH_NSA_CMP_WIDE=0 "$NS $P"; k w1-n X=0 "$NS $P"
k old-65 DMABENCH_NSA_CMP_WIDE=0 "--mode fwd,fwdbwd --variants nsa --n 65536 --w 512 $P"; k w1-65 X=0 "--mode fwd,fwdbwd --variants nsa --n 65536 --w 512 $P"
tar czf $OUT/o.tgz -C $OUT o
t train
export OMP_NUM_THREADS=8
trn() { env $4 RUNS="$2" DMABENCH=$3 OUT=$O/train-$1 sh scripts/gpu-train-bench.sh 2>&1 | grep -v '^{' | grep -v H200 | sed "s/^/$1 /"; rm -f $O/train-$1/bytes.txt; tar czf $OUT/o.tgz -C $OUT o; }
trn old "nsa:8192:2" $B DMABENCH_NSA_CMP_WIDE=0; trn w1 "nsa:8192:2" $B X=0; trn old-2 "nsa:8192:2" $B DMABENCH_NSA_CMP_WIDE=0; trn w1-2 "nsa:8192:2" $B X=0; trn mha "mha:8192:2" $B X=0
t done
rm -f $O/v-*.json; find $O -name '*.json' -size +300k -delete; find $O -name '*.jsonl' -delete; find $O -name '*.bin' -delete; find $O -name '*.safetensors' -delete
tar czf $OUT/o.tgz -C $OUT o
