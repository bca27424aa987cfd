#!/bin/sh
# p38b (as call 3). dma at 131072 and 262144, fwd and fwd+bwd (the default: fw1 in fwd+bwd), and fwd+bwd at 262144
# against WS=0 (one round).
[ -d gpupack/p38b ] || tar xJf gpupack/p38b.tar.xz -C gpupack
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=3
B=./gpupack/p38b/dmabench
K="--backend cuda --b 1 --hq 32 --hkv 8 --d 128 --dtype bf16 --w 1024"
timeout 300 $B kernels $K --variants dma --n 131072,262144 --mode fwd,fwdbwd --warmup 1 --repeats 3 --out $O/k-long.json > $O/k-long.txt 2>&1; echo "rc=$?"; grep -E "^\| dma|rror" $O/k-long.txt
echo "[$(( $(date +%s)-S0 ))s] long"
tar czf $OUT/o.tgz -C $OUT o
DMABENCH=$B OUT=$O/ab timeout 200 sh scripts/kernels-ab.sh 1 - DMABENCH_CUDA_FWD_WS=0 -- $K --check-n 0 --warmup 1 --repeats 3 --n 262144 --variants dma --mode fwdbwd > $O/ab.txt 2>&1; tail -3 $O/ab.txt
echo "[$(( $(date +%s)-S0 ))s] done"
find $O -name '*.json' -size +300k -delete; find $O -name '*.jsonl' -delete
tar czf $OUT/o.tgz -C $OUT o
