#!/bin/sh
# call 1 (sixteenth set): w2 with its in-flight registers pinned (VT=0) and with V transposed in shared memory (VT=1): quick checks, then mha fwd at 8192 for any that passes;
# b9 (b7 + a no-mask path for full steps, paired lse/Dsum loads, heavy key blocks first; DMABENCH_CUDA_BWD_KEYPAR=2) against main's default and b7: fwd+bwd at the model's shape and 8192;
# Nsight Compute of b7 and b9 at the model's shape; b9's verify and sanitizers
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=8
MAIN=./gpupack/main/dmabench W2=./gpupack/w2/dmabench B7=./gpupack/b7/dmabench B9=./gpupack/b9/dmabench
KP=DMABENCH_CUDA_BWD_KEYPAR=2
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader > $O/gpu.txt
okc() { grep -c '"status":[[:space:]]*"ok"' $1; }
for vt in 0 1; do env DMABENCH_CUDA_WGMMA=1 DMABENCH_WGMMA_VT=$vt timeout 60 $W2 kernels --backend cuda --variants mha --n 300,2048 --b 1 --hq 4 --hkv 2 --d 128,64 --dtype bf16 --mode fwd --warmup 0 --repeats 1 --out $O/q-w2-$vt.json > $O/q-w2-$vt.log 2>&1; echo "quick w2 vt=$vt rc=$? ok=$(okc $O/q-w2-$vt.json) of 4"; done
env $KP timeout 60 $B9 kernels --backend cuda --variants mha,swa --n 300,2048 --w 256 --b 2 --hq 4 --hkv 2 --d 128,64 --dtype bf16 --mode fwdbwd --warmup 0 --repeats 1 --out $O/q-b9.json > $O/q-b9.log 2>&1; echo "quick b9 rc=$? ok=$(okc $O/q-b9.json) of 8"
K="kernels --backend cuda --dtype bf16 --warmup 2 --repeats 5 --check-n 0"
k() { env $3 timeout 100 $2 $K $4 --out $O/k-$1.json > $O/k-$1.log 2>&1; echo "$1 rc=$? $(grep -E '^\| (mha|dma|swa)' $O/k-$1.log | cut -d'|' -f2,4,6,9,11,12 | tr '\n' ' ')"; }
t kernels
for r in 1 2; do
  k main-model-$r $MAIN X=0 "--mode fwdbwd --variants mha --n 2048 --b 8 --hq 6 --hkv 3 --d 128"
  k b7-model-$r $B7 $KP "--mode fwdbwd --variants mha --n 2048 --b 8 --hq 6 --hkv 3 --d 128"
  k b9-model-$r $B9 $KP "--mode fwdbwd --variants mha --n 2048 --b 8 --hq 6 --hkv 3 --d 128"
  k main-8192-$r $MAIN X=0 "--mode fwdbwd --variants mha --n 8192 --b 1 --hq 32 --hkv 8 --d 128"
  k b9-8192-$r $B9 $KP "--mode fwdbwd --variants mha --n 8192 --b 1 --hq 32 --hkv 8 --d 128"
done
k main-swa65k $MAIN X=0 "--mode fwdbwd --variants swa --n 65536 --w 1024 --b 1 --hq 32 --hkv 8 --d 128"
k b9-swa65k $B9 $KP "--mode fwdbwd --variants swa --n 65536 --w 1024 --b 1 --hq 32 --hkv 8 --d 128"
for vt in 0 1; do [ "$(okc $O/q-w2-$vt.json)" = 4 ] && k w2-vt$vt-8192 $W2 "DMABENCH_CUDA_WGMMA=1 DMABENCH_WGMMA_VT=$vt" "--mode fwd --variants mha --n 8192 --b 1 --hq 32 --hkv 8 --d 128"; done
k main-fwd-8192 $MAIN X=0 "--mode fwd --variants mha --n 8192 --b 1 --hq 32 --hkv 8 --d 128"
t profiles
PR="kernels --backend cuda --variants mha --n 2048 --b 8 --hq 6 --hkv 3 --d 128 --dtype bf16 --mode fwdbwd --warmup 1 --repeats 1 --check-n 0"
for x in b7:$B7 b9:$B9; do env $KP OUT=$O/prof timeout 150 sh scripts/gpu-kernel-profile.sh ${x%%:*} bwd_kp_kernel 1 ${x#*:} $PR 2>&1 | tail -8; done
t checks
for dt in bf16 f16; do (env $KP timeout 240 $B9 verify --backend cuda --dtype $dt --quiet --out $O/v-$dt.json > $O/v-$dt.log 2>&1; echo $? > $O/v-$dt.rc) & done
(env $KP timeout 240 compute-sanitizer --tool memcheck --error-exitcode 9 $B9 verify --backend cuda --variants mha,swa --quiet > $O/san-mem.log 2>&1; echo $? > $O/san-mem.rc) &
(env $KP timeout 240 compute-sanitizer --tool racecheck --error-exitcode 9 $B9 verify --backend cuda --variants mha --quiet > $O/san-race.log 2>&1; echo $? > $O/san-race.rc) &
wait
for dt in bf16 f16; do echo "verify b9 $dt rc=$(cat $O/v-$dt.rc) $(grep '^verify:' $O/v-$dt.log | tail -1)"; grep FAIL $O/v-$dt.log | head -3; done
echo "memcheck rc=$(cat $O/san-mem.rc) $(grep 'ERROR SUMMARY' $O/san-mem.log)"; echo "racecheck rc=$(cat $O/san-race.rc) $(grep 'RACECHECK SUMMARY' $O/san-race.log)"
t done
rm -f $O/v-*.json; find $O -name '*.json' -size +300k -delete
tar czf $OUT/o.tgz -C $OUT o
