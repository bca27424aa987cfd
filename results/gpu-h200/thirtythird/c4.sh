#!/bin/sh
# p35e (fw2 opt-in as in p35c, the probe's K/V row gathers added): the gathers' layouts checked (one small run per
# op, each its own process), then timed against the sums' red4 at 1 and 2 CTAs an SM (the default 256 blocks a CTA:
# about the backward's 1.2 GB of K/V rows at N 8192); tests/gpu.sh's probe line; memcheck and racecheck of fw2
# (DMABENCH_CUDA_WGMMA=1) over verify's mha and dma cells.
[ -d gpupack/p35e ] || tar xJf gpupack/p35e.tar.xz -C gpupack
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=4
B=./gpupack/p35e/dmabench
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader > $O/gpu.txt; cat $O/gpu.txt
s() { n=$1; shift; env $* timeout 290 compute-sanitizer --tool $n --error-exitcode 9 $B verify --backend cuda --variants mha,dma --quiet --out $O/s-$n.json > $O/s-$n.log 2>&1; echo "s-$n rc=$? $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY|passed' $O/s-$n.log | tail -2 | tr '\n' ' ')"; }
s memcheck DMABENCH_CUDA_WGMMA=1 > $O/s1.txt & s racecheck DMABENCH_CUDA_WGMMA=1 > $O/s2.txt &
for op in rows-cp rows-tma rows-tma2; do timeout 60 $B probe --ops $op --iters 8 --warmup 0 --repeats 1 --ctas-per-sm 1 > $O/pl-$op.txt 2>&1; echo "$op rc=$?: $(grep '^| rows' $O/pl-$op.txt)"; done
timeout 120 $B probe --ops red4,rows-cp,rows-tma,rows-tma2 --ctas-per-sm 1,2 --out $O/probe.json > $O/probe.txt 2>&1; echo "probe rc=$?"; cat $O/probe.txt
timeout 60 $B probe --iters 8 --warmup 0 --repeats 1 --ctas-per-sm 1,2 --out $O/probe-small.json > $O/probe-small.txt 2>&1; echo "small rc=$? $(grep -c '"check":[[:space:]]*"ok"' $O/probe-small.json) ok"
t probed
tar czf $OUT/o.tgz -C $OUT o
wait; cat $O/s1.txt $O/s2.txt
t done
find $O -name '*.json' -size +100k -delete; find $O -name '*.jsonl' -delete
tar czf $OUT/o.tgz -C $OUT o
