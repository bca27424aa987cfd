#!/bin/sh
# call 2: nsa MQAR at 512 tokens, 4 seeds: gates fixed to window-only (004) and to
# (0.5 cmp, 0, 1 win) (204) in the diag build; block-mean compression and no
# compressed block, both with learned gates, in the main build
B=./gpubuild/dmabench; D=./gpubuild/diag/dmabench; O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=1
t probes
for s in 1 2 3 4; do
  DIAG_GATES=004 timeout 400 $D run gpupack/s8/p-nsa-s$s.json --out $O/g004-s$s --quiet > $O/g004-s$s.log 2>&1 &
  DIAG_GATES=204 timeout 400 $D run gpupack/s8/p-nsa-s$s.json --out $O/g204-s$s --quiet > $O/g204-s$s.log 2>&1 &
  timeout 400 $B run gpupack/s8/p-mean-s$s.json --out $O/mean-s$s --quiet > $O/mean-s$s.log 2>&1 &
  timeout 400 $B run gpupack/s8/p-nocmp-s$s.json --out $O/nocmp-s$s --quiet > $O/nocmp-s$s.log 2>&1 &
done
wait
t done
for d in $O/*/; do echo "$(basename $d): $(grep -o '"accuracy":[0-9.e-]*\|"steps_taken":[0-9]*\|"final_loss":[0-9.]*' $d/records.jsonl 2>/dev/null | sort -u | tr '\n' ' ')"; done
grep -il "error" $O/*.log | head
tar czf $OUT/o.tgz -C $O .
