#!/bin/sh
# call 3 (2 GPUs): the recalibrated paper suite, seed 1, MQAR first; the GPU model tests on GPU 1 beside it
B=./gpubuild/dmabench; export O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
[ -d /usr/share/common-licenses ] || cp -r gpubuild/licenses /usr/share/common-licenses
export OMP_WAIT_POLICY=passive
nvidia-smi --query-gpu=index,name,clocks.sm,clocks.max.sm,driver_version --format=csv > $O/nvidia-smi.csv
mkdir -p gpupack/runs
( OMP_NUM_THREADS=16 DMABENCH=$B PARTS="mha:mqar dma:mqar swa:mqar nsa:mqar mha:niah dma:niah swa:niah nsa:niah" DEADLINE=$((S0 + ${BUDGET:-550})) sh scripts/run-gpus.sh gpupack/s/paper1.json gpupack/runs/paper 0 > $O/paper.log 2>&1 ) &
(
t model; CUDA_VISIBLE_DEVICES=0 DMABENCH_GPU=1 timeout 240 ./gpubuild/tests/test_model_gpu_train > $O/test_model_gpu_train.log 2>&1; echo "rc=$? ok $(grep -c '^ok' $O/test_model_gpu_train.log)"; grep '^not ok\|^# ' $O/test_model_gpu_train.log | cut -c1-300; t model-done
) > $O/gpu1.log 2>&1 &
wait
cat $O/gpu1.log; tail -20 $O/paper.log
tar czf $OUT/runs.tgz gpupack/runs; tar czf $OUT/o.tgz -C $O .
