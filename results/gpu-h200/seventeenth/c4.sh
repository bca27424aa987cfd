#!/bin/sh
# call 4 (seventeenth set): main with o3: the long sequences not reached in call 3 (nsa at 131072 and 262144, dma fwd+bwd at 262144);
# Nsight Compute of dma's backward (query tiles) at 8192 and dma's forward at 65536
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=8
NEW=./gpupack/o3/dmabench
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader > $O/gpu.txt; cat $O/gpu.txt
K="kernels --backend cuda --dtype bf16 --warmup 1 --repeats 3 --check-n 0"
k() { env $3 timeout $5 $2 $K $4 --out $O/k-$1.json > $O/k-$1.log 2>&1; echo "$1 rc=$?"; grep -E '^\| (mha|dma|swa|nsa)' $O/k-$1.log | cut -d'|' -f2,4,6,9,11,12,13,14; }
t long
k dma262k $NEW X=0 "--mode fwdbwd --variants dma --n 262144 --w 1024 --b 1 --hq 32 --hkv 8 --d 128" 60
k nsa-long $NEW X=0 "--mode fwd,fwdbwd --variants nsa --n 131072,262144 --w 1024 --b 1 --hq 32 --hkv 8 --d 128" 300
t profile
PR="kernels --backend cuda --variants dma --n 8192 --w 1024 --b 1 --hq 32 --hkv 8 --d 128 --dtype bf16 --mode fwdbwd --warmup 1 --repeats 1 --check-n 0"
OUT=$O/prof timeout 120 sh scripts/gpu-kernel-profile.sh dmabwd bwd_main_kernel 1 $NEW $PR 2>&1 | tail -24
PR="kernels --backend cuda --variants dma --n 65536 --w 1024 --b 1 --hq 32 --hkv 8 --d 128 --dtype bf16 --mode fwd --warmup 1 --repeats 1 --check-n 0"
OUT=$O/prof timeout 120 sh scripts/gpu-kernel-profile.sh dmafwd attn_fwd_kernel 1 $NEW $PR 2>&1 | tail -24
t done
find $O -name '*.json' -size +300k -delete; find $O -name '*.jsonl' -delete
tar czf $OUT/o.tgz -C $OUT o
