#!/bin/sh
# call 6: memcheck of f1's third version; the fused kernel under Nsight Compute (full set, source)
B=./gpubuild/dmabench; O=$OUT/o; mkdir -p $O
KS="$B kernels --backend cuda --warmup 0 --repeats 1 --quiet --variants dma --mode decode --hq 32 --hkv 8"
(timeout 120 compute-sanitizer --tool memcheck --error-exitcode 9 $KS --n 70000 --check-n 70000 --w 1024,2048 --d 128,64 > $O/san-mem-dec.log 2>&1; echo "rc=$?" >> $O/san-mem-dec.log) &
K="$B kernels --backend cuda --b 1 --hq 32 --hkv 8 --d 128 --dtype bf16 --mode decode --w 1024 --variants dma --n 524288 --warmup 1 --repeats 2 --check-n 0 --quiet"
timeout 120 ncu --kernel-name regex:sel_final_attend --launch-skip 1 --launch-count 1 --set full --import-source yes -o $O/fused $K > $O/ncu-run.log 2>&1; echo "ncu rc=$?"
ncu --import $O/fused.ncu-rep --page details > $O/details.txt 2>&1
ncu --import $O/fused.ncu-rep --page source --csv --print-source cuda > $O/source.csv 2>&1
grep -E "Duration|Registers|Achieved Occupancy|Stall|Warp Cycles|Issued|Barrier|Long Scoreboard" $O/details.txt | head -30
wait
echo "memcheck: $(tail -1 $O/san-mem-dec.log) $(grep -E 'ERROR SUMMARY' $O/san-mem-dec.log | tail -1)"
tar czf $OUT/o.tgz -C $OUT o
