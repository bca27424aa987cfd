#!/bin/sh
# p36a (main 96ade45 + the backward TM's proxy fence) and p36c (p36a + TM boxes a row a thread + dma's forward rows
# by tensor-memory boxes, DMABENCH_CUDA_FWD_TMA=0 keeps cp.async). Verify p36c (bf16, f16, KEYPAR=0, FWD_TMA=0,
# BWD_TMA=0); if all pass: A/B alternated of p36a, p36c FWD_TMA=0 and p36c: dma fwd and fwd+bwd at 8192 (3 rounds),
# 65536 (1 round).
[ -d gpupack/p36c ] || tar xJf gpupack/p36.tar.xz -C gpupack
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=3
A=./gpupack/p36a/dmabench B=./gpupack/p36c/dmabench
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader > $O/gpu.txt; cat $O/gpu.txt
v() { n=$1; e=$2; shift 2; env $e timeout 220 $B verify --backend cuda --quiet "$@" --out $O/v-$n.json > $O/v-$n.log 2>&1; echo "$?" > $O/v-$n.rc; }
v bf16 X=0 --dtype bf16 & v f16 X=0 --dtype f16 & v kp0 DMABENCH_CUDA_BWD_KEYPAR=0 --dtype bf16 &
v ft0 DMABENCH_CUDA_FWD_TMA=0 --dtype bf16 --variants dma & v bt0 DMABENCH_CUDA_BWD_TMA=0 --dtype bf16 --variants dma & wait; t verified
bad=0
for f in $O/v-*.log; do n=$(basename $f .log); r=$(grep passed $f | tail -1); echo "$n rc=$(cat $O/$n.rc): $r"; echo "$r" | grep -q ' 0 failed' || { bad=1; grep -m8 -E "FAIL|fail" $f; }; done
tar czf $OUT/o.tgz -C $OUT o
[ $bad = 0 ] || exit 0
AB="--backend cuda --dtype bf16 --warmup 2 --repeats 5 --check-n 0 --b 1 --hq 32 --hkv 8 --d 128 --w 1024 --variants dma --mode fwd,fwdbwd"
OUT=$O/ab8k timeout 220 sh scripts/kernels-ab.sh 3 DMABENCH=$A DMABENCH=$B+DMABENCH_CUDA_FWD_TMA=0 DMABENCH=$B -- $AB --n 8192 > $O/ab8k.txt 2>&1; tail -5 $O/ab8k.txt
tar czf $OUT/o.tgz -C $OUT o
OUT=$O/ab65 timeout 130 sh scripts/kernels-ab.sh 1 DMABENCH=$A DMABENCH=$B+DMABENCH_CUDA_FWD_TMA=0 DMABENCH=$B -- $AB --n 65536 --repeats 3 > $O/ab65.txt 2>&1; tail -5 $O/ab65.txt
t done
find $O -name '*.json' -size +100k -delete; find $O -name '*.jsonl' -delete
tar czf $OUT/o.tgz -C $OUT o
