#!/bin/sh
# p35f: the probe's tensor-memory gathers issued by every thread of the CTA (a box a thread) instead of one warp
# (p35e): layouts checked (small runs, each its own process), then timed with red4 and rows-cp at 1 and 2 CTAs an SM.
[ -d gpupack/p35f ] || tar xJf gpupack/p35f.tar.xz -C gpupack
O=$OUT/o; mkdir -p $O
B=./gpupack/p35f/dmabench
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader > $O/gpu.txt; cat $O/gpu.txt
for op in rows-tma rows-tma2; do timeout 60 $B probe --ops $op --iters 8 --warmup 0 --repeats 1 --ctas-per-sm 1 > $O/pl-$op.txt 2>&1; echo "$op rc=$?: $(grep '^| rows' $O/pl-$op.txt)"; done
timeout 120 $B probe --ops red4,rows-cp,rows-tma,rows-tma2 --ctas-per-sm 1,2 --out $O/probe.json > $O/probe.txt 2>&1; echo "probe rc=$?"; cat $O/probe.txt
timeout 60 $B probe --iters 8 --warmup 0 --repeats 1 --ctas-per-sm 1,2 --out $O/probe-small.json > $O/probe-small.txt 2>&1; echo "small rc=$? $(grep -c '"check":[[:space:]]*"ok"' $O/probe-small.json) ok"
tar czf $OUT/o.tgz -C $OUT o
