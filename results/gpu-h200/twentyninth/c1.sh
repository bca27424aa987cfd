#!/bin/sh
# p31a (main at efa68ed): br1 (DMABENCH_CUDA_BWD_BULK=1) against the default at the paper shape (8192, 65536),
# alternated twice; then br1's verify (dma, nsa; mha, swa through the query tiles; dma's first pass) and
# memcheck/racecheck of its kernels on small shapes, at once.
[ -d gpupack/p31a ] || tar xJf gpupack/p31a.tar.xz -C gpupack
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
B=./gpupack/p31a/dmabench
K="kernels --backend cuda --dtype bf16 --warmup 2 --repeats 5 --check-n 0 --w 1024 --b 1 --hq 32 --hkv 8 --d 128 --mode fwdbwd --variants dma"
med() { grep -E '^\| dma' $1 | cut -d'|' -f4,11 | tr '\n' ' '; }
for r in 1 2; do
  timeout 60 $B $K --n 8192 --out $O/d8-$r.json > $O/d8-$r.log 2>&1; echo "def 8192 r$r rc=$? $(med $O/d8-$r.log)"
  DMABENCH_CUDA_BWD_BULK=1 timeout 60 $B $K --n 8192 --out $O/b8-$r.json > $O/b8-$r.log 2>&1; echo "br1 8192 r$r rc=$? $(med $O/b8-$r.log)"
done
for r in 1 2; do
  timeout 90 $B $K --n 65536 --repeats 3 --out $O/d65-$r.json > $O/d65-$r.log 2>&1; echo "def 65536 r$r rc=$? $(med $O/d65-$r.log)"
  DMABENCH_CUDA_BWD_BULK=1 timeout 90 $B $K --n 65536 --repeats 3 --out $O/b65-$r.json > $O/b65-$r.log 2>&1; echo "br1 65536 r$r rc=$? $(med $O/b65-$r.log)"
done
t timed
tar czf $OUT/o.tgz -C $OUT o
V="verify --backend cuda --quiet"
for dt in bf16 f16; do
  DMABENCH_CUDA_BWD_BULK=1 timeout 250 $B $V --dtype $dt --variants dma,nsa --out $O/v-$dt.json > $O/v-$dt.log 2>&1 &
  DMABENCH_CUDA_BWD_BULK=1 DMABENCH_CUDA_BWD_KEYPAR=0 timeout 250 $B $V --dtype $dt --variants mha,swa --out $O/vk-$dt.json > $O/vk-$dt.log 2>&1 &
done
DMABENCH_CUDA_BWD_BULK=1 DMABENCH_DMA_RESIDUAL=0 timeout 250 $B $V --dtype bf16 --variants dma --out $O/vr.json > $O/vr.log 2>&1 &
SK="kernels --backend cuda --dtype bf16 --warmup 0 --repeats 1 --n 300,2048 --w 128 --b 1 --hq 8 --hkv 2 --d 128,64 --mode fwdbwd"
for tl in memcheck racecheck; do
  DMABENCH_CUDA_BWD_BULK=1 timeout 250 compute-sanitizer --tool $tl --error-exitcode 9 $B $SK --variants dma,nsa --out $O/s-$tl.json > $O/s-$tl.log 2>&1 &
  DMABENCH_CUDA_BWD_BULK=1 DMABENCH_CUDA_BWD_KEYPAR=0 timeout 250 compute-sanitizer --tool $tl --error-exitcode 9 $B $SK --variants mha,swa --out $O/sk-$tl.json > $O/sk-$tl.log 2>&1 &
done
wait
for f in v-bf16 v-f16 vk-bf16 vk-f16 vr; do echo "$f: $(grep -E '^verify:' $O/$f.log)"; done
for f in s-memcheck s-racecheck sk-memcheck sk-racecheck; do echo "$f: $(grep -cE '^\| ' $O/$f.log) rows; $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' $O/$f.log | tail -1)"; done
t done
find $O -name '*.json' -size +100k -delete
tar czf $OUT/o.tgz -C $OUT o
