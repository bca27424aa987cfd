#!/bin/sh
# experiment (p29x, not on main): dma's query-tile backward with DMABENCH_EXP_SKIP=1 (no dK/dV reductions),
# 2 (no dz atomics), 3 (neither); results wrong, timing only. Paper shape, N 8192, w 1024, random z. Alternated twice.
[ -d gpupack/p29x ] || tar xJf gpupack/p29x.tar.xz -C gpupack
O=$OUT/o; mkdir -p $O
B=./gpupack/p29x/dmabench
K="kernels --backend cuda --dtype bf16 --warmup 2 --repeats 5 --check-n 0 --variants dma --n 8192 --w 1024 --b 1 --hq 32 --hkv 8 --d 128 --mode fwd,fwdbwd"
for r in 1 2; do for x in 0 1 2 3; do
  DMABENCH_EXP_SKIP=$x timeout 60 $B $K --out $O/k-$x-$r.json > $O/k-$x-$r.log 2>&1
  echo "skip=$x run $r rc=$? $(grep -E '^\| dma' $O/k-$x-$r.log | cut -d'|' -f4,11 | tr '\n' ' ')"
done; done
tar czf $OUT/o.tgz -C $OUT o
