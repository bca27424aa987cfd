#!/bin/sh
# call 5 (build xs: call 4's build plus globaltimer stamps, DMABENCH_DECODE_TRACE; a sync after each call): the staged f2's phases against f1's
O=$OUT/o; mkdir -p $O
tr() { env DMABENCH_DECODE_TRACE=1 $3 timeout 40 ./gpupack/xs/dmabench kernels --backend cuda --b 1 --hq 32 --hkv 8 --d 128 --dtype bf16 --mode decode --w 1024 --warmup 5 --repeats 30 --variants dma --dma-z random --n $2 --check-n 0 --out $O/t-$1.json > $O/t-$1.log 2>$O/t-$1.err; echo "$1 rc=$?"; }
tr f2-524288 524288 DMABENCH_DECODE_FUSED=2; tr f1-524288 524288 X=0; tr f2-65536 65536 DMABENCH_DECODE_FUSED=2
tar czf $OUT/o.tgz -C $OUT o
