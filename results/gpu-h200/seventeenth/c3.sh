#!/bin/sh
# call 3 (seventeenth set): o3 (the forward: lazy rescale, folded scale, contiguous key blocks without metadata, one barrier per block):
# the training bench; dma/swa/nsa at N = 131072 and 262144; o3's racecheck; tests/gpu.sh's model part
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=8
NEW=./gpupack/o3/dmabench
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader > $O/gpu.txt; cat $O/gpu.txt
K="kernels --backend cuda --dtype bf16 --warmup 1 --repeats 3 --check-n 0"
k() { env $3 timeout 150 $2 $K $4 --out $O/k-$1.json > $O/k-$1.log 2>&1; echo "$1 rc=$? $(grep -E '^\| (mha|dma|swa|nsa)' $O/k-$1.log | cut -d'|' -f2,4,6,9,11,12 | tr '\n' ' ')"; }
t train
DMABENCH=$NEW OUT=$O/train sh scripts/gpu-train-bench.sh 2>&1 | grep -v '^{'
t long
k long-fwd $NEW X=0 "--mode fwd,fwdbwd --variants swa,dma,nsa --n 131072,262144 --w 1024 --b 1 --hq 32 --hkv 8 --d 128"
grep -E '^\| (mha|dma|swa|nsa)' $O/k-long-fwd.log | head -20
t checks
(timeout 330 compute-sanitizer --tool racecheck --error-exitcode 9 $NEW verify --backend cuda --variants mha --quiet > $O/san-race.log 2>&1; echo $? > $O/san-race.rc) &
(DMABENCH_GPU=1 DMABENCH=$NEW DMABENCH_TESTS=./gpupack/o3/tests DMABENCH_GPU_PART=model DMABENCH_GPU_JOBS=6 DMABENCH_GPU_KEEP=$O/gpu-model timeout 330 sh tests/gpu.sh > $O/gpu-model.log 2>&1; echo $? > $O/gpu-model.rc) &
wait
echo "racecheck rc=$(cat $O/san-race.rc) $(grep 'RACECHECK SUMMARY' $O/san-race.log)"
echo "gpu.sh model rc=$(cat $O/gpu-model.rc) ok=$(grep -c '^ok' $O/gpu-model.log) notok=$(grep -c '^not ok' $O/gpu-model.log)"; grep '^not ok' $O/gpu-model.log | head -5
grep "^# .*gpu vs cpu" $O/gpu-model/test_model_gpu_train.log
t done
rm -f $O/train/bytes.txt; find $O -name '*.json' -size +300k -delete; find $O -name '*.safetensors' -delete; find $O -name '*.jsonl' ! -path '*/train/*' -delete
tar czf $OUT/o.tgz -C $OUT o
