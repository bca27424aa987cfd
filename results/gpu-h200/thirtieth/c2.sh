#!/bin/sh
# p32b (ov1 the default: dK's product issued before dV's sums): the default against DMABENCH_CUDA_BWD_WG_OVERLAP=0
# alternated twice at 8192, once at 65536; the kernels of one dma fwd+bwd call at 8192 by duration; then
# tests/gpu.sh's verify part (every variant in bf16, f16, f32 and every opt-in) beside memcheck and racecheck
# over verify's whole dma grid.
[ -d gpupack/p32b ] || tar xJf gpupack/p32b.tar.xz -C gpupack
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader
B=./gpupack/p32b/dmabench
K="kernels --backend cuda --dtype bf16 --warmup 2 --repeats 5 --check-n 0 --w 1024 --b 1 --hq 32 --hkv 8 --d 128 --mode fwdbwd"
med() { grep -E '^\| (dma|mha)' $1 | cut -d'|' -f2,4,11 | tr '\n' ' '; }
V=DMABENCH_CUDA_BWD_WG_OVERLAP=0
for r in 1 2; do
  timeout 60 $B $K --variants dma --n 8192 --out $O/d8-$r.json > $O/d8-$r.log 2>&1; echo "def 8192 r$r rc=$? $(med $O/d8-$r.log)"
  env $V timeout 60 $B $K --variants dma --n 8192 --out $O/z8-$r.json > $O/z8-$r.log 2>&1; echo "ov0 8192 r$r rc=$? $(med $O/z8-$r.log)"
done
timeout 90 $B $K --variants dma --n 65536 --repeats 3 --out $O/d65.json > $O/d65.log 2>&1; echo "def 65536 rc=$? $(med $O/d65.log)"
env $V timeout 90 $B $K --variants dma --n 65536 --repeats 3 --out $O/z65.json > $O/z65.log 2>&1; echo "ov0 65536 rc=$? $(med $O/z65.log)"
t timed
OUT=$O/prof timeout 60 sh scripts/gpu-profile.sh dma8 $B kernels --backend cuda --dtype bf16 --warmup 0 --repeats 1 \
  --check-n 0 --w 1024 --b 1 --hq 32 --hkv 8 --d 128 --mode fwdbwd --variants dma --n 8192 > $O/prof.log 2>&1
t "kernel sums rc=$?"; cat $O/prof/profile-dma8.txt
tar czf $OUT/o.tgz -C $OUT o
DMABENCH_GPU=1 DMABENCH_GPU_PART=verify DMABENCH_GPU_JOBS=12 DMABENCH=$B DMABENCH_GPU_KEEP=$O/keep \
  timeout 500 sh tests/gpu.sh > $O/gpu-verify.log 2>&1 &
for tl in memcheck racecheck; do
  timeout 500 compute-sanitizer --tool $tl --error-exitcode 9 $B verify --backend cuda --variants dma --quiet --out $O/s-$tl.json > $O/s-$tl.log 2>&1 &
done; wait
t "verify part and sanitizers done"
echo "gpu-verify: $(grep -c '^ok' $O/gpu-verify.log) ok, $(grep -c '^not ok' $O/gpu-verify.log) not ok"; grep '^not ok' $O/gpu-verify.log | cut -c1-300
grep -E '^ok - gpu/verify (bf16|f16|f32) every' $O/gpu-verify.log
for tl in memcheck racecheck; do echo "$tl: $(grep -E '^verify:' $O/s-$tl.log) $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' $O/s-$tl.log | tail -1)"; done
find $O -name '*.json' -size +100k -delete
tar czf $OUT/o.tgz -C $OUT o
