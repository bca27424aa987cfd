#!/bin/sh
# p35c: fw2 (DMABENCH_CUDA_WGMMA=1: the wgmma forward with its own gathers, four stages, S_j and P_{j-1} V_{j-1}
# issued together, O's residual) against the mma.sync default. Verify in bf16 and f16, A/B alternated (3 rounds) of
# dma fwd and fwd+bwd and mha fwd at 8192, dma fwd at 65536 (1 round), then fw2's kernel profiled (dma, with RES).
[ -d gpupack/p35c ] || tar xJf gpupack/p35c.tar.xz -C gpupack
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=4
B=./gpupack/p35c/dmabench
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader > $O/gpu.txt; cat $O/gpu.txt
v() { n=$1; e=$2; shift 2; env $e timeout 240 $B verify --backend cuda --quiet "$@" --out $O/v-$n.json > $O/v-$n.log 2>&1; echo "$?" > $O/v-$n.rc; }
v w2-bf16 DMABENCH_CUDA_WGMMA=1 --dtype bf16 & v w2-f16 DMABENCH_CUDA_WGMMA=1 --dtype f16 & wait; t verified
for f in $O/v-*.log; do n=$(basename $f .log); echo "$n rc=$(cat $O/$n.rc): $(grep passed $f | tail -1)"; grep -m5 -i "fail" $f; done
tar czf $OUT/o.tgz -C $OUT o
AB="--backend cuda --dtype bf16 --warmup 2 --repeats 5 --check-n 0 --b 1 --hq 32 --hkv 8 --d 128"
DMABENCH=$B OUT=$O/ab8k timeout 200 sh scripts/kernels-ab.sh 3 - DMABENCH_CUDA_WGMMA=1 -- $AB --w 1024 --n 8192 --mode fwd,fwdbwd --variants dma > $O/ab8k.txt 2>&1; tail -4 $O/ab8k.txt
DMABENCH=$B OUT=$O/abm timeout 100 sh scripts/kernels-ab.sh 3 - DMABENCH_CUDA_WGMMA=1 -- $AB --n 8192 --mode fwd --variants mha > $O/abm.txt 2>&1; tail -3 $O/abm.txt
DMABENCH=$B OUT=$O/ab65 timeout 100 sh scripts/kernels-ab.sh 1 - DMABENCH_CUDA_WGMMA=1 -- $AB --w 1024 --n 65536 --mode fwd --variants dma --repeats 3 > $O/ab65.txt 2>&1; tail -3 $O/ab65.txt
t timed
tar czf $OUT/o.tgz -C $OUT o
K="kernels --backend cuda --dtype bf16 --warmup 1 --repeats 1 --check-n 0 --w 1024 --b 1 --hq 32 --hkv 8 --d 128 --mode fwdbwd --variants dma --n 8192"
DMABENCH_CUDA_WGMMA=1 OUT=$O timeout 120 sh scripts/gpu-kernel-profile.sh fw2 attn_fwd_wgmma_kernel 1 $B $K > $O/p-fw2.txt 2>&1; t profiled; tail -6 $O/p-fw2.txt
find $O -name '*.json' -size +100k -delete; find $O -name '*.jsonl' -delete
tar czf $OUT/o.tgz -C $OUT o
