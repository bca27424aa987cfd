#!/bin/sh
# r4 (DMABENCH_CUDA_BWD_RED4=1) first run: verify, sanitizers, timing against the default at the paper shape.
[ -d gpupack/p30a ] || tar xJf gpupack/p30a.tar.xz -C gpupack
O=$OUT/o; mkdir -p $O
B=./gpupack/p30a/dmabench
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader
S0=$(date +%s)
for dt in bf16 f16; do
  DMABENCH_CUDA_BWD_RED4=1 $B verify --backend cuda --variants dma,nsa --dtype $dt --quiet --out $O/v-dn-$dt.json > $O/v-dn-$dt.log 2>&1 &
  DMABENCH_CUDA_BWD_RED4=1 DMABENCH_CUDA_BWD_KEYPAR=0 $B verify --backend cuda --variants mha,swa --dtype $dt --quiet --out $O/v-ms-$dt.json > $O/v-ms-$dt.log 2>&1 &
done; wait
for f in $O/v-*.log; do echo "$(basename $f): $(grep '^verify:' $f)"; done
echo "verify took $(( $(date +%s) - S0 )) s"
SC="kernels --backend cuda --dtype bf16 --n 300,2048 --w 128 --b 1 --hq 8 --hkv 2 --d 128,64 --mode fwdbwd --warmup 0 --repeats 1"
for t in memcheck racecheck; do
  DMABENCH_CUDA_BWD_RED4=1 timeout 200 compute-sanitizer --tool $t --error-exitcode 9 $B $SC --variants dma,nsa --out $O/s-$t.json > $O/s-$t.log 2>&1 &
done; wait
for t in memcheck racecheck; do echo "$t: $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' $O/s-$t.log | tail -1)"; done
echo "sanitizers done at $(( $(date +%s) - S0 )) s"
K="kernels --backend cuda --dtype bf16 --warmup 2 --repeats 5 --check-n 0 --n 8192 --w 1024 --b 1 --hq 32 --hkv 8 --d 128 --mode fwd,fwdbwd"
for r in 1 2; do for x in 0 1; do
  DMABENCH_CUDA_BWD_RED4=$x timeout 90 $B $K --variants dma,nsa --out $O/k-$x-$r.json > $O/k-$x-$r.log 2>&1
  echo "red4=$x run $r rc=$? $(grep -E '^\| (dma|nsa)' $O/k-$x-$r.log | cut -d'|' -f2,4,11 | tr '\n' ' ')"
done; done
echo "total $(( $(date +%s) - S0 )) s"
tar czf $OUT/o.tgz -C $OUT o
