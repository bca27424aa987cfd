#!/bin/sh
# p30d (main's kernels at 69a8345): swa against dma at the paper shape (8192, 65536), then memcheck and racecheck
# over verify's whole dma grid (bf16), at once.
[ -d gpupack/p30d ] || tar xJf gpupack/p30d.tar.xz -C gpupack
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
B=./gpupack/p30d/dmabench
K="kernels --backend cuda --dtype bf16 --warmup 2 --repeats 5 --check-n 0 --w 1024 --b 1 --hq 32 --hkv 8 --d 128 --mode fwd,fwdbwd --variants swa,dma"
timeout 60 $B $K --n 8192 --out $O/k8.json > $O/k8.log 2>&1; echo "8192 rc=$? $(grep -E '^\| (swa|dma)' $O/k8.log | cut -d'|' -f2,4,11 | tr '\n' ' ')"
timeout 90 $B $K --n 65536 --repeats 3 --out $O/k65.json > $O/k65.log 2>&1; echo "65536 rc=$? $(grep -E '^\| (swa|dma)' $O/k65.log | cut -d'|' -f2,4,11 | tr '\n' ' ')"
t timed
tar czf $OUT/o.tgz -C $OUT o
for t in memcheck racecheck; do
  timeout 290 compute-sanitizer --tool $t --error-exitcode 9 $B verify --backend cuda --variants dma --quiet --out $O/s-$t.json > $O/s-$t.log 2>&1 &
done; wait
for t in memcheck racecheck; do echo "$t: $(grep -E '^verify:' $O/s-$t.log) $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' $O/s-$t.log | tail -1)"; done
t done
find $O -name '*.json' -size +100k -delete
tar czf $OUT/o.tgz -C $OUT o
