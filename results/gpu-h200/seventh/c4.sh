#!/bin/sh
# call 4 (1 GPU): nsa at the MQAR model's shape (head dim 32) against the reference; nsa MQAR at 512 with
# head dim 64, and at 32 with the CUDA-core kernels; then the paper suite's needle (seed 1)
B=./gpubuild/dmabench; export O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
[ -d /usr/share/common-licenses ] || cp -r gpubuild/licenses /usr/share/common-licenses
export OMP_WAIT_POLICY=passive
t check; timeout 60 $B kernels --backend cuda --variants nsa,swa --n 512,2048 --b 2 --hq 4 --hkv 2 --d 32 --w 512 --nsa-l 32 --nsa-d 16 --nsa-ls 64 --nsa-n 8 --dtype bf16 --mode fwd,fwdbwd --check-n 2048 --warmup 1 --repeats 3 --out $O/k-d32.json > $O/k-d32.log 2>&1; echo "rc=$?"; grep -E '^\| |FAIL|rror|check' $O/k-d32.log | cut -c1-160
for f in nsa-d64 nsa-d32; do t $f; timeout 60 $B run gpupack/s/$f.json --out $O/$f --quiet > $O/$f.log 2>&1; tail -1 $O/$f.log; grep -o '"accuracy":[0-9.]*\|"steps_taken":[0-9]*\|"final_loss":[0-9.]*' $O/$f/records.jsonl | tr '\n' ' '; echo; done
t nsa-d32-cc; DMABENCH_NSA_TC=0 timeout 60 $B run gpupack/s/nsa-d32.json --out $O/nsa-d32-cc --quiet > $O/nsa-d32-cc.log 2>&1; tail -1 $O/nsa-d32-cc.log; grep -o '"accuracy":[0-9.]*\|"steps_taken":[0-9]*\|"final_loss":[0-9.]*' $O/nsa-d32-cc/records.jsonl | tr '\n' ' '; echo
t niah; OMP_NUM_THREADS=16 DMABENCH=$B PARTS="mha:niah dma:niah swa:niah nsa:niah" DEADLINE=$((S0 + ${BUDGET:-345})) sh scripts/run-gpus.sh gpupack/s/paper1.json gpupack/runs/paper 0 2>&1 | tail -6
t done
tar czf $OUT/runs.tgz gpupack/runs; tar czf $OUT/o.tgz -C $O .
