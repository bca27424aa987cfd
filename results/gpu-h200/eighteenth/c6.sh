#!/bin/sh
# call 6 (eighteenth set): main (6ce3604, the tidy build) at the long sequences: swa, dma and nsa fwd and fwd+bwd at
# N = 131072 and 262144, w 1024 as in the seventeenth set (dma's fwd+bwd with d8, nsa with n18)
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=8
B=./gpupack/tidy/dmabench
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader > $O/gpu.txt; cat $O/gpu.txt
K="kernels --backend cuda --dtype bf16 --warmup 1 --repeats 3 --check-n 0"
k() { env $2 timeout $4 $B $K $3 --out $O/k-$1.json > $O/k-$1.log 2>&1; echo "$1 rc=$?"; grep -E '^\| (mha|dma|swa|nsa)' $O/k-$1.log | cut -d'|' -f2,4,6,9,11,12,13,14; }
t long
k long X=0 "--mode fwd,fwdbwd --variants swa,dma --n 131072,262144 --w 1024 --b 1 --hq 32 --hkv 8 --d 128" 130
k long-nsa X=0 "--mode fwd,fwdbwd --variants nsa --n 131072,262144 --w 1024 --b 1 --hq 32 --hkv 8 --d 128" 190
t done
find $O -name '*.json' -size +300k -delete; find $O -name '*.jsonl' -delete
tar czf $OUT/o.tgz -C $OUT o
