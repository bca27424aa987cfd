#!/bin/sh
# p32a (main at bbe03dd): ov1 (DMABENCH_CUDA_BWD_WG_OVERLAP=1) against the default, alternated twice at 8192, once at
# 65536. Prediction: 2.66 -> 2.58-2.66; no gain if the dV/dK adds are L2-bound. Then one launch of the default
# bwd_main_kernel at the paper shape under Nsight Compute's full set, then tests/gpu.sh's verify part (every
# opt-in, ov1 among them) beside its model part.
[ -d gpupack/p32a ] || tar xJf gpupack/p32a.tar.xz -C gpupack
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
B=./gpupack/p32a/dmabench
K="kernels --backend cuda --dtype bf16 --warmup 2 --repeats 5 --check-n 0 --w 1024 --b 1 --hq 32 --hkv 8 --d 128 --mode fwdbwd"
med() { grep -E '^\| (dma|mha)' $1 | cut -d'|' -f2,4,11 | tr '\n' ' '; }
V=DMABENCH_CUDA_BWD_WG_OVERLAP=1
for r in 1 2; do
  timeout 60 $B $K --variants dma --n 8192 --out $O/d8-$r.json > $O/d8-$r.log 2>&1; echo "def 8192 r$r rc=$? $(med $O/d8-$r.log)"
  env $V timeout 60 $B $K --variants dma --n 8192 --out $O/o8-$r.json > $O/o8-$r.log 2>&1; echo "ov1 8192 r$r rc=$? $(med $O/o8-$r.log)"
done
timeout 90 $B $K --variants dma --n 65536 --repeats 3 --out $O/d65.json > $O/d65.log 2>&1; echo "def 65536 rc=$? $(med $O/d65.log)"
env $V timeout 90 $B $K --variants dma --n 65536 --repeats 3 --out $O/o65.json > $O/o65.log 2>&1; echo "ov1 65536 rc=$? $(med $O/o65.log)"
t timed
tar czf $OUT/o.tgz -C $OUT o
OUT=$O/prof timeout 120 sh scripts/gpu-kernel-profile.sh bwd bwd_main_kernel 1 $B kernels --backend cuda --dtype bf16 \
  --warmup 1 --repeats 1 --check-n 0 --w 1024 --b 1 --hq 32 --hkv 8 --d 128 --mode fwdbwd --variants dma --n 8192 > $O/prof.log 2>&1
t "profile rc=$?"; cat $O/prof.log
tar czf $OUT/o.tgz -C $OUT o
G="DMABENCH_GPU=1 DMABENCH=$B DMABENCH_TESTS=./gpupack/p32a/tests"
env $G DMABENCH_GPU_PART=verify DMABENCH_GPU_JOBS=6 DMABENCH_GPU_KEEP=$O/keep-verify timeout 370 sh tests/gpu.sh > $O/gpu-verify.log 2>&1 &
env $G DMABENCH_GPU_PART=model DMABENCH_GPU_JOBS=2 DMABENCH_GPU_KEEP=$O/keep-model timeout 370 sh tests/gpu.sh > $O/gpu-model.log 2>&1 &
wait
t "gpu.sh parts done"
for f in gpu-verify gpu-model; do echo "$f: $(grep -c '^ok' $O/$f.log) ok, $(grep -c '^not ok' $O/$f.log) not ok"; grep -m6 '^not ok' $O/$f.log; tail -2 $O/$f.log; done
find $O -name '*.json' -size +100k -delete
tar czf $OUT/o.tgz -C $OUT o
