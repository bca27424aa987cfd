#!/bin/sh
# call 3 (sixteenth set): b11 (the key-parallel backward by default where it applies and its grid has a CTA per SM; per-thread copy pointers, one swizzle per thread for s dS^T, dQ reductions without a branch)
# against main; the small grids (both orders forced); Nsight Compute of b11; the training step; nsa/swa/dma with the new default; b11's checks
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=8
MAIN=./gpupack/main/dmabench B11=./gpupack/b11/dmabench
KP=DMABENCH_CUDA_BWD_KEYPAR=2
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader > $O/gpu.txt
okc() { grep -c '"status":[[:space:]]*"ok"' $1; }
env $KP timeout 60 $B11 kernels --backend cuda --variants mha,swa --n 300,2048 --w 256 --b 2 --hq 4 --hkv 2 --d 128,64 --dtype bf16 --mode fwdbwd --warmup 0 --repeats 1 --out $O/q-b11.json > $O/q-b11.log 2>&1; echo "quick b11 forced rc=$? ok=$(okc $O/q-b11.json) of 8"
K="kernels --backend cuda --dtype bf16 --warmup 2 --repeats 5 --check-n 0"
k() { env $3 timeout 120 $2 $K $4 --out $O/k-$1.json > $O/k-$1.log 2>&1; echo "$1 rc=$? $(grep -E '^\| (mha|dma|swa|nsa)' $O/k-$1.log | cut -d'|' -f2,4,6,9,11,12 | tr '\n' ' ')"; }
t kernels
for r in 1 2; do
  for x in main:$MAIN:X=0 b11:$B11:X=0; do n=${x%%:*}; y=${x#*:}; bin=${y%%:*}; e=${y#*:}
    k $n-model-$r $bin $e "--mode fwdbwd --variants mha --n 2048 --b 8 --hq 6 --hkv 3 --d 128"
    k $n-8192-$r $bin $e "--mode fwdbwd --variants mha --n 8192 --b 1 --hq 32 --hkv 8 --d 128"
  done
done
for m in 0 2; do k b11-small-kp$m $B11 DMABENCH_CUDA_BWD_KEYPAR=$m "--mode fwdbwd --variants mha --n 1024,2048,4096 --b 1 --hq 32 --hkv 8 --d 128"; done
k b11-small-auto $B11 X=0 "--mode fwdbwd --variants mha --n 1024,2048,4096 --b 1 --hq 32 --hkv 8 --d 128"
k b11-d64-kp0 $B11 DMABENCH_CUDA_BWD_KEYPAR=0 "--mode fwdbwd --variants mha --n 2048 --b 8 --hq 8 --hkv 8 --d 64"
k b11-d64-auto $B11 X=0 "--mode fwdbwd --variants mha --n 2048 --b 8 --hq 8 --hkv 8 --d 64"
k b11-65k $B11 X=0 "--mode fwdbwd --variants swa,dma --n 65536 --w 1024 --b 1 --hq 32 --hkv 8 --d 128"
k b11-dma8k $B11 X=0 "--mode fwdbwd --variants dma --n 8192 --w 1024 --b 1 --hq 32 --hkv 8 --d 128"
k b11-nsa65k $B11 X=0 "--mode fwdbwd --variants nsa --n 65536 --w 512 --b 1 --hq 32 --hkv 8 --d 128 --repeats 3"
t profile
PR="kernels --backend cuda --variants mha --n 2048 --b 8 --hq 6 --hkv 3 --d 128 --dtype bf16 --mode fwdbwd --warmup 1 --repeats 1 --check-n 0"
OUT=$O/prof timeout 150 sh scripts/gpu-kernel-profile.sh b11 bwd_kp_kernel 1 $B11 $PR 2>&1 | tail -8
t train
DMABENCH=$B11 OUT=$O/train sh scripts/gpu-train-bench.sh
t checks
for dt in bf16 f16; do (timeout 240 $B11 verify --backend cuda --dtype $dt --quiet --out $O/v-$dt.json > $O/v-$dt.log 2>&1; echo $? > $O/v-$dt.rc) & done
(env $KP timeout 240 $B11 verify --backend cuda --dtype bf16 --variants mha,swa,nsa --quiet --out $O/v-kp.json > $O/v-kp.log 2>&1; echo $? > $O/v-kp.rc) &
(env $KP timeout 240 compute-sanitizer --tool memcheck --error-exitcode 9 $B11 verify --backend cuda --variants mha,swa --quiet > $O/san-mem.log 2>&1; echo $? > $O/san-mem.rc) &
(env $KP timeout 240 compute-sanitizer --tool racecheck --error-exitcode 9 $B11 verify --backend cuda --variants mha --quiet > $O/san-race.log 2>&1; echo $? > $O/san-race.rc) &
(DMABENCH_GPU=1 DMABENCH=$B11 DMABENCH_TESTS=./gpupack/b11/tests DMABENCH_GPU_PART=model DMABENCH_GPU_JOBS=6 DMABENCH_GPU_KEEP=$O/gpu-model timeout 330 sh tests/gpu.sh > $O/gpu-model.log 2>&1; echo $? > $O/gpu-model.rc) &
wait
for v in bf16 f16 kp; do echo "verify b11 $v rc=$(cat $O/v-$v.rc) $(grep '^verify:' $O/v-$v.log | tail -1)"; grep FAIL $O/v-$v.log | head -3; done
echo "memcheck rc=$(cat $O/san-mem.rc) $(grep 'ERROR SUMMARY' $O/san-mem.log)"; echo "racecheck rc=$(cat $O/san-race.rc) $(grep 'RACECHECK SUMMARY' $O/san-race.log)"
echo "gpu.sh model (b11) rc=$(cat $O/gpu-model.rc) ok=$(grep -c '^ok' $O/gpu-model.log) notok=$(grep -c '^not ok' $O/gpu-model.log)"; grep '^not ok' $O/gpu-model.log | head -5
t done
rm -f $O/v-*.json $O/train/bytes.txt; find $O -name '*.json' -size +300k -delete; find $O -name '*.safetensors' -delete; find $O -name '*.jsonl' -delete
tar czf $OUT/o.tgz -C $OUT o
