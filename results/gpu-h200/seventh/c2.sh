#!/bin/sh
# call 2: GPU 3: the GPU model tests alone; then the needle probes on GPUs 2-3; MQAR calibration 2 on GPUs 0-1
B=./gpubuild/dmabench; export O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
[ -d /usr/share/common-licenses ] || cp -r gpubuild/licenses /usr/share/common-licenses
export OMP_WAIT_POLICY=passive
( OMP_NUM_THREADS=16 DMABENCH=$B SHARDS=2 DEADLINE=$((S0 + 555)) sh scripts/run-gpus.sh gpupack/s/mqar2.json $O/mqar2 0,1 > $O/mqar2.log 2>&1 ) &
(
t model; CUDA_VISIBLE_DEVICES=1 DMABENCH_GPU=1 timeout 240 ./gpubuild/tests/test_model_gpu_train > $O/test_model_gpu_train.log 2>&1; echo "rc=$? ok $(grep -c '^ok' $O/test_model_gpu_train.log)"; grep '^not ok' $O/test_model_gpu_train.log | cut -c1-300; t model-done
) > $O/gpu3.log 2>&1 &
(
for f in gpupack/s/niah-*.json; do n=$(basename $f .json); t $n; CUDA_VISIBLE_DEVICES=1 OMP_NUM_THREADS=16 timeout $((S0 + 555 - $(date +%s))) $B run $f --out $O/$n --quiet > $O/$n.log 2>&1; tail -1 $O/$n.log; done
) > $O/gpu2.log 2>&1
wait
cat $O/gpu3.log $O/gpu2.log; tail -12 $O/mqar2.log
tar czf $OUT/o.tgz -C $O .
