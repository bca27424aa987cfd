#!/bin/sh
# call 2 (twenty-second set): main at n34 (sm_90a build with the test programs): tests/gpu.sh's verify, model and
# sanitize parts at once (each its own run of gpu.sh, logs kept)
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=2
M=./gpupack/main
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader > $O/gpu.txt; cat $O/gpu.txt
g() { (DMABENCH_GPU=1 DMABENCH=$M/dmabench DMABENCH_TESTS=$M/tests DMABENCH_GPU_PART=$1 DMABENCH_GPU_JOBS=$2 DMABENCH_GPU_KEEP=$O/gpu-$1 timeout $3 sh tests/gpu.sh > $O/gpu-$1.log 2>&1; echo $? > $O/gpu-$1.rc; t "part $1 done") & }
g sanitize 6 560; g verify 8 500; g model 4 300
wait
for p in verify model sanitize; do echo "part $p rc=$(cat $O/gpu-$p.rc): $(tail -1 $O/gpu-$p.log)"; grep '^not ok' $O/gpu-$p.log | head -5; done
find $O -name '*.json' -size +300k -delete; find $O -name '*.jsonl' -delete; find $O -name '*.safetensors' -delete; find $O -size +1M -delete
tar czf $OUT/o.tgz -C $OUT o
t done
