#!/bin/sh
# call 5: racecheck over nsa with the tensor-core compression; the GPU model tests;
# nsa's training step at 8192 under Nsight Compute (per-kernel sums)
B=./gpubuild/dmabench; O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive
t racecheck; timeout 150 compute-sanitizer --tool racecheck --error-exitcode 9 $B kernels --backend cuda --variants nsa --n 1100 --b 1 --hq 4 --hkv 2 --d 64 --w 256 --mode fwd --check-n 0 --warmup 0 --repeats 1 > $O/racecheck.log 2>&1; echo "rc=$?"; grep -E "ERROR SUMMARY|RACECHECK SUMMARY" $O/racecheck.log
t tests-model; DMABENCH_TESTS=./gpubuild/tests DMABENCH=$B OUT=$O/tm timeout 150 sh scripts/gpu-check.sh tests-model > $O/tm.log 2>&1; echo rc=$?; echo "ok $(grep -c '^ok' $O/tm.log) not-ok $(grep -c '^not ok' $O/tm.log)"; grep '^not ok' $O/tm.log | cut -c1-250
t profile; DMABENCH=$B OUT=$O/prof STEPS=2 timeout 150 sh scripts/gpu-train-profile.sh nsa 8192 2 > $O/prof.log 2>&1; echo rc=$?; head -30 $O/prof/profile-train-nsa-8192.txt
t done
rm -f $O/prof/ncu-*.csv
tar czf $OUT/o.tgz -C $O .
