#!/bin/sh
# call 2 (sixteenth set): b10 (b9 + ldmatrix addresses computed once, tile copies from one pointer, no divisions per step, the mask's branch outside the loop, predicated dQ reductions; DMABENCH_CUDA_BWD_KEYPAR=2)
# against b9 and main's default: fwd+bwd at the model's shape and 8192, swa 65536; Nsight Compute of b10; the training step with b10; b10's checks (verify, sanitizers, the GPU model's tests)
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=8
MAIN=./gpupack/main/dmabench B10=./gpupack/b10/dmabench
KP=DMABENCH_CUDA_BWD_KEYPAR=2
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader > $O/gpu.txt
okc() { grep -c '"status":[[:space:]]*"ok"' $1; }
env $KP timeout 60 $B10 kernels --backend cuda --variants mha,swa --n 300,2048 --w 256 --b 2 --hq 4 --hkv 2 --d 128,64 --dtype bf16 --mode fwdbwd --warmup 0 --repeats 1 --out $O/q-b10.json > $O/q-b10.log 2>&1; echo "quick b10 rc=$? ok=$(okc $O/q-b10.json) of 8"
K="kernels --backend cuda --dtype bf16 --warmup 2 --repeats 5 --check-n 0"
k() { env $3 timeout 100 $2 $K $4 --out $O/k-$1.json > $O/k-$1.log 2>&1; echo "$1 rc=$? $(grep -E '^\| (mha|dma|swa)' $O/k-$1.log | cut -d'|' -f2,4,6,9,11,12 | tr '\n' ' ')"; }
t kernels
for r in 1 2; do
  for x in main:$MAIN:X=0 b10:$B10:$KP; do n=${x%%:*}; y=${x#*:}; bin=${y%%:*}; e=${y#*:}
    k $n-model-$r $bin $e "--mode fwdbwd --variants mha --n 2048 --b 8 --hq 6 --hkv 3 --d 128"
    k $n-8192-$r $bin $e "--mode fwdbwd --variants mha --n 8192 --b 1 --hq 32 --hkv 8 --d 128"
  done
done
k b10-swa65k $B10 $KP "--mode fwdbwd --variants swa --n 65536 --w 1024 --b 1 --hq 32 --hkv 8 --d 128"
k b10-16k $B10 $KP "--mode fwdbwd --variants mha --n 16384 --b 1 --hq 32 --hkv 8 --d 128"
k main-16k $MAIN X=0 "--mode fwdbwd --variants mha --n 16384 --b 1 --hq 32 --hkv 8 --d 128"
t profile
PR="kernels --backend cuda --variants mha --n 2048 --b 8 --hq 6 --hkv 3 --d 128 --dtype bf16 --mode fwdbwd --warmup 1 --repeats 1 --check-n 0"
env $KP OUT=$O/prof timeout 150 sh scripts/gpu-kernel-profile.sh b10 bwd_kp_kernel 1 $B10 $PR 2>&1 | tail -8
t train
env $KP DMABENCH=$B10 OUT=$O/train sh scripts/gpu-train-bench.sh
t checks
for dt in bf16 f16; do (env $KP timeout 240 $B10 verify --backend cuda --dtype $dt --quiet --out $O/v-$dt.json > $O/v-$dt.log 2>&1; echo $? > $O/v-$dt.rc) & done
(env $KP timeout 240 compute-sanitizer --tool memcheck --error-exitcode 9 $B10 verify --backend cuda --variants mha,swa --quiet > $O/san-mem.log 2>&1; echo $? > $O/san-mem.rc) &
(env $KP timeout 240 compute-sanitizer --tool racecheck --error-exitcode 9 $B10 verify --backend cuda --variants mha --quiet > $O/san-race.log 2>&1; echo $? > $O/san-race.rc) &
(env $KP DMABENCH_GPU=1 DMABENCH=$B10 DMABENCH_TESTS=./gpupack/b10/tests DMABENCH_GPU_PART=model DMABENCH_GPU_JOBS=6 DMABENCH_GPU_KEEP=$O/gpu-model timeout 330 sh tests/gpu.sh > $O/gpu-model.log 2>&1; echo $? > $O/gpu-model.rc) &
wait
for dt in bf16 f16; do echo "verify b10 $dt rc=$(cat $O/v-$dt.rc) $(grep '^verify:' $O/v-$dt.log | tail -1)"; grep FAIL $O/v-$dt.log | head -3; done
echo "memcheck rc=$(cat $O/san-mem.rc) $(grep 'ERROR SUMMARY' $O/san-mem.log)"; echo "racecheck rc=$(cat $O/san-race.rc) $(grep 'RACECHECK SUMMARY' $O/san-race.log)"
echo "gpu.sh model (b10) rc=$(cat $O/gpu-model.rc) ok=$(grep -c '^ok' $O/gpu-model.log) notok=$(grep -c '^not ok' $O/gpu-model.log)"; grep '^not ok' $O/gpu-model.log | head -5
t done
rm -f $O/v-*.json $O/train/bytes.txt; find $O -name '*.json' -size +300k -delete; find $O -name '*.safetensors' -delete; find $O -name '*.jsonl' -delete
tar czf $OUT/o.tgz -C $OUT o
