#!/bin/sh
# tests/gpu.sh's verify part (every kernel against the reference in bf16, f16 and f32, the opt-in list in bf16 and
# f16, the timed sweep) on p30d, whose kernels are main's at 69a8345; 14 verify runs at once.
[ -d gpupack/p30d ] || tar xJf gpupack/p30d.tar.xz -C gpupack
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader
DMABENCH_GPU=1 DMABENCH_GPU_PART=verify DMABENCH_GPU_JOBS=14 DMABENCH=./gpupack/p30d/dmabench DMABENCH_GPU_KEEP=$O/keep \
  timeout 480 sh tests/gpu.sh > $O/gpu-verify.log 2>&1
echo "rc=$? after $(( $(date +%s)-S0 )) s: $(grep -c '^ok' $O/gpu-verify.log) ok, $(grep -c '^not ok' $O/gpu-verify.log) not ok"
grep '^not ok' $O/gpu-verify.log | cut -c1-300
find $O -name '*.json' -size +100k -delete
tar czf $OUT/o.tgz -C $OUT o
