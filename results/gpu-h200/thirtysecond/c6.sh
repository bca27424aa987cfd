#!/bin/sh
# p34c: swa and dma fwd and fwd+bwd at 131072 and 262144 (paper shape), then nsa at 131072 and 262144 (one repeat).
[ -d gpupack/p34c ] || tar xJf gpupack/p34c.tar.xz -C gpupack
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=4
B=./gpupack/p34c/dmabench
K="kernels --backend cuda --dtype bf16 --check-n 0"
k() { timeout ${3:-100} $B $K $2 --out $O/k-$1.json > $O/k-$1.log 2>&1; echo "$1 rc=$? $(grep -E '^\| (mha|dma|swa|nsa)' $O/k-$1.log | cut -d"|" -f2,3,4,6,9,11,12 | tr '\n' ' ')"; }
P="--b 1 --hq 32 --hkv 8 --d 128"
k big-sd "--mode fwd,fwdbwd --variants swa,dma --n 131072,262144 --w 1024 $P --warmup 1 --repeats 3" 170
t sd; tar czf $OUT/o.tgz -C $OUT o
k big-nsa "--mode fwd,fwdbwd --variants nsa --n 131072,262144 --w 512 $P --warmup 1 --repeats 1" 200
t done
find $O -name '*.json' -size +100k -delete; find $O -name '*.jsonl' -delete
tar czf $OUT/o.tgz -C $OUT o
