#!/bin/sh
# call 1 (4 GPUs): GPU 0: the model tests on the labelled-rows head, MQAR tokens/s with
# and without it, the 131M training bench, nsa's training profile. GPUs 1-3: paper-calibrate.
B=./gpubuild/dmabench; export O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
nvidia-smi --query-gpu=index,name,clocks.sm,clocks.max.sm,driver_version --format=csv > $O/nvidia-smi.csv
( DMABENCH=$B SHARDS=4 DEADLINE=$((S0 + 560)) sh scripts/run-gpus.sh suites/paper-calibrate.json $O/calib 1,2,3 > $O/calib.log 2>&1 ) &
(
export CUDA_VISIBLE_DEVICES=0
t ops; DMABENCH_GPU=1 timeout 60 ./gpubuild/tests/test_model_gpu > $O/test_model_gpu.log 2>&1; echo "rc=$? ok $(grep -c '^ok' $O/test_model_gpu.log)"; grep '^not ok' $O/test_model_gpu.log | cut -c1-300
t model; DMABENCH_GPU=1 timeout 200 ./gpubuild/tests/test_model_gpu_train > $O/test_model_gpu_train.log 2>&1; echo "rc=$? ok $(grep -c '^ok' $O/test_model_gpu_train.log)"; grep '^not ok' $O/test_model_gpu_train.log | cut -c1-300
for h in 0 1; do t "mqar tps ALL_ROWS=$h"; DMABENCH_HEAD_ALL_ROWS=$h timeout 60 $B run gpupack/mqar-tps.json --out $O/mqar-tps-$h --quiet > $O/mqar-tps-$h.log 2>&1; grep -o '"seq_len":[0-9]*\|"final_loss":[0-9.]*\|"tokens_per_s":[0-9.]*' $O/mqar-tps-$h/records.jsonl | tr '\n' ' '; echo; done
t trainbench; DMABENCH=$B OUT=$O/train timeout 240 sh scripts/gpu-train-bench.sh
t nsaprof; DMABENCH=$B OUT=$O/prof timeout 90 sh scripts/gpu-train-profile.sh nsa 8192 2 > $O/prof.log 2>&1; head -40 $O/prof/profile-train-nsa-8192.txt
t done0
) > $O/gpu0.log 2>&1
wait
cat $O/gpu0.log; cat $O/calib.log | tail -30
tar czf $OUT/o.tgz -C $O .
