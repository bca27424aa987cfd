#!/bin/sh
# call 4: nsa's linear compression on the tensor cores (nsa_compress_tc_kernel):
# verify nsa bf16/f16, a 2-CTA check at 2048, memcheck, timings with and without
# it at 8192 (the paper shape), the 131M training bench, nsa 8192 without it
B=./gpubuild/dmabench; O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,driver_version --format=csv > $O/nvidia-smi.csv
for dt in bf16 f16; do t verify $dt; timeout 150 $B verify --backend cuda --variants nsa --dtype $dt --quiet --out $O/v-$dt.json > $O/v-$dt.log 2>&1; echo "rc=$?"; tail -3 $O/v-$dt.log; done
t check2048; for dd in 128 64 32; do timeout 60 $B kernels --backend cuda --variants nsa --n 2048 --b 2 --hq 8 --hkv 2 --d $dd --w 512 --nsa-l 32 --nsa-d 16 --nsa-ls 64 --nsa-n 8 --mode fwd,fwdbwd --check-n 2048 --warmup 0 --repeats 1 --out $O/chk-d$dd.json > $O/chk-d$dd.log 2>&1; echo "d$dd rc=$?"; grep -iE "fail|error|rror" $O/chk-d$dd.log | head -3; done
t memcheck; timeout 120 compute-sanitizer --tool memcheck --error-exitcode 9 $B kernels --backend cuda --variants nsa --n 1100 --b 1 --hq 4 --hkv 2 --d 64 --w 256 --mode fwd,fwdbwd --check-n 1100 --warmup 0 --repeats 1 > $O/memcheck.log 2>&1; echo "rc=$?"; grep -E "ERROR SUMMARY" $O/memcheck.log
for tc in 0 1; do t timing tc=$tc; DMABENCH_NSA_CMP_TC=$tc timeout 90 $B kernels --backend cuda --variants nsa --n 8192 --b 1 --hq 32 --hkv 8 --d 128 --w 512 --dtype bf16 --mode fwd,fwdbwd --warmup 1 --repeats 5 --out $O/k-tc$tc.json > $O/k-tc$tc.log 2>&1; echo "rc=$?"; grep -E '^\| ' $O/k-tc$tc.log | cut -c1-150; done
t trainbench; DMABENCH=$B OUT=$O/train timeout 260 sh scripts/gpu-train-bench.sh
t nsa-tc0; DATA=$O/train/bytes.txt; DMABENCH_NSA_CMP_TC=0 timeout 90 $B train --config model/configs/gpu-131m-nsa.json --data $DATA --out /tmp/tr-nsa0 --backend cuda --context 8192 --batch-size 2 --steps 30 --log-every 5 --force --quiet > $O/train-nsa0.log 2>&1; echo rc=$?; grep '"tokens_per_s"' /tmp/tr-nsa0/train_log.jsonl | grep -v event | tail -1; cp /tmp/tr-nsa0/train_log.jsonl $O/train/train-nsa-8192-tc0.jsonl
t done
rm -f $O/train/bytes.txt
tar czf $OUT/o.tgz -C $O .
