#!/bin/sh
# call 4: the selected branch by key block (nsa-slc-pairs): verify, memcheck at 1100
# (D 128, D 64 with l' 64/96/128), timings at 8192 pairs vs union, 65536, tests-model,
# the training step, racecheck
B=./gpubuild/dmabench; O=/tmp/o; mkdir -p $O; S0=$(date +%s)
t() { tar czf $OUT/o.tgz -C $O . 2>/dev/null; echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive
for dt in bf16 f16; do t verify $dt; timeout 60 $B verify --backend cuda --variants nsa --dtype $dt --quiet --out $O/v-$dt.json > $O/v-$dt.log 2>&1; echo "rc=$?"; tail -2 $O/v-$dt.log | head -1; grep -i "fail" $O/v-$dt.log | head -5; done
t "memcheck d128"; timeout 60 compute-sanitizer --tool memcheck --error-exitcode 9 $B kernels --backend cuda --variants nsa --n 1100 --b 2 --hq 4 --hkv 2 --d 128 --w 256 --mode fwd,fwdbwd --check-n 1100 --warmup 0 --repeats 1 --out $O/chk-d128.json > $O/memcheck-d128.log 2>&1; echo "rc=$?"; grep -E "ERROR SUMMARY|cells:|error" $O/memcheck-d128.log | head -5
t "memcheck d64 ls 64,96,128"; timeout 60 compute-sanitizer --tool memcheck --error-exitcode 9 $B kernels --backend cuda --variants nsa --n 1100 --b 2 --hq 8 --hkv 2 --d 64 --w 256 --nsa-ls 64,96,128 --nsa-n 8 --mode fwd,fwdbwd --check-n 1100 --warmup 0 --repeats 1 --out $O/chk-d64.json > $O/memcheck-d64.log 2>&1; echo "rc=$?"; grep -E "ERROR SUMMARY|cells:|error" $O/memcheck-d64.log | head -5
for sl in union pairs; do t timing $sl; DMABENCH_NSA_SLC=$sl timeout 40 $B kernels --backend cuda --variants nsa --n 8192 --b 1 --hq 32 --hkv 8 --d 128 --w 512 --dtype bf16 --mode fwd,fwdbwd --warmup 1 --repeats 5 --out $O/k-$sl.json > $O/k-$sl.log 2>&1; echo "rc=$?"; grep -E '^\| nsa' $O/k-$sl.log | cut -c1-120; done
for sl in union pairs; do t nsa-65536 $sl; DMABENCH_NSA_SLC=$sl timeout 50 $B kernels --backend cuda --variants nsa --n 65536 --b 1 --hq 32 --hkv 8 --d 128 --w 512 --dtype bf16 --mode fwd,fwdbwd --check-n 0 --warmup 1 --repeats 3 --out $O/k65-$sl.json > $O/k65-$sl.log 2>&1; echo "rc=$?"; grep -E '^\| nsa' $O/k65-$sl.log | cut -c1-140; done
t tests-model; DMABENCH_TESTS=./gpubuild/tests DMABENCH=$B OUT=$O/tm timeout 60 sh scripts/gpu-check.sh tests-model > $O/tm.log 2>&1; echo rc=$?; echo "ok $(grep -c '^ok' $O/tm.log) not-ok $(grep -c '^not ok' $O/tm.log)"; grep '^not ok' $O/tm.log | cut -c1-250
mkdir -p $O/train; cat README.md docs/*.md > /tmp/bytes.txt
for sl in union pairs; do t train $sl; DMABENCH_NSA_SLC=$sl timeout 30 $B train --config model/configs/gpu-131m-nsa.json --data /tmp/bytes.txt --out /tmp/tr-nsa --backend cuda --context 8192 --batch-size 2 --steps 30 --log-every 5 --force --quiet > $O/train/train-nsa-$sl.log 2>&1; echo rc=$?; cp /tmp/tr-nsa/train_log.jsonl $O/train/train-nsa-8192-$sl.jsonl; grep '"tokens_per_s"' /tmp/tr-nsa/train_log.jsonl | grep -v event | tail -1 | cut -c1-200; done
t racecheck; timeout 45 compute-sanitizer --tool racecheck --error-exitcode 9 $B kernels --backend cuda --variants nsa --n 1100 --b 1 --hq 4 --hkv 2 --d 128 --w 256 --mode fwd,fwdbwd --check-n 0 --warmup 0 --repeats 1 > $O/racecheck.log 2>&1; echo "rc=$?"; grep -E "RACECHECK SUMMARY" $O/racecheck.log
for kr in nsa_select_tc nsa_slc_pair_bwd; do t ncu $kr; timeout 50 ncu --clock-control none -k regex:$kr --launch-count 1 --section SpeedOfLight --section Occupancy --section WarpStateStats --section LaunchStats $B kernels --backend cuda --variants nsa --n 65536 --b 1 --hq 32 --hkv 8 --d 128 --w 512 --dtype bf16 --mode fwdbwd --check-n 0 --warmup 0 --repeats 1 > $O/ncu-$kr.txt 2>&1; echo rc=$?; grep -E "Duration|Achieved Occupancy|Theoretical Occupancy|Block Limit|Warp Cycles Per Issued|Compute \(SM\) Throughput|Memory Throughput|Registers Per|Dynamic Shared" $O/ncu-$kr.txt | head -14; done
t done
tar czf $OUT/o.tgz -C $O .
rm -rf $O
