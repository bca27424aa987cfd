#!/bin/sh
# p34c (the final kernels of this set): the targets re-timed at the paper shape (mha fwd 8192/16384, swa and
# dma fwd and fwd+bwd at 8192 and 65536, nsa at 65536, decode at K 524288), then tests/gpu.sh's model part and
# verify in f32 at once.
[ -d gpupack/p34c ] || tar xJf gpupack/p34c.tar.xz -C gpupack
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=4
B=./gpupack/p34c/dmabench
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader > $O/gpu.txt; cat $O/gpu.txt
K="kernels --backend cuda --dtype bf16 --warmup 2 --repeats 5 --check-n 0"
k() { timeout ${3:-100} $B $K $2 --out $O/k-$1.json > $O/k-$1.log 2>&1; echo "$1 rc=$? $(grep -E '^\| (mha|dma|swa|nsa)' $O/k-$1.log | cut -d"|" -f2,3,4,6,9,11,12 | tr '\n' ' ')"; }
P="--b 1 --hq 32 --hkv 8 --d 128"
k mha "--mode fwd --variants mha --n 8192,16384 $P"
k fb8k "--mode fwd,fwdbwd --variants swa,dma --n 8192 --w 1024 $P"
k fb65 "--mode fwd,fwdbwd --variants swa,dma --n 65536 --w 1024 $P --repeats 3"
k dec "--mode decode --variants mha,dma --n 524288 --w 1024 --warmup 5 --repeats 50 $P"
k nsa65 "--mode fwd,fwdbwd --variants nsa --n 65536 --w 512 $P --repeats 3" 150
t timed
tar czf $OUT/o.tgz -C $OUT o
timeout 300 $B verify --backend cuda --quiet --dtype f32 --out $O/v-def-f32.json > $O/v-def-f32.log 2>&1 &
env DMABENCH_GPU=1 DMABENCH=$B DMABENCH_TESTS=./gpupack/p34c/tests DMABENCH_GPU_PART=model DMABENCH_GPU_JOBS=2 DMABENCH_GPU_KEEP=$O/keep-model timeout 380 sh tests/gpu.sh > $O/gpu-model.log 2>&1
echo "gpu-model rc=$?: $(grep -c '^ok' $O/gpu-model.log) ok, $(grep -c '^not ok' $O/gpu-model.log) not ok"; grep -m6 '^not ok' $O/gpu-model.log; tail -1 $O/gpu-model.log
wait; echo "v-def-f32: $(grep passed $O/v-def-f32.log | tail -1)"
t done
find $O -name '*.json' -size +100k -delete; find $O -name '*.jsonl' -delete
tar czf $OUT/o.tgz -C $OUT o
