#!/bin/sh
# call 2: f1's kernels under Nsight Compute (fused and not), racecheck at a small size
B=./gpubuild/dmabench; O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
K="$B kernels --backend cuda --b 1 --hq 32 --hkv 8 --d 128 --dtype bf16 --mode decode --w 1024 --warmup 1 --repeats 2 --check-n 0 --variants dma --n 524288 --quiet"
(timeout 150 compute-sanitizer --tool racecheck --error-exitcode 9 $B kernels --backend cuda --variants dma --mode decode --warmup 0 --repeats 1 --quiet --n 5000 --check-n 5000 --w 1024 --hq 32 --hkv 8 --d 128 > $O/san-racecheck.log 2>&1; echo "rc=$?" >> $O/san-racecheck.log) &
for f in 1 0; do
  t "ncu fused=$f"
  DMABENCH_DECODE_FUSED=$f timeout 100 ncu --metrics gpu__time_duration.sum,launch__registers_per_thread,launch__occupancy_limit_registers,sm__throughput.avg.pct_of_peak_sustained_elapsed,dram__throughput.avg.pct_of_peak_sustained_elapsed,smsp__cycles_active.avg $K > $O/ncu-f$f.log 2>&1
  grep -E "sel_|decode_|gpu__time|registers_per|limit_reg|throughput" $O/ncu-f$f.log | tail -48 | cut -c1-150
done
t "ncu fused source"
DMABENCH_DECODE_FUSED=1 timeout 120 ncu --kernel-name regex:sel_final_attend --launch-skip 2 --launch-count 1 --set full --import-source yes -o $O/fused $K > $O/ncu-full.log 2>&1; echo rc=$?
wait
echo "racecheck: $(tail -1 $O/san-racecheck.log) $(grep -E 'RACECHECK SUMMARY' $O/san-racecheck.log | tail -1)"
t done
tar czf $OUT/o.tgz -C $OUT o
