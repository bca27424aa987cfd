#!/bin/sh
# call 1: dma decode's stages in the stream (experiment build gpupack/x: DMABENCH_DECODE_X stops early; CARVEOUT)
O=$OUT/o; mkdir -p $O
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv > $O/smi.txt
B=./gpupack/x/dmabench
run() { # tag K env...
  tag=$1; K=$2; shift 2
  env "$@" timeout 60 $B kernels --backend cuda --b 1 --hq 32 --hkv 8 --d 128 --dtype bf16 --mode decode --w 1024 --warmup 5 --repeats 40 --variants dma --n $K --check-n 0 --out $O/k-$tag-$K.json > $O/k-$tag-$K.log 2>&1
  echo "$tag K=$K $(grep -E '^\| dma' $O/k-$tag-$K.log | cut -d'|' -f6,11,12)"
}
for K in 524288 65536 8192; do
  for r in 1 2; do
    run base$r $K X=0
    run carve$r $K DMABENCH_DECODE_CARVEOUT=1
    run x1r$r $K DMABENCH_DECODE_X=1
    run x2r$r $K DMABENCH_DECODE_X=2
    run x3r$r $K DMABENCH_DECODE_X=3
    run x4r$r $K DMABENCH_DECODE_X=4
    run x5r$r $K DMABENCH_DECODE_X=5
  done
done 2>&1 | tee $O/summary.txt
tar czf $OUT/o.tgz -C $OUT o
