#!/bin/sh
# p31c: nsa at 8192 and 65536 (its branches through the query-tile backward) by default and with
# DMABENCH_CUDA_WGMMA_BWD=1; then memcheck and racecheck over verify's whole dma grid with it
[ -d gpupack/p31c ] || tar xJf gpupack/p31c.tar.xz -C gpupack
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
B=./gpupack/p31c/dmabench
K="kernels --backend cuda --dtype bf16 --warmup 2 --repeats 5 --check-n 0 --w 512 --b 1 --hq 32 --hkv 8 --d 128 --mode fwdbwd --variants nsa"
med() { grep -E '^\| (dma|mha|nsa)' $1 | cut -d'|' -f2,4,11 | tr '\n' ' '; }
W=DMABENCH_CUDA_WGMMA_BWD=1
timeout 60 $B $K --n 8192 --out $O/n8.json > $O/n8.log 2>&1; echo "def nsa 8192 rc=$? $(med $O/n8.log)"
env $W timeout 60 $B $K --n 8192 --out $O/wn8.json > $O/wn8.log 2>&1; echo "wg nsa 8192 rc=$? $(med $O/wn8.log)"
timeout 90 $B $K --n 65536 --repeats 3 --out $O/n65.json > $O/n65.log 2>&1; echo "def nsa 65536 rc=$? $(med $O/n65.log)"
env $W timeout 90 $B $K --n 65536 --repeats 3 --out $O/wn65.json > $O/wn65.log 2>&1; echo "wg nsa 65536 rc=$? $(med $O/wn65.log)"
t timed
tar czf $OUT/o.tgz -C $OUT o
for tl in memcheck racecheck; do
  env $W timeout 300 compute-sanitizer --tool $tl --error-exitcode 9 $B verify --backend cuda --variants dma --quiet --out $O/s-$tl.json > $O/s-$tl.log 2>&1 &
done; wait
for tl in memcheck racecheck; do echo "$tl: $(grep -E '^verify:' $O/s-$tl.log) $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' $O/s-$tl.log | tail -1)"; done
t done
find $O -name '*.json' -size +100k -delete
tar czf $OUT/o.tgz -C $OUT o
