#!/bin/sh
# call 2 (build x: new plus DMABENCH_DECODE_TRACE, globaltimer stamps in the decode's kernels, a sync after each call): where the decode's time goes inside its kernels
O=$OUT/o; mkdir -p $O
X=./gpupack/x/dmabench
tr() { env DMABENCH_DECODE_TRACE=1 $3 timeout 40 $X kernels --backend cuda --b 1 --hq 32 --hkv 8 --d 128 --dtype bf16 --mode decode --w 1024 --warmup 5 --repeats 30 --variants dma --dma-z random --n $2 --check-n 0 --out $O/t-$1.json > $O/t-$1.log 2>$O/t-$1.err; echo "$1 rc=$? $(grep -E '^\| dma' $O/t-$1.log | cut -d'|' -f6,11,12)"; tail -3 $O/t-$1.err; }
for k in 524288 8192; do tr f1-$k $k X=0; tr f2-$k $k DMABENCH_DECODE_FUSED=2; tr f3-$k $k DMABENCH_DECODE_FUSED=3; done
tar czf $OUT/o.tgz -C $OUT o
