#!/bin/sh
# call 8 (build new = e3, call 7's): Nsight Compute's full set for e3's bwd_main_kernel at the model's shape (as call 6's "ours"), to see where its time went
O=$OUT/o; mkdir -p $O
NEW=./gpupack/new/dmabench
n=e3
timeout 150 ncu --clock-control none --set full --import-source yes -k regex:bwd_main_kernel --launch-skip 1 --launch-count 1 -o $O/$n $NEW kernels --backend cuda --variants mha --n 2048 --b 8 --hq 6 --hkv 3 --d 128 --dtype bf16 --mode fwdbwd --warmup 1 --repeats 1 --check-n 0 > $O/ncu-$n.log 2>&1
echo "$n rc=$?"
ncu --import $O/$n.ncu-rep --page source --print-source sass --csv > $O/$n-sass.csv 2>/dev/null
ncu --import $O/$n.ncu-rep --page details > $O/$n-details.txt 2>/dev/null
sh scripts/ncu-sass-ops.sh $O/$n-sass.csv > $O/$n-ops.txt 2>&1; head -22 $O/$n-ops.txt
grep -E 'Duration|Registers Per|Issue Slots Busy|Warp Cycles Per Issued|Executed Ipc A' $O/$n-details.txt | head -6
gzip $O/$n-sass.csv; rm -f $O/$n.ncu-rep
tar czf $OUT/o.tgz -C $OUT o
