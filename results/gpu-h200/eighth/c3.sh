#!/bin/sh
# call 3: nsa MQAR at 512 tokens, seeds 1-2: lr 3e-4 and 3e-3, d_model 256, 4 layers,
# block-mean compression with gates fixed to (0.5, 0, 1), no compressed block at lr 3e-4
B=./gpubuild/dmabench; D=./gpubuild/diag/dmabench; O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=1
t probes
for s in 1 2; do
  for x in lr3e-4 lr3e-3 d256 l4 nocmp3e-4; do timeout 420 $B run gpupack/s8/$x-s$s.json --out $O/$x-s$s --quiet > $O/$x-s$s.log 2>&1 & done
  DIAG_GATES=204 timeout 420 $D run gpupack/s8/mean204-s$s.json --out $O/mean204-s$s --quiet > $O/mean204-s$s.log 2>&1 &
done
wait
t done
for d in $O/*/; do echo "$(basename $d): $(grep -o '"accuracy":[0-9.e-]*\|"steps_taken":[0-9]*\|"final_loss":[0-9.]*\|"train_s":[0-9.]*' $d/records.jsonl 2>/dev/null | sort -u | tr '\n' ' ')"; done
grep -il "error" $O/*.log | head
tar czf $OUT/o.tgz -C $O .
