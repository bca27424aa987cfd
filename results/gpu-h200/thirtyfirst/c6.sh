#!/bin/sh
# p33d: dma fwd+bwd at 131072 and 262144 (c5's time limit cut them), rw1 the default
[ -d gpupack/p33d ] || tar xJf gpupack/p33d.tar.xz -C gpupack
O=$OUT/o; mkdir -p $O
B=./gpupack/p33d/dmabench
timeout 190 $B kernels --backend cuda --dtype bf16 --check-n 0 --mode fwdbwd --variants dma --n 131072,262144 --w 1024 --b 1 --hq 32 --hkv 8 --d 128 --warmup 1 --repeats 3 --out $O/k-big-dma.json > $O/k-big-dma.log 2>&1
echo "rc=$? $(grep -E '^\| dma' $O/k-big-dma.log | cut -d"|" -f2,3,4,6,9,11,12 | tr '\n' ' ')"
find $O -name '*.jsonl' -delete
tar czf $OUT/o.tgz -C $OUT o
