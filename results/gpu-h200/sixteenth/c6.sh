#!/bin/sh
# call 6 (sixteenth set): b8 (the key-parallel backward with FA2's 2-D warp layouts, DMABENCH_CUDA_BWD_KEYPAR=3) and the Dsum kernel with D/8 lanes per row (build b8, default = b12's kernel)
# against b12 (call 4's build): fwd+bwd at the model's shape and 8192; Nsight Compute of b8; the training step with b8; checks
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=8
B12=./gpupack/b12/dmabench NEW=./gpupack/b8/dmabench
K3=DMABENCH_CUDA_BWD_KEYPAR=3
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader > $O/gpu.txt
okc() { grep -c '"status":[[:space:]]*"ok"' $1; }
env $K3 timeout 60 $NEW kernels --backend cuda --variants mha,swa --n 300,2048 --w 256 --b 2 --hq 4 --hkv 2 --d 128,64 --dtype bf16 --mode fwdbwd --warmup 0 --repeats 1 --out $O/q-b8.json > $O/q-b8.log 2>&1; echo "quick b8 rc=$? ok=$(okc $O/q-b8.json) of 8"
K="kernels --backend cuda --dtype bf16 --warmup 2 --repeats 5 --check-n 0"
k() { env $3 timeout 120 $2 $K $4 --out $O/k-$1.json > $O/k-$1.log 2>&1; echo "$1 rc=$? $(grep -E '^\| (mha|dma|swa|nsa)' $O/k-$1.log | cut -d'|' -f2,4,6,9,11,12 | tr '\n' ' ')"; }
t kernels
for r in 1 2; do
  for x in b12:$B12:X=0 dot:$NEW:X=0 b8:$NEW:$K3; do n=${x%%:*}; y=${x#*:}; bin=${y%%:*}; e=${y#*:}
    k $n-model-$r $bin $e "--mode fwdbwd --variants mha --n 2048 --b 8 --hq 6 --hkv 3 --d 128"
    k $n-8192-$r $bin $e "--mode fwdbwd --variants mha --n 8192 --b 1 --hq 32 --hkv 8 --d 128"
  done
done
k b8-d64 $NEW $K3 "--mode fwdbwd --variants mha --n 2048 --b 8 --hq 8 --hkv 8 --d 64"
k dot-d64 $NEW X=0 "--mode fwdbwd --variants mha --n 2048 --b 8 --hq 8 --hkv 8 --d 64"
t profile
PR="kernels --backend cuda --variants mha --n 2048 --b 8 --hq 6 --hkv 3 --d 128 --dtype bf16 --mode fwdbwd --warmup 1 --repeats 1 --check-n 0"
env $K3 OUT=$O/prof timeout 150 sh scripts/gpu-kernel-profile.sh b8 bwd_kp8_kernel 1 $NEW $PR 2>&1 | tail -8
t train
env $K3 DMABENCH=$NEW OUT=$O/train sh scripts/gpu-train-bench.sh 2>&1 | grep -v '^{'
t checks
for dt in bf16 f16; do (env $K3 timeout 240 $NEW verify --backend cuda --dtype $dt --variants mha,swa,nsa --quiet --out $O/v-b8-$dt.json > $O/v-b8-$dt.log 2>&1; echo $? > $O/v-b8-$dt.rc) & done
(timeout 240 $NEW verify --backend cuda --dtype bf16 --quiet --out $O/v-def.json > $O/v-def.log 2>&1; echo $? > $O/v-def.rc) &
(env $K3 timeout 240 compute-sanitizer --tool memcheck --error-exitcode 9 $NEW verify --backend cuda --variants mha,swa --quiet > $O/san-mem.log 2>&1; echo $? > $O/san-mem.rc) &
(env $K3 timeout 240 compute-sanitizer --tool racecheck --error-exitcode 9 $NEW verify --backend cuda --variants mha --quiet > $O/san-race.log 2>&1; echo $? > $O/san-race.rc) &
wait
for v in b8-bf16 b8-f16 def; do echo "verify $v rc=$(cat $O/v-$v.rc) $(grep '^verify:' $O/v-$v.log | tail -1)"; grep FAIL $O/v-$v.log | head -3; done
echo "memcheck rc=$(cat $O/san-mem.rc) $(grep 'ERROR SUMMARY' $O/san-mem.log)"; echo "racecheck rc=$(cat $O/san-race.rc) $(grep 'RACECHECK SUMMARY' $O/san-race.log)"
t done
rm -f $O/v-*.json $O/train/bytes.txt; find $O -name '*.json' -size +300k -delete; find $O -name '*.jsonl' -delete
tar czf $OUT/o.tgz -C $OUT o
