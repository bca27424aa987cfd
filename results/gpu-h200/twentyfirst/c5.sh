#!/bin/sh
# call 5 (twenty-first set): n32 (sm_90a build). Re-timings for the kernel targets: dma decode at K 524288
# (and mha's, dense), dma and swa fwd and fwd+bwd at 65536, nsa at 131072, dma fwd+bwd at 131072; then the
# model part of tests/gpu.sh (the GPU model's op tests, training against the CPU, the tiny suite on the GPU)
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=4
B=./gpupack/n32/dmabench
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader > $O/gpu.txt; cat $O/gpu.txt
t kernels
K="kernels --backend cuda --dtype bf16 --warmup 2 --repeats 5 --check-n 0"
k() { env $3 timeout 150 $2 $K $4 --out $O/k-$1.json > $O/k-$1.log 2>&1; echo "$1 rc=$? $(grep -E '^\| (mha|dma|swa|nsa)' $O/k-$1.log | cut -d"|" -f2,4,6,9,11,12 | tr '\n' ' ')"; }
k dec $B X=0 "--mode decode --variants dma,mha --n 524288 --w 1024 --b 1 --hq 32 --hkv 8 --d 128 --warmup 5 --repeats 50"
k fb65 $B X=0 "--mode fwd,fwdbwd --variants dma,swa --n 65536 --w 1024 --b 1 --hq 32 --hkv 8 --d 128"
k nsa131 $B X=0 "--mode fwd,fwdbwd --variants nsa --n 131072 --w 512 --b 1 --hq 32 --hkv 8 --d 128"
k dma131 $B X=0 "--mode fwdbwd --variants dma --n 131072 --w 1024 --b 1 --hq 32 --hkv 8 --d 128"
tar czf $OUT/o.tgz -C $OUT o
t model
DMABENCH_GPU=1 DMABENCH=$B DMABENCH_TESTS=./gpupack/n32/tests DMABENCH_GPU_PART=model DMABENCH_GPU_KEEP=$O/gpu-model \
  timeout 380 sh tests/gpu.sh > $O/gpu-model.log 2>&1
echo "gpu.sh model rc=$? ok $(grep -c '^ok' $O/gpu-model.log) not ok $(grep -c '^not ok' $O/gpu-model.log)"
grep '^not ok' $O/gpu-model.log | head -5; tail -3 $O/gpu-model.log
t done
find $O -name '*.json' -size +300k -delete; find $O -name '*.jsonl' -size +300k -delete
tar czf $OUT/o.tgz -C $OUT o
