#!/bin/sh
# call A: branch nsa-saved (n16: nsa keeps its branches, d7: dma keeps its plan, in
# attn_params.saved; nsa's selected branch in nsa_cuda_slc.cu): verify (every variant
# bf16; nsa, dma f16 and f32; each without the area; nsa with DMABENCH_NSA_TC=0 and the
# pairs forced), memcheck and racecheck at 1100, GPU model tests, timings with and
# without the area, training with and without it, the GEMM tuning (decode, SDPA and mha
# forward: gpupack/paper2.sh)
B=./gpubuild/dmabench; O=/tmp/o; mkdir -p $O; S0=$(date +%s)
t() { tar czf $OUT/o.tgz -C $O . 2>/dev/null; echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv > $O/nvidia-smi.csv
v() { n=$1; shift; t "verify $n"; env "$@" > $O/v-$n.log 2>&1; echo "rc=$?"; grep '^verify:' $O/v-$n.log | tail -1; }
v all-bf16 X=1 timeout 100 $B verify --backend cuda --dtype bf16 --quiet --out $O/v-all-bf16.json
v sparse-f16 X=1 timeout 40 $B verify --backend cuda --variants nsa,dma --dtype f16 --quiet --out $O/v-sparse-f16.json
v sparse-f32 X=1 timeout 40 $B verify --backend cuda --variants nsa,dma --dtype f32 --quiet --out $O/v-sparse-f32.json
v nosaved-bf16 DMABENCH_NSA_SAVED=0 DMABENCH_DMA_SAVED=0 timeout 40 $B verify --backend cuda --variants nsa,dma --dtype bf16 --quiet --out $O/v-nosaved.json
v nsatc0-bf16 DMABENCH_NSA_TC=0 timeout 40 $B verify --backend cuda --variants nsa --dtype bf16 --quiet --out $O/v-nsatc0.json
v pairs-bf16 DMABENCH_NSA_SLC=pairs timeout 40 $B verify --backend cuda --variants nsa --dtype bf16 --quiet --out $O/v-pairs.json
t memcheck; timeout 80 compute-sanitizer --tool memcheck --error-exitcode 9 $B kernels --backend cuda --variants nsa,dma --n 1100 --b 2 --hq 4 --hkv 2 --d 128 --w 256 --mode fwd,fwdbwd,bwd --check-n 1100 --warmup 0 --repeats 1 --out $O/chk.json > $O/memcheck.log 2>&1; echo "rc=$?"; grep -E "ERROR SUMMARY|cells:" $O/memcheck.log
t racecheck; timeout 50 compute-sanitizer --tool racecheck --error-exitcode 9 $B kernels --backend cuda --variants nsa,dma --n 1100 --b 1 --hq 4 --hkv 2 --d 128 --w 256 --mode fwdbwd --check-n 0 --warmup 0 --repeats 1 > $O/racecheck.log 2>&1; echo "rc=$?"; grep -E "RACECHECK SUMMARY" $O/racecheck.log
t tests-model; DMABENCH_TESTS=./gpubuild/tests DMABENCH=$B OUT=$O/tm timeout 70 sh scripts/gpu-check.sh tests-model > $O/tm.log 2>&1; echo "rc=$? ok $(grep -c '^ok' $O/tm.log) not-ok $(grep -c '^not ok' $O/tm.log)"; grep '^not ok' $O/tm.log | cut -c1-200
K="$B kernels --backend cuda --b 1 --hq 32 --hkv 8 --d 128 --dtype bf16 --mode fwd,fwdbwd --check-n 0 --warmup 1 --repeats 3"
for e in "X=1" "DMABENCH_NSA_SAVED=0 DMABENCH_DMA_SAVED=0"; do n=$(echo "$e" | tr ' =' '__'); t "timing $e"; env $e timeout 60 $K --variants nsa --w 512 --n 8192,65536 --out $O/k-nsa-$n.json > $O/k-nsa-$n.log 2>&1; echo "rc=$?"; grep -E '^\| nsa' $O/k-nsa-$n.log | cut -c1-150; env $e timeout 30 $K --variants dma --w 1024 --n 8192,65536 --out $O/k-dma-$n.json > $O/k-dma-$n.log 2>&1; echo "rc=$?"; grep -E '^\| dma' $O/k-dma-$n.log | cut -c1-150; done
t train; DMABENCH=$B OUT=$O/train timeout 150 sh scripts/gpu-train-bench.sh 2>&1 | grep -v event
mkdir -p $O/train0; cat README.md docs/*.md > /tmp/bytes.txt
for v in nsa dma; do t "train $v without the area"; DMABENCH_NSA_SAVED=0 DMABENCH_DMA_SAVED=0 timeout 40 $B train --config model/configs/gpu-131m-$v.json --data /tmp/bytes.txt --out /tmp/tr0 --backend cuda --context 8192 --batch-size 2 --steps 30 --log-every 5 --force --quiet > $O/train0/train-$v.log 2>&1; echo rc=$?; cp /tmp/tr0/train_log.jsonl $O/train0/train-$v-8192.jsonl; grep '"tokens_per_s"' /tmp/tr0/train_log.jsonl | grep -v event | tail -1 | cut -c1-160; done
t "gemm tune"; DMABENCH_GEMM_TUNE=1 DMABENCH_GPU=1 timeout 60 ./gpubuild/tests/test_model_gpu > $O/tune-tests.log 2>&1; echo "rc=$? ok $(grep -c '^ok' $O/tune-tests.log) not-ok $(grep -c '^not ok' $O/tune-tests.log)"
mkdir -p $O/tune; DMABENCH_GEMM_TUNE=1 timeout 40 $B train --config model/configs/gpu-131m-mha.json --data /tmp/bytes.txt --out /tmp/trt --backend cuda --context 2048 --batch-size 8 --steps 30 --log-every 5 --force --quiet > $O/tune/train-mha-2048.log 2>&1; echo rc=$?; cp /tmp/trt/train_log.jsonl $O/tune/train-mha-2048.jsonl; grep '"tokens_per_s"' /tmp/trt/train_log.jsonl | grep -v event | tail -1 | cut -c1-160
t "train mha 2048 with DMABENCH_RMSNORM_FUSED=0"; DMABENCH_RMSNORM_FUSED=0 timeout 40 $B train --config model/configs/gpu-131m-mha.json --data /tmp/bytes.txt --out /tmp/trf --backend cuda --context 2048 --batch-size 8 --steps 30 --log-every 5 --force --quiet > $O/tune/train-mha-2048-unfused.log 2>&1; echo rc=$?; cp /tmp/trf/train_log.jsonl $O/tune/train-mha-2048-unfused.jsonl; grep '"tokens_per_s"' /tmp/trf/train_log.jsonl | grep -v event | tail -1 | cut -c1-160
t done
tar czf $OUT/o.tgz -C $O .
