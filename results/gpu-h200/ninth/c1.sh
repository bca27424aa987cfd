#!/bin/sh
# call 1: main + nsa-gates-gpu + nsa-cmp-bwd-tc: GPU training tests (fixed gates),
# nsa verify, sanitizers at 1100, timings at 8192 with/without the tc compression,
# nsa at 65536, the training step at 8192, tests-model, profile
B=./gpubuild/dmabench; O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv > $O/nvidia-smi.csv
t train-tests; DMABENCH_GPU=1 timeout 120 ./gpubuild/tests/test_model_gpu_train > $O/test_model_gpu_train.log 2>&1; echo "rc=$? ok $(grep -c '^ok' $O/test_model_gpu_train.log) not-ok $(grep -c '^not ok' $O/test_model_gpu_train.log)"; grep -E "^not ok|gates" $O/test_model_gpu_train.log | cut -c1-200
for dt in bf16 f16; do t verify $dt; timeout 100 $B verify --backend cuda --variants nsa --dtype $dt --quiet --out $O/v-$dt.json > $O/v-$dt.log 2>&1; echo "rc=$?"; tail -2 $O/v-$dt.log | head -1; done
for dd in 64 128; do t "check+memcheck d$dd"; timeout 100 compute-sanitizer --tool memcheck --error-exitcode 9 $B kernels --backend cuda --variants nsa --n 1100 --b 2 --hq 4 --hkv 2 --d $dd --w 256 --mode fwd,fwdbwd --check-n 1100 --warmup 0 --repeats 1 --out $O/chk-d$dd.json > $O/memcheck-d$dd.log 2>&1; echo "rc=$?"; grep -E "ERROR SUMMARY|cells:" $O/memcheck-d$dd.log; done
t racecheck; timeout 60 compute-sanitizer --tool racecheck --error-exitcode 9 $B kernels --backend cuda --variants nsa --n 1100 --b 1 --hq 4 --hkv 2 --d 128 --w 256 --mode fwd,fwdbwd --check-n 0 --warmup 0 --repeats 1 > $O/racecheck.log 2>&1; echo "rc=$?"; grep -E "RACECHECK SUMMARY" $O/racecheck.log
for tc in 0 1; do t timing tc=$tc; DMABENCH_NSA_CMP_TC=$tc timeout 60 $B kernels --backend cuda --variants nsa --n 8192 --b 1 --hq 32 --hkv 8 --d 128 --w 512 --dtype bf16 --mode fwd,fwdbwd --warmup 1 --repeats 5 --out $O/k-tc$tc.json > $O/k-tc$tc.log 2>&1; echo "rc=$?"; grep -E '^\| nsa' $O/k-tc$tc.log | cut -c1-120; done
t nsa-65536; timeout 120 $B kernels --backend cuda --variants nsa --n 65536 --b 1 --hq 32 --hkv 8 --d 128 --w 512 --dtype bf16 --mode fwd,fwdbwd --warmup 1 --repeats 3 --out $O/k-nsa-65536.json > $O/k-nsa-65536.log 2>&1; echo "rc=$?"; grep -E '^\| nsa' $O/k-nsa-65536.log | cut -c1-140
t train; mkdir -p $O/train; cat README.md docs/*.md > /tmp/bytes.txt; timeout 60 $B train --config model/configs/gpu-131m-nsa.json --data /tmp/bytes.txt --out /tmp/tr-nsa --backend cuda --context 8192 --batch-size 2 --steps 30 --log-every 5 --force --quiet > $O/train/train-nsa.log 2>&1; echo rc=$?; cp /tmp/tr-nsa/train_log.jsonl $O/train/train-nsa-8192.jsonl; grep '"tokens_per_s"' /tmp/tr-nsa/train_log.jsonl | grep -v event | tail -1 | cut -c1-200
t tests-model; DMABENCH_TESTS=./gpubuild/tests DMABENCH=$B OUT=$O/tm timeout 120 sh scripts/gpu-check.sh tests-model > $O/tm.log 2>&1; echo rc=$?; echo "ok $(grep -c '^ok' $O/tm.log) not-ok $(grep -c '^not ok' $O/tm.log)"; grep '^not ok' $O/tm.log | cut -c1-250
t profile; DMABENCH=$B OUT=$O/prof STEPS=2 timeout 100 sh scripts/gpu-train-profile.sh nsa 8192 2 > $O/prof.log 2>&1; echo rc=$?; sed -n 2,18p $O/prof/profile-train-nsa-8192.txt
t done
rm -f $O/prof/ncu-*.csv
tar czf $OUT/o.tgz -C $O .
