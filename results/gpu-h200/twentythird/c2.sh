#!/bin/sh
# call 2 (twenty-third set): the training bench, 131M model at 8192, batch 2: nsa with main, n35, n37, n38, n39, n40; dma with
# main and n36 (each alone on the GPU)
[ -d gpupack/main ] || tar xJf gpupack/packs.tar.xz -C gpupack
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=8
trn() { env $4 RUNS="$2" DMABENCH=$3 OUT=$O/train-$1 sh scripts/gpu-train-bench.sh 2>&1 | grep -v '^{' | grep -v H200 | sed "s/^/$1 /"; rm -f $O/train-$1/bytes.txt; tar czf $OUT/o.tgz -C $OUT o; }
t train
trn main "mha:8192:2 nsa:8192:2 dma:8192:2" ./gpupack/main/dmabench X=0
trn n35 "nsa:8192:2" ./gpupack/n35/dmabench X=0
trn n37 "nsa:8192:2" ./gpupack/n37/dmabench X=0
trn n38 "nsa:8192:2" ./gpupack/n38/dmabench X=0
trn n39 "nsa:8192:2" ./gpupack/n39/dmabench X=0
trn n40 "nsa:8192:2" ./gpupack/n40/dmabench X=0
trn n36 "dma:8192:2" ./gpupack/n36/dmabench X=0
trn main2 "nsa:8192:2" ./gpupack/main/dmabench X=0
trn n40b "nsa:8192:2" ./gpupack/n40/dmabench X=0
t done
find $O -name '*.jsonl' -delete
tar czf $OUT/o.tgz -C $OUT o
