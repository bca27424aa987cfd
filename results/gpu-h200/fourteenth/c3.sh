#!/bin/sh
# call 3: z's prefetch (DMABENCH_DECODE_PF 0 line, 1 sector, 2 bulk) with f1/f2/f3, and clusters of 16 (build x16); then traces (builds x, x16)
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
dec() { env $4 timeout 40 ./gpupack/$5/dmabench kernels --backend cuda --b 1 --hq 32 --hkv 8 --d 128 --dtype bf16 --mode decode --w 1024 --warmup 5 --repeats 40 --variants dma --dma-z $3 --n $2 --check-n 0 --out $O/d-$1.json > $O/d-$1.log 2>$O/d-$1.err; echo "$1 rc=$? $(grep -E '^\| dma' $O/d-$1.log | cut -d'|' -f6,11,12) $(grep '^fused:' $O/d-$1.err)"; }
for r in 1 2; do
  for pf in 0 1 2; do dec f1-pf$pf-$r 524288 random "DMABENCH_DECODE_PF=$pf" new; dec f2-pf$pf-$r 524288 random "DMABENCH_DECODE_FUSED=2 DMABENCH_DECODE_PF=$pf" new; done
  dec f3-pf2-$r 524288 random "DMABENCH_DECODE_FUSED=3 DMABENCH_DECODE_PF=2" new
  dec c16-f1-pf2-$r 524288 random "DMABENCH_DECODE_PF=2" x16
  for pf in 0 2; do dec c16-f2-pf$pf-$r 524288 random "DMABENCH_DECODE_FUSED=2 DMABENCH_DECODE_PF=$pf" x16; done
  dec c16-f3-pf2-$r 524288 random "DMABENCH_DECODE_FUSED=3 DMABENCH_DECODE_PF=2" x16
done
for k in 65536 8192; do dec f1-pf0-$k $k random X=0 new; dec f2-pf2-$k $k random "DMABENCH_DECODE_FUSED=2 DMABENCH_DECODE_PF=2" new; dec c16-f2-pf2-$k $k random "DMABENCH_DECODE_FUSED=2 DMABENCH_DECODE_PF=2" x16; done
echo "[$(( $(date +%s)-S0 ))s] timings done"
tr() { env DMABENCH_DECODE_TRACE=1 $3 timeout 40 ./gpupack/$2/dmabench kernels --backend cuda --b 1 --hq 32 --hkv 8 --d 128 --dtype bf16 --mode decode --w 1024 --warmup 5 --repeats 30 --variants dma --dma-z random --n 524288 --check-n 0 --out $O/t-$1.json > $O/t-$1.log 2>$O/t-$1.err; echo "$1 rc=$?"; }
tr x-f1-pf2 x "DMABENCH_DECODE_PF=2"; tr x-f2-pf2 x "DMABENCH_DECODE_FUSED=2 DMABENCH_DECODE_PF=2"; tr x-f2-pf1 x "DMABENCH_DECODE_FUSED=2 DMABENCH_DECODE_PF=1"; tr x16-f2-pf2 x16 "DMABENCH_DECODE_FUSED=2 DMABENCH_DECODE_PF=2"; tr x16-f3-pf2 x16 "DMABENCH_DECODE_FUSED=3 DMABENCH_DECODE_PF=2"
echo "[$(( $(date +%s)-S0 ))s] done"
tar czf $OUT/o.tgz -C $OUT o
