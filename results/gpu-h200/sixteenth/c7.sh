#!/bin/sh
# call 7 (sixteenth set): b8 as the default key-parallel kernel (the 1-D one removed): fwd+bwd timings; the small grids with it; the training step and its phases; b8's checks and the GPU model's tests
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=8
NEW=./gpupack/b8/dmabench
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader > $O/gpu.txt
okc() { grep -c '"status":[[:space:]]*"ok"' $1; }
timeout 60 $NEW kernels --backend cuda --variants mha,swa --n 300,2048 --w 256 --b 8 --hq 4 --hkv 2 --d 128,64 --dtype bf16 --mode fwdbwd --warmup 0 --repeats 1 --out $O/q.json > $O/q.log 2>&1; echo "quick rc=$? ok=$(okc $O/q.json) of 8"
K="kernels --backend cuda --dtype bf16 --warmup 2 --repeats 5 --check-n 0"
k() { env $3 timeout 120 $2 $K $4 --out $O/k-$1.json > $O/k-$1.log 2>&1; echo "$1 rc=$? $(grep -E '^\| (mha|dma|swa|nsa)' $O/k-$1.log | cut -d'|' -f2,4,6,9,11,12 | tr '\n' ' ')"; }
t kernels
k model $NEW X=0 "--mode fwdbwd --variants mha --n 2048 --b 8 --hq 6 --hkv 3 --d 128"
k p8192 $NEW X=0 "--mode fwdbwd --variants mha --n 8192,16384 --b 1 --hq 32 --hkv 8 --d 128"
k swa65k $NEW X=0 "--mode fwdbwd --variants swa,dma --n 65536 --w 1024 --b 1 --hq 32 --hkv 8 --d 128"
for m in 0 1; do k small-kp$m $NEW DMABENCH_CUDA_BWD_KEYPAR=$m "--mode fwdbwd --variants mha --n 1024,2048,4096 --b 1 --hq 32 --hkv 8 --d 128"; done
k small-auto $NEW X=0 "--mode fwdbwd --variants mha --n 1024,2048,4096 --b 1 --hq 32 --hkv 8 --d 128"
t train
DMABENCH=$NEW OUT=$O/train sh scripts/gpu-train-bench.sh 2>&1 | grep -v '^{'
mkdir -p $O/phases; cat README.md docs/*.md > $O/phases/bytes.txt
DMABENCH_GPU_PHASES=1 timeout 120 $NEW train --config model/configs/gpu-131m-mha.json --data $O/phases/bytes.txt --out /tmp/ph --backend cuda --context 2048 --batch-size 8 --steps 6 --log-every 1 --force --quiet > $O/phases/mha-2048.txt 2>&1; echo "phases rc=$?"; tail -8 $O/phases/mha-2048.txt; grep '"step"' /tmp/ph/train_log.jsonl | tail -3 | cut -c1-200; rm -f $O/phases/bytes.txt
t checks
for dt in bf16 f16; do (timeout 240 $NEW verify --backend cuda --dtype $dt --quiet --out $O/v-$dt.json > $O/v-$dt.log 2>&1; echo $? > $O/v-$dt.rc) & done
for dt in bf16 f16; do (env DMABENCH_CUDA_BWD_KEYPAR=1 timeout 240 $NEW verify --backend cuda --dtype $dt --variants mha,swa,nsa --quiet --out $O/v-kp-$dt.json > $O/v-kp-$dt.log 2>&1; echo $? > $O/v-kp-$dt.rc) & done
(env DMABENCH_CUDA_BWD_KEYPAR=1 timeout 240 compute-sanitizer --tool memcheck --error-exitcode 9 $NEW verify --backend cuda --variants mha,swa --quiet > $O/san-mem.log 2>&1; echo $? > $O/san-mem.rc) &
(env DMABENCH_CUDA_BWD_KEYPAR=1 timeout 240 compute-sanitizer --tool racecheck --error-exitcode 9 $NEW verify --backend cuda --variants mha --quiet > $O/san-race.log 2>&1; echo $? > $O/san-race.rc) &
(DMABENCH_GPU=1 DMABENCH=$NEW DMABENCH_TESTS=./gpupack/b8/tests DMABENCH_GPU_PART=model DMABENCH_GPU_JOBS=6 DMABENCH_GPU_KEEP=$O/gpu-model timeout 330 sh tests/gpu.sh > $O/gpu-model.log 2>&1; echo $? > $O/gpu-model.rc) &
wait
for v in bf16 f16 kp-bf16 kp-f16; do echo "verify $v rc=$(cat $O/v-$v.rc) $(grep '^verify:' $O/v-$v.log | tail -1)"; grep FAIL $O/v-$v.log | head -3; done
echo "memcheck rc=$(cat $O/san-mem.rc) $(grep 'ERROR SUMMARY' $O/san-mem.log)"; echo "racecheck rc=$(cat $O/san-race.rc) $(grep 'RACECHECK SUMMARY' $O/san-race.log)"
echo "gpu.sh model rc=$(cat $O/gpu-model.rc) ok=$(grep -c '^ok' $O/gpu-model.log) notok=$(grep -c '^not ok' $O/gpu-model.log)"; grep '^not ok' $O/gpu-model.log | head -5
grep "^# .*gpu vs cpu" $O/gpu-model/test_model_gpu_train.log
t done
rm -f $O/v-*.json $O/train/bytes.txt; find $O -name '*.json' -size +300k -delete; find $O -name '*.safetensors' -delete; find $O -name '*.jsonl' ! -path '*/train/*' -delete
tar czf $OUT/o.tgz -C $OUT o
