#!/bin/sh
# p35i: the final tree (the reducer tiles' K/V rows by tensor-memory copies as in p35g; the tensor-map encoder now
# looked up once in cuda_rt.cu for the backward and the probe): dma verify in bf16 and the probe's gathers, small.
[ -d gpupack/p35i ] || tar xJf gpupack/p35i.tar.xz -C gpupack
O=$OUT/o; mkdir -p $O
B=./gpupack/p35i/dmabench
timeout 100 $B verify --backend cuda --quiet --dtype bf16 --variants dma,mha --out $O/v.json > $O/v.log 2>&1; echo "verify rc=$?: $(grep passed $O/v.log | tail -1)"
timeout 60 $B probe --ops rows-cp,rows-tma,rows-tma2 --iters 8 --warmup 0 --repeats 1 --ctas-per-sm 1 > $O/p.txt 2>&1; echo "probe rc=$?"; grep '^| rows' $O/p.txt
tar czf $OUT/o.tgz -C $OUT o
