#!/bin/sh
# call 2 (eighteenth set): main with d8: the training bench; tests/gpu.sh's model part (dma trains through the residual);
# decode at K 524288, nsa fwd+bwd at 65536, mha fwd+bwd at 8192 and 16384; Nsight Compute of nsa's selection at 65536
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=8
B=./gpupack/d8/dmabench
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader > $O/gpu.txt; cat $O/gpu.txt
K="kernels --backend cuda --dtype bf16 --warmup 2 --repeats 5 --check-n 0"
k() { env $2 timeout 150 $B $K $3 --out $O/k-$1.json > $O/k-$1.log 2>&1; echo "$1 rc=$? $(grep -E '^\| (mha|dma|swa|nsa)' $O/k-$1.log | cut -d'|' -f2,4,5,6,9,11,12 | tr '\n' ' ')"; }
t train
DMABENCH=$B OUT=$O/train sh scripts/gpu-train-bench.sh 2>&1 | grep -v '^{'
t kernels
k mha X=0 "--mode fwd,fwdbwd --variants mha --n 8192,16384 --b 1 --hq 32 --hkv 8 --d 128"
k nsa X=0 "--mode fwd,fwdbwd --variants nsa --n 65536 --w 512 --b 1 --hq 32 --hkv 8 --d 128"
env timeout 60 $B kernels --backend cuda --b 1 --hq 32 --hkv 8 --d 128 --dtype bf16 --mode decode --w 1024 --warmup 5 --repeats 40 --variants mha,dma --n 524288 --check-n 0 --out $O/k-dec.json > $O/k-dec.log 2>&1; echo "decode rc=$? $(grep -E '^\| (mha|dma)' $O/k-dec.log | cut -d'|' -f2,4,5,6,9,11,12 | tr '\n' ' ')"
t checks
(DMABENCH_GPU=1 DMABENCH=$B DMABENCH_TESTS=./gpupack/d8/tests DMABENCH_GPU_PART=model DMABENCH_GPU_JOBS=6 DMABENCH_GPU_KEEP=$O/gpu-model timeout 330 sh tests/gpu.sh > $O/gpu-model.log 2>&1; echo $? > $O/gpu-model.rc) &
PR="kernels --backend cuda --variants nsa --n 65536 --w 512 --b 1 --hq 32 --hkv 8 --d 128 --dtype bf16 --mode fwd --warmup 1 --repeats 1 --check-n 0"
OUT=$O/prof timeout 200 sh scripts/gpu-kernel-profile.sh nsasel nsa_select_tc 1 $B $PR 2>&1 | tail -24
wait
echo "gpu.sh model rc=$(cat $O/gpu-model.rc) ok=$(grep -c '^ok' $O/gpu-model.log) notok=$(grep -c '^not ok' $O/gpu-model.log)"; grep '^not ok' $O/gpu-model.log | head -5
grep "^# .*gpu vs cpu" $O/gpu-model/test_model_gpu_train.log
t done
rm -f $O/train/bytes.txt; find $O -name '*.json' -size +300k -delete; find $O -name '*.safetensors' -delete; find $O -name '*.jsonl' ! -path '*/train/*' -delete
tar czf $OUT/o.tgz -C $OUT o
