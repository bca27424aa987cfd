#!/bin/sh
# call 2 (twenty-fifth set): the training bench for nsa at 8192, main and n48 alternated twice, then mha
for p in r2 n48; do [ -d gpupack/$p ] || tar xJf gpupack/$p.tar.xz -C gpupack; done
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=8
M=./gpupack/r2/dmabench B=./gpupack/n48/dmabench
trn() { RUNS="$2" DMABENCH=$3 OUT=$O/train-$1 sh scripts/gpu-train-bench.sh 2>&1 | grep -v '^{' | grep -v H200 | sed "s/^/$1 /"; rm -f $O/train-$1/bytes.txt; tar czf $OUT/o.tgz -C $OUT o; }
trn main "nsa:8192:2" $M; trn n48 "nsa:8192:2" $B; trn main-2 "nsa:8192:2" $M; trn n48-2 "nsa:8192:2" $B; trn mha "mha:8192:2" $B
t done
find $O -name '*.json' -size +300k -delete; find $O -name '*.jsonl' -delete; find $O -name '*.bin' -delete; find $O -name '*.safetensors' -delete
tar czf $OUT/o.tgz -C $OUT o
