#!/bin/sh
# call 4: dma decode at K = 524288 (random z) over the filter's CTAs per SM, fused and not; the fused kernel's time
B=./gpubuild/dmabench; O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
K="$B kernels --backend cuda --b 1 --hq 32 --hkv 8 --d 128 --dtype bf16 --mode decode --w 1024 --warmup 5 --repeats 50 --variants dma --n 524288"
for r in 1 2; do
  for c in 2 3 4 6 8; do
    DMABENCH_DECODE_SEL_CTAS=$c timeout 30 $K --out $O/k-c$c-r$r.json > $O/k-c$c-r$r.log 2>&1; echo "ctas=$c run $r: $(grep -E '^\| dma' $O/k-c$c-r$r.log | cut -d'|' -f11-12)"
  done
  DMABENCH_DECODE_FUSED=0 timeout 30 $K --out $O/k-nf-r$r.json > $O/k-nf-r$r.log 2>&1; echo "not fused run $r: $(grep -E '^\| dma' $O/k-nf-r$r.log | cut -d'|' -f11-12)"
done
t ncu
timeout 100 ncu --metrics gpu__time_duration.sum,launch__registers_per_thread $K --repeats 2 --warmup 1 --check-n 0 --quiet > $O/ncu.log 2>&1
grep -E "sel_|gpu__time" $O/ncu.log | tail -6 | cut -c1-120
t done
tar czf $OUT/o.tgz -C $OUT o
