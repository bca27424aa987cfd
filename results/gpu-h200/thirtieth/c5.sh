#!/bin/sh
# p32b (main at d5389a5): dma's fwd+bwd at 262144, the cell call 4's time limit cut (w 1024, paper shape, random z)
[ -d gpupack/p32b ] || tar xJf gpupack/p32b.tar.xz -C gpupack
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
B=./gpupack/p32b/dmabench
timeout 200 $B kernels --backend cuda --dtype bf16 --warmup 1 --repeats 3 --check-n 0 --b 1 --hq 32 --hkv 8 --d 128 \
  --mode fwdbwd --variants dma --n 262144 --w 1024 --out $O/k-dma262.json > $O/k-dma262.log 2>&1
echo "rc=$? $(grep -E '^\| dma' $O/k-dma262.log | cut -d'|' -f2,3,4,6,9,11,12,13- | cut -c1-200)"
echo "[$(( $(date +%s)-S0 ))s] done"
find $O -name '*.jsonl' -delete
tar czf $OUT/o.tgz -C $OUT o
