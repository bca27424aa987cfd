#!/bin/sh
# call 5 (nineteenth set): n22 (main after the merge): the training bench (mha at 2048; mha, dma, nsa at 8192), then nsa
# at the long sequences (fwd and fwd+bwd at 131072 and 262144, w 1024, as in the eighteenth set's call 6)
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=8
B=./gpupack/n22/dmabench
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader > $O/gpu.txt; cat $O/gpu.txt
t train
DMABENCH=$B OUT=$O/train sh scripts/gpu-train-bench.sh 2>&1 | grep -v '^{'
rm -f $O/train/bytes.txt
tar czf $OUT/o.tgz -C $OUT o
t long
K="kernels --backend cuda --dtype bf16 --warmup 1 --repeats 3 --check-n 0"
timeout 170 $B $K --mode fwd,fwdbwd --variants nsa --n 131072,262144 --w 1024 --b 1 --hq 32 --hkv 8 --d 128 --out $O/k-long-nsa.json > $O/k-long-nsa.log 2>&1; echo "long-nsa rc=$?"
grep -E '^\| nsa' $O/k-long-nsa.log | cut -d'|' -f2,4,6,9,11,12,13,14
t done
find $O -name '*.json' -size +300k -delete
tar czf $OUT/o.tgz -C $OUT o
