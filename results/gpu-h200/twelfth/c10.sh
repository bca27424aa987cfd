#!/bin/sh
# call 10: the final code (fused launch config and 16-bit stores shared): verify bf16/f16, decode timing
B=./gpubuild/dmabench; O=$OUT/o; mkdir -p $O
export OMP_WAIT_POLICY=passive
(OMP_NUM_THREADS=6 timeout 120 $B verify --backend cuda --dtype bf16 --quiet --out $O/v-bf16.json > $O/v-bf16.log 2>&1; echo $? > $O/v-bf16.rc) &
(OMP_NUM_THREADS=6 timeout 120 $B verify --backend cuda --dtype f16 --quiet --out $O/v-f16.json > $O/v-f16.log 2>&1; echo $? > $O/v-f16.rc) &
wait
for n in v-bf16 v-f16; do echo "$n rc=$(cat $O/$n.rc) $(grep '^verify:' $O/$n.log | tail -1)"; done
timeout 40 $B kernels --backend cuda --b 1 --hq 32 --hkv 8 --d 128 --dtype bf16 --mode decode --w 1024 --warmup 5 --repeats 30 --variants dma --n 524288 --out $O/k-dec.json > $O/k-dec.log 2>&1; grep -E '^\| dma' $O/k-dec.log | cut -d'|' -f2,6,11,12
tar czf $OUT/o.tgz -C $OUT o
