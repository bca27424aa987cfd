#!/bin/sh
# p31c: the query-tile backward on wgmma (DMABENCH_CUDA_WGMMA_BWD=1) in 128-row tiles of two warpgroups, operands
# read MN-major with no transposed copies, and the look-ahead. Prediction: dma fwd+bwd at 8192 2.85 -> 2.55-2.75 ms
# if the operands' shared-memory reads bound the mma.sync kernel; no gain if the dK/dV adds do.
# Timing first (default, WG alternated twice at 8192 and 65536; mha through the query tiles at 8192), then verify
# (every variant bf16; dma f16, without O's residual; the 64-row wgmma tiles) and the sanitizers on small cells.
[ -d gpupack/p31c ] || tar xJf gpupack/p31c.tar.xz -C gpupack
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
B=./gpupack/p31c/dmabench
K="kernels --backend cuda --dtype bf16 --warmup 2 --repeats 5 --check-n 0 --w 1024 --b 1 --hq 32 --hkv 8 --d 128 --mode fwdbwd"
med() { grep -E '^\| (dma|mha)' $1 | cut -d'|' -f2,4,11 | tr '\n' ' '; }
W=DMABENCH_CUDA_WGMMA_BWD=1
for r in 1 2; do
  timeout 60 $B $K --variants dma --n 8192 --out $O/d8-$r.json > $O/d8-$r.log 2>&1; echo "def 8192 r$r rc=$? $(med $O/d8-$r.log)"
  env $W timeout 60 $B $K --variants dma --n 8192 --out $O/w8-$r.json > $O/w8-$r.log 2>&1; echo "wg 8192 r$r rc=$? $(med $O/w8-$r.log)"
done
DMABENCH_CUDA_BWD_KEYPAR=0 timeout 60 $B $K --variants mha --n 8192 --out $O/dm8.json > $O/dm8.log 2>&1; echo "def mha kp0 rc=$? $(med $O/dm8.log)"
env $W DMABENCH_CUDA_BWD_KEYPAR=0 timeout 60 $B $K --variants mha --n 8192 --out $O/wm8.json > $O/wm8.log 2>&1; echo "wg mha kp0 rc=$? $(med $O/wm8.log)"
timeout 90 $B $K --variants dma --n 65536 --repeats 3 --out $O/d65.json > $O/d65.log 2>&1; echo "def 65536 rc=$? $(med $O/d65.log)"
env $W timeout 90 $B $K --variants dma --n 65536 --repeats 3 --out $O/w65.json > $O/w65.log 2>&1; echo "wg 65536 rc=$? $(med $O/w65.log)"
t timed
tar czf $OUT/o.tgz -C $OUT o
V="verify --backend cuda --quiet"
env $W DMABENCH_CUDA_BWD_KEYPAR=0 timeout 240 $B $V --dtype bf16 --out $O/v-bf16.json > $O/v-bf16.log 2>&1 &
env $W timeout 240 $B $V --dtype f16 --variants dma --out $O/v-f16.json > $O/v-f16.log 2>&1 &
env $W DMABENCH_DMA_RESIDUAL=0 timeout 240 $B $V --dtype bf16 --variants dma --out $O/vr.json > $O/vr.log 2>&1 &
env $W DMABENCH_CUDA_BWD_TILE=64 DMABENCH_CUDA_BWD_KEYPAR=0 timeout 240 $B $V --dtype bf16 --variants mha,dma --out $O/v64.json > $O/v64.log 2>&1 &
SK="kernels --backend cuda --dtype bf16 --warmup 0 --repeats 1 --n 300,2048 --w 128 --b 1 --hq 8 --hkv 2 --d 128,64 --mode fwdbwd"
for tl in memcheck racecheck; do
  env $W DMABENCH_CUDA_BWD_KEYPAR=0 timeout 240 compute-sanitizer --tool $tl --error-exitcode 9 $B $SK --variants dma,mha --out $O/s-$tl.json > $O/s-$tl.log 2>&1 &
done
wait
for f in v-bf16 v-f16 vr v64; do echo "$f: $(grep -E '^verify:' $O/$f.log)"; grep -m4 FAIL $O/$f.log; done
for f in s-memcheck s-racecheck; do echo "$f: $(grep -cE '^\| ' $O/$f.log) rows; $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' $O/$f.log | tail -1)"; grep -m3 -E 'Invalid|hazard|Race' $O/$f.log; done
t done
find $O -name '*.json' -size +100k -delete
tar czf $OUT/o.tgz -C $OUT o
