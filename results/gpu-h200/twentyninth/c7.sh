#!/bin/sh
# p31d (the wgmma query-tile backward the default on sm_90): dma and mha (query tiles) fwd+bwd at 8192 by default
# and with DMABENCH_CUDA_WGMMA_BWD=0; verify of every variant in bf16, f16 and f32 by default
[ -d gpupack/p31d ] || tar xJf gpupack/p31d.tar.xz -C gpupack
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
B=./gpupack/p31d/dmabench
K="kernels --backend cuda --dtype bf16 --warmup 2 --repeats 5 --check-n 0 --w 1024 --b 1 --hq 32 --hkv 8 --d 128 --mode fwd,fwdbwd --n 8192"
med() { grep -E '^\| (dma|mha)' $1 | cut -d'|' -f2,4,11 | tr '\n' ' '; }
timeout 60 $B $K --variants dma --out $O/d8.json > $O/d8.log 2>&1; echo "default rc=$? $(med $O/d8.log)"
DMABENCH_CUDA_WGMMA_BWD=0 timeout 60 $B $K --variants dma --out $O/m8.json > $O/m8.log 2>&1; echo "WGMMA_BWD=0 rc=$? $(med $O/m8.log)"
t timed
tar czf $OUT/o.tgz -C $OUT o
for dt in bf16 f16 f32; do timeout 200 $B verify --backend cuda --dtype $dt --quiet --out $O/v-$dt.json > $O/v-$dt.log 2>&1 & done; wait
for dt in bf16 f16 f32; do echo "v-$dt: $(grep -E '^verify:' $O/v-$dt.log)"; grep -m4 FAIL $O/v-$dt.log; done
t done
find $O -name '*.json' -size +100k -delete
tar czf $OUT/o.tgz -C $OUT o
