#!/bin/sh
# call 5: b7 (the key-parallel backward with 8 warps and 128 keys per CTA; DMABENCH_CUDA_BWD_KEYPAR=2) against the default (128-row query tiles) and b4 (=1); kernels, the training step, then b7's checks
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=8
NEW=./gpupack/new/dmabench
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader > $O/gpu.txt
DMABENCH_CUDA_BWD_KEYPAR=2 timeout 60 $NEW kernels --backend cuda --variants mha,swa --n 300,2048 --w 256 --b 2 --hq 4 --hkv 2 --d 128,64 --dtype bf16 --mode fwdbwd --warmup 0 --repeats 1 --out $O/q.json > $O/q.log 2>&1; echo "quick b7 rc=$? ok=$(grep -c '"status":[[:space:]]*"ok"' $O/q.json) of 8"
K="kernels --backend cuda --dtype bf16 --mode fwdbwd --warmup 2 --repeats 5 --check-n 0"
k() { env $2 timeout 100 $NEW $K $3 --out $O/k-$1.json > $O/k-$1.log 2>&1; echo "$1 rc=$? $(grep -E '^\| (mha|dma|swa)' $O/k-$1.log | cut -d'|' -f2,4,6,9,11,12 | tr '\n' ' ')"; }
for r in 1 2; do for m in def:X=0 b4:DMABENCH_CUDA_BWD_KEYPAR=1 b7:DMABENCH_CUDA_BWD_KEYPAR=2; do
  k ${m%%:*}-8192-$r ${m#*:} "--variants mha --n 8192 --b 1 --hq 32 --hkv 8 --d 128"
  k ${m%%:*}-model-$r ${m#*:} "--variants mha --n 2048 --b 8 --hq 6 --hkv 3 --d 128"
done; done
for m in def:X=0 b7:DMABENCH_CUDA_BWD_KEYPAR=2; do k ${m%%:*}-swa65k ${m#*:} "--variants swa --n 65536 --w 1024 --b 1 --hq 32 --hkv 8 --d 128"; done
t train
DMABENCH_CUDA_BWD_KEYPAR=2 DMABENCH=$NEW OUT=$O/train sh scripts/gpu-train-bench.sh
t checks
for dt in bf16 f16; do (env DMABENCH_CUDA_BWD_KEYPAR=2 timeout 240 $NEW verify --backend cuda --dtype $dt --quiet --out $O/v-$dt.json > $O/v-$dt.log 2>&1; echo $? > $O/v-$dt.rc) & done
(DMABENCH_CUDA_BWD_KEYPAR=2 timeout 240 compute-sanitizer --tool memcheck --error-exitcode 9 $NEW verify --backend cuda --variants mha,swa --quiet > $O/san-mem.log 2>&1; echo $? > $O/san-mem.rc) &
(DMABENCH_CUDA_BWD_KEYPAR=2 timeout 240 compute-sanitizer --tool racecheck --error-exitcode 9 $NEW verify --backend cuda --variants mha --quiet > $O/san-race.log 2>&1; echo $? > $O/san-race.rc) &
(DMABENCH_CUDA_BWD_KEYPAR=2 DMABENCH_GPU=1 DMABENCH=$NEW DMABENCH_TESTS=./gpupack/new/tests DMABENCH_GPU_PART=model DMABENCH_GPU_JOBS=6 DMABENCH_GPU_KEEP=$O/gpu-model timeout 330 sh tests/gpu.sh > $O/gpu-model.log 2>&1; echo $? > $O/gpu-model.rc) &
wait
for dt in bf16 f16; do echo "verify b7 $dt rc=$(cat $O/v-$dt.rc) $(grep '^verify:' $O/v-$dt.log | tail -1)"; grep FAIL $O/v-$dt.log | head -3; done
echo "memcheck rc=$(cat $O/san-mem.rc) $(grep 'ERROR SUMMARY' $O/san-mem.log)"; echo "racecheck rc=$(cat $O/san-race.rc) $(grep 'RACECHECK SUMMARY' $O/san-race.log)"
echo "gpu.sh model (b7) rc=$(cat $O/gpu-model.rc) ok=$(grep -c '^ok' $O/gpu-model.log) notok=$(grep -c '^not ok' $O/gpu-model.log)"; grep '^not ok' $O/gpu-model.log | head -5
t done
rm -f $O/v-*.json $O/train/bytes.txt; find $O -name '*.json' -size +300k -delete; find $O -name '*.safetensors' -delete
tar czf $OUT/o.tgz -C $OUT o
