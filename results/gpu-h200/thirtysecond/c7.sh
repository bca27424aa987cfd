#!/bin/sh
# p34c: dma fwd+bwd at 262144 (paper shape), which call 6's time limit cut.
[ -d gpupack/p34c ] || tar xJf gpupack/p34c.tar.xz -C gpupack; mkdir -p $OUT/o; OMP_NUM_THREADS=8 timeout 170 ./gpupack/p34c/dmabench kernels --backend cuda --dtype bf16 --check-n 0 --mode fwdbwd --variants dma --n 262144 --w 1024 --b 1 --hq 32 --hkv 8 --d 128 --warmup 1 --repeats 3 --out $OUT/o/k-dma262.json > $OUT/o/k-dma262.log 2>&1; echo rc=$?; grep -E '^\| dma' $OUT/o/k-dma262.log; rm -f $OUT/o/*.jsonl; tar czf $OUT/o.tgz -C $OUT o
