#!/bin/sh
# call 4 (sixteenth set): b12 (the key-parallel backward's lse log2e and Dsum copied with cp.async from a padded copy the Dsum kernel writes; the Dsum kernel's loads 16 bytes wide)
# against main (b11): fwd+bwd at the model's shape and 8192; Nsight Compute of b12; PyTorch SDPA's flash backward at the model's shape and the forward anchors; the training step; b12's checks
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=8
MAIN=./gpupack/b11/dmabench B12=./gpupack/b12/dmabench
KP=DMABENCH_CUDA_BWD_KEYPAR=2
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader > $O/gpu.txt
okc() { grep -c '"status":[[:space:]]*"ok"' $1; }
env $KP timeout 60 $B12 kernels --backend cuda --variants mha,swa --n 300,2048 --w 256 --b 2 --hq 4 --hkv 2 --d 128,64 --dtype bf16 --mode fwdbwd --warmup 0 --repeats 1 --out $O/q-b12.json > $O/q-b12.log 2>&1; echo "quick b12 forced rc=$? ok=$(okc $O/q-b12.json) of 8"
K="kernels --backend cuda --dtype bf16 --warmup 2 --repeats 5 --check-n 0"
k() { env $3 timeout 120 $2 $K $4 --out $O/k-$1.json > $O/k-$1.log 2>&1; echo "$1 rc=$? $(grep -E '^\| (mha|dma|swa|nsa)' $O/k-$1.log | cut -d'|' -f2,4,6,9,11,12 | tr '\n' ' ')"; }
t kernels
for r in 1 2; do
  for x in b11:$MAIN b12:$B12; do n=${x%%:*}; bin=${x#*:}
    k $n-model-$r $bin X=0 "--mode fwdbwd --variants mha --n 2048 --b 8 --hq 6 --hkv 3 --d 128"
    k $n-8192-$r $bin X=0 "--mode fwdbwd --variants mha --n 8192 --b 1 --hq 32 --hkv 8 --d 128"
  done
done
k b12-model-fwd $B12 X=0 "--mode fwd --variants mha --n 2048 --b 8 --hq 6 --hkv 3 --d 128"
k b12-16k $B12 X=0 "--mode fwdbwd --variants mha --n 16384 --b 1 --hq 32 --hkv 8 --d 128"
k b12-swa65k $B12 X=0 "--mode fwdbwd --variants swa --n 65536 --w 1024 --b 1 --hq 32 --hkv 8 --d 128"
t sdpa
timeout 120 python3 gpupack/fa2bwd.py > $O/fa2bwd.log 2>&1; tail -1 $O/fa2bwd.log
timeout 150 python3 scripts/sdpa_anchor.py > $O/sdpa.json 2> $O/sdpa.log; echo "sdpa rc=$?"; head -6 $O/sdpa.log
t profile
PR="kernels --backend cuda --variants mha --n 2048 --b 8 --hq 6 --hkv 3 --d 128 --dtype bf16 --mode fwdbwd --warmup 1 --repeats 1 --check-n 0"
OUT=$O/prof timeout 150 sh scripts/gpu-kernel-profile.sh b12 bwd_kp_kernel 1 $B12 $PR 2>&1 | tail -8
t train
DMABENCH=$B12 OUT=$O/train sh scripts/gpu-train-bench.sh
t checks
for dt in bf16 f16; do (timeout 240 $B12 verify --backend cuda --dtype $dt --quiet --out $O/v-$dt.json > $O/v-$dt.log 2>&1; echo $? > $O/v-$dt.rc) & done
for dt in bf16 f16; do (env $KP timeout 240 $B12 verify --backend cuda --dtype $dt --variants mha,swa,nsa --quiet --out $O/v-kp-$dt.json > $O/v-kp-$dt.log 2>&1; echo $? > $O/v-kp-$dt.rc) & done
(env $KP timeout 240 compute-sanitizer --tool memcheck --error-exitcode 9 $B12 verify --backend cuda --variants mha,swa --quiet > $O/san-mem.log 2>&1; echo $? > $O/san-mem.rc) &
(env $KP timeout 240 compute-sanitizer --tool racecheck --error-exitcode 9 $B12 verify --backend cuda --variants mha --quiet > $O/san-race.log 2>&1; echo $? > $O/san-race.rc) &
(DMABENCH_GPU=1 DMABENCH=$B12 DMABENCH_TESTS=./gpupack/b12/tests DMABENCH_GPU_PART=model DMABENCH_GPU_JOBS=6 DMABENCH_GPU_KEEP=$O/gpu-model timeout 330 sh tests/gpu.sh > $O/gpu-model.log 2>&1; echo $? > $O/gpu-model.rc) &
wait
for v in bf16 f16 kp-bf16 kp-f16; do echo "verify b12 $v rc=$(cat $O/v-$v.rc) $(grep '^verify:' $O/v-$v.log | tail -1)"; grep FAIL $O/v-$v.log | head -3; done
echo "memcheck rc=$(cat $O/san-mem.rc) $(grep 'ERROR SUMMARY' $O/san-mem.log)"; echo "racecheck rc=$(cat $O/san-race.rc) $(grep 'RACECHECK SUMMARY' $O/san-race.log)"
echo "gpu.sh model (b12) rc=$(cat $O/gpu-model.rc) ok=$(grep -c '^ok' $O/gpu-model.log) notok=$(grep -c '^not ok' $O/gpu-model.log)"; grep '^not ok' $O/gpu-model.log | head -5
t done
rm -f $O/v-*.json $O/train/bytes.txt; find $O -name '*.json' -size +300k -delete; find $O -name '*.safetensors' -delete; find $O -name '*.jsonl' -delete
tar czf $OUT/o.tgz -C $OUT o
