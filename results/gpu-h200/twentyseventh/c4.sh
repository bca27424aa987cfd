#!/bin/sh
# issue 8's targets on main (p29a): tests/gpu.sh's model part (per-op checks, the 200-step CPU/GPU agreement,
# KV cache, checkpoint interchange), then the 131M model's training throughput: mha 2048 batch 8 (MFU), and
# mha, dma, nsa at 8192 batch 2, twice, alternated
[ -d gpupack/p29a ] || tar xJf gpupack/p29a.tar.xz -C gpupack
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
B=./gpupack/p29a/dmabench
nvidia-smi --query-gpu=index,name,clocks.sm,clocks.max.sm,driver_version --format=csv > $O/nvidia-smi.csv 2>&1
t model part
OMP_NUM_THREADS=4 DMABENCH_GPU=1 DMABENCH_GPU_PART=model DMABENCH=$B DMABENCH_TESTS=./gpupack/p29a/tests DMABENCH_GPU_KEEP=$O/model-keep timeout 200 sh tests/gpu.sh > $O/gpu-model.log 2>&1; echo "rc=$?"
t "model part done: $(grep -c '^ok' $O/gpu-model.log) ok, $(grep -c '^not ok' $O/gpu-model.log) not ok"
grep '^not ok' $O/gpu-model.log; grep -h "^# .*gpu vs cpu" $O/model-keep/test_model_gpu_train.log
grep -h "200 steps\|checkpoint\|KV-cache\|does not fit\|memory" $O/gpu-model.log | head -20
tar czf $OUT/o.tgz -C $OUT o
t train
export OMP_NUM_THREADS=8
trn() { RUNS="$2" DMABENCH=$B OUT=$O/train-$1 sh scripts/gpu-train-bench.sh 2>&1 | grep -v '^{' | grep -v H200 | sed "s/^/$1 /"; rm -f $O/train-$1/bytes.txt; tar czf $OUT/o.tgz -C $OUT o; }
trn a "mha:2048:8 mha:8192:2 dma:8192:2 nsa:8192:2"
trn b "nsa:8192:2 dma:8192:2 mha:8192:2"
t done
find $O -name '*.jsonl' -size +300k -delete
tar czf $OUT/o.tgz -C $OUT o
