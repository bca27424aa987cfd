#!/bin/sh
# call 4 (twenty-second set): main at n34: the long runs call 3's time limit cut (dma fwd+bwd, nsa fwd and fwd+bwd
# at 131072 and 262144)
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=16
B=./gpupack/main/dmabench
K="kernels --backend cuda --dtype bf16 --warmup 1 --repeats 3 --check-n 0"
k() { env $2 timeout $4 $B $K $3 --out $O/k-$1.json > $O/k-$1.log 2>&1; echo "$1 rc=$? $(grep -E '^\| (mha|dma|swa|nsa)' $O/k-$1.log | cut -d"|" -f2,3,4,6,9,11,12 | tr '\n' ' ')"; tar czf $OUT/o.tgz -C $OUT o; }
P="--b 1 --hq 32 --hkv 8 --d 128"
t long
k dmalong X=0 "--mode fwdbwd --variants dma --n 131072,262144 --w 1024 $P" 200
k nsalong X=0 "--mode fwd,fwdbwd --variants nsa --n 131072,262144 --w 512 $P" 330
t done
find $O -name '*.jsonl' -delete
tar czf $OUT/o.tgz -C $OUT o
