#!/bin/sh
# p38a (as call 1). Profiles of fw1's kernel at 8192 (dma fwd) with WS=1 (the plan's rows) and WS=2 (ping-pong), and
# the kernel durations of dma's fwd+bwd at 8192 with WS=1 and with the default.
[ -d gpupack/p38a ] || tar xJf gpupack/p38a.tar.xz -C gpupack
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=3
B=./gpupack/p38a/dmabench
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader > $O/gpu.txt; cat $O/gpu.txt
K="kernels --backend cuda --dtype bf16 --warmup 1 --repeats 1 --check-n 0 --w 1024 --b 1 --hq 32 --hkv 8 --d 128 --variants dma --n 8192"
for m in 1 2; do DMABENCH_CUDA_FWD_WS=$m OUT=$O timeout 150 sh scripts/gpu-kernel-profile.sh ws$m attn_fwd_ws_kernel 1 $B $K --mode fwd > $O/p-ws$m.txt 2>&1; t profiled ws$m; tail -12 $O/p-ws$m.txt; tar czf $OUT/o.tgz -C $OUT o; done
DMABENCH_CUDA_FWD_WS=1 OUT=$O PER=2 timeout 100 sh scripts/gpu-profile.sh fb-ws1 $B $K --mode fwdbwd > /dev/null 2>&1; cat $O/profile-fb-ws1.txt
OUT=$O PER=2 timeout 100 sh scripts/gpu-profile.sh fb-def $B $K --mode fwdbwd > /dev/null 2>&1; cat $O/profile-fb-def.txt
t done
find $O -name '*.json' -size +100k -delete; find $O -name '*.jsonl' -delete; rm -f $O/*.ncu-rep $O/ncu-fb-*.csv
tar czf $OUT/o.tgz -C $OUT o
