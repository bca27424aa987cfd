#!/bin/sh
# call 10 (the command line as run, on call 9's warm machine): f1 against f2 at K = 524288, nothing else on the GPU
O=$OUT/o; mkdir -p $O; for t in f1a f2a f1b f2b; do E=X=0; case $t in f2*) E=DMABENCH_DECODE_FUSED=2;; esac; env $E timeout 20 ./gpupack/new/dmabench kernels --backend cuda --b 1 --hq 32 --hkv 8 --d 128 --dtype bf16 --mode decode --w 1024 --warmup 5 --repeats 40 --variants dma --n 524288 --check-n 0 --out $O/t-$t.json > $O/t-$t.log 2>&1; echo "$t $(grep -E '^\| dma' $O/t-$t.log | cut -d'|' -f6,11,12)"; done; tar czf $OUT/o.tgz -C $OUT o
