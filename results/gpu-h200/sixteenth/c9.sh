#!/bin/sh
# call 9 (sixteenth set): main with b8 and the GEMMs tuned by default: the GPU model's tests; the training throughput (scripts/gpu-train-bench.sh)
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=8
NEW=./gpupack/fin/dmabench
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader > $O/gpu.txt
t train
DMABENCH=$NEW OUT=$O/train sh scripts/gpu-train-bench.sh 2>&1 | grep -v '^{'
for f in $O/train/train-*.jsonl; do printf "%s " ${f##*/}; grep -v event $f | grep -o '"tokens_per_s":[0-9.]*' | cut -d: -f2 | sort -n | awk '{a[NR]=$1} END{printf "median of %d intervals %.0f\n", NR, (NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2}'; done
t model
DMABENCH_GPU=1 DMABENCH=$NEW DMABENCH_TESTS=./gpupack/fin/tests DMABENCH_GPU_PART=model DMABENCH_GPU_JOBS=6 DMABENCH_GPU_KEEP=$O/gpu-model timeout 330 sh tests/gpu.sh > $O/gpu-model.log 2>&1; echo "gpu.sh model rc=$? ok=$(grep -c '^ok' $O/gpu-model.log) notok=$(grep -c '^not ok' $O/gpu-model.log)"; grep '^not ok' $O/gpu-model.log | head -5
grep "^# .*gpu vs cpu" $O/gpu-model/test_model_gpu_train.log
t done
rm -f $O/train/bytes.txt; find $O -name '*.json' -size +300k -delete; find $O -name '*.safetensors' -delete; find $O -name '*.jsonl' ! -path '*/train/*' -delete
tar czf $OUT/o.tgz -C $OUT o
