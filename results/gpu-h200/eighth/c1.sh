#!/bin/sh
# call 1: the GPU model tests on main; then nsa/mha MQAR at 512 tokens over 4 seeds,
# nsa with its gates held at 0.5 (diag build), one 10000-step nsa run
B=./gpubuild/dmabench; D=./gpubuild/diag/dmabench; O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,driver_version --format=csv
t tests-model; DMABENCH_TESTS=./gpubuild/tests DMABENCH=$B OUT=$O/tm timeout 200 sh scripts/gpu-check.sh tests-model > $O/tm.log 2>&1; echo rc=$?; grep -E "ok|passed|failed" $O/tm.log | grep -v "^ok" | tail -8; grep -c "^ok" $O/tm.log
t probes
for s in 1 2 3 4; do
  OMP_NUM_THREADS=1 timeout 400 $B run gpupack/s8/p-nsa-s$s.json --out $O/nsa-s$s --quiet > $O/nsa-s$s.log 2>&1 &
  OMP_NUM_THREADS=1 timeout 400 $B run gpupack/s8/p-mha-s$s.json --out $O/mha-s$s --quiet > $O/mha-s$s.log 2>&1 &
  DIAG_GATES=half OMP_NUM_THREADS=1 timeout 400 $D run gpupack/s8/p-nsa-s$s.json --out $O/half-s$s --quiet > $O/half-s$s.log 2>&1 &
done
OMP_NUM_THREADS=1 timeout 400 $B run gpupack/s8/p-nsa-long.json --out $O/long --quiet > $O/long.log 2>&1 &
wait
t done
for d in $O/*/; do echo "$(basename $d): $(grep -o '"accuracy":[0-9.e-]*\|"steps_taken":[0-9]*\|"final_loss":[0-9.]*\|"train_s":[0-9.]*' $d/records.jsonl 2>/dev/null | tr '\n' ' ')"; done
tar czf $OUT/o.tgz -C $O .
