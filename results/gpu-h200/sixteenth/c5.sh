#!/bin/sh
# call 5 (sixteenth set): b12 with the training test's chaotic-config rule for nsa with fixed gates: the GPU model's tests; where the training step's time goes (mha at 2048, nsa at 8192)
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=8
B12=./gpupack/b12/dmabench
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader > $O/gpu.txt
(DMABENCH_GPU=1 DMABENCH=$B12 DMABENCH_TESTS=./gpupack/b12/tests DMABENCH_GPU_PART=model DMABENCH_GPU_JOBS=6 DMABENCH_GPU_KEEP=$O/gpu-model timeout 330 sh tests/gpu.sh > $O/gpu-model.log 2>&1; echo $? > $O/gpu-model.rc) &
t profiles
DMABENCH=$B12 OUT=$O/prof timeout 200 sh scripts/gpu-train-profile.sh mha 2048 8 > $O/prof-mha.log 2>&1; echo "prof mha rc=$?"; head -24 $O/prof/profile-train-mha-2048.txt
DMABENCH=$B12 OUT=$O/prof timeout 200 sh scripts/gpu-train-profile.sh nsa 8192 2 > $O/prof-nsa.log 2>&1; echo "prof nsa rc=$?"; head -30 $O/prof/profile-train-nsa-8192.txt
wait
echo "gpu.sh model (b12) rc=$(cat $O/gpu-model.rc) ok=$(grep -c '^ok' $O/gpu-model.log) notok=$(grep -c '^not ok' $O/gpu-model.log)"; grep '^not ok' $O/gpu-model.log | head -5
grep "^# .*gpu vs cpu" $O/gpu-model/test_model_gpu_train.log
t done
rm -f $O/prof/bytes.txt; find $O -name '*.json' -size +300k -delete; find $O -name '*.safetensors' -delete; find $O -name '*.jsonl' -delete
tar czf $OUT/o.tgz -C $OUT o
