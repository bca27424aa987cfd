#!/bin/sh
# call 8: Nsight Compute's full set with per-instruction stall samples for f2's cluster kernel (the default; K = 524288, w 1024, random z)
O=$OUT/o; mkdir -p $O
NEW=./gpupack/new/dmabench
CELL="kernels --backend cuda --b 1 --hq 32 --hkv 8 --d 128 --dtype bf16 --mode decode --w 1024 --warmup 2 --repeats 1 --variants dma --n 524288 --check-n 0"
k=sel_final_attend
timeout 100 ncu --clock-control none --set full --import-source yes -k regex:$k --launch-skip 2 --launch-count 1 -o $O/$k $NEW $CELL > $O/ncu-$k.log 2>&1
echo "$k rc=$?"
ncu --import $O/$k.ncu-rep --page source --print-source sass --csv > $O/$k-sass.csv 2>/dev/null
ncu --import $O/$k.ncu-rep --page details > $O/$k-details.txt 2>/dev/null
sh scripts/ncu-sass-ops.sh $O/$k-sass.csv > $O/$k-ops.txt 2>&1; head -14 $O/$k-ops.txt
grep -E 'Duration|Elapsed Cycles|SM Active' $O/$k-details.txt | head -4
gzip $O/$k-sass.csv; rm -f $O/$k.ncu-rep
tar czf $OUT/o.tgz -C $OUT o
