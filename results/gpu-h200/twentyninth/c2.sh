#!/bin/sh
# p31a (main at efa68ed) against p31b (br1 taken out; l3: no end-of-block barrier on dma's look-ahead path) at
# the paper shape, alternated twice; p31b's verify (every variant bf16; dma f16, without O's residual, without
# the saved area); racecheck and memcheck over verify's whole dma grid; where p31b's 4-byte spill sits.
for p in p31a p31b; do [ -d gpupack/$p ] || tar xJf gpupack/$p.tar.xz -C gpupack; done
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
K="kernels --backend cuda --dtype bf16 --warmup 2 --repeats 5 --check-n 0 --w 1024 --b 1 --hq 32 --hkv 8 --d 128 --mode fwdbwd --variants dma"
med() { grep -E '^\| dma' $1 | cut -d'|' -f4,11 | tr '\n' ' '; }
for r in 1 2; do for p in p31a p31b; do
  timeout 60 ./gpupack/$p/dmabench $K --n 8192 --out $O/$p-8-$r.json > $O/$p-8-$r.log 2>&1; echo "$p 8192 r$r rc=$? $(med $O/$p-8-$r.log)"
done; done
for r in 1 2; do for p in p31a p31b; do
  timeout 90 ./gpupack/$p/dmabench $K --n 65536 --repeats 3 --out $O/$p-65-$r.json > $O/$p-65-$r.log 2>&1; echo "$p 65536 r$r rc=$? $(med $O/$p-65-$r.log)"
done; done
t timed
tar czf $OUT/o.tgz -C $OUT o
B=./gpupack/p31b/dmabench; V="verify --backend cuda --quiet"
timeout 280 $B $V --dtype bf16 --out $O/v-bf16.json > $O/v-bf16.log 2>&1 &
timeout 280 $B $V --dtype f16 --variants dma --out $O/v-f16.json > $O/v-f16.log 2>&1 &
DMABENCH_DMA_RESIDUAL=0 timeout 280 $B $V --dtype bf16 --variants dma --out $O/vr.json > $O/vr.log 2>&1 &
DMABENCH_DMA_SAVED=0 timeout 280 $B $V --dtype bf16 --variants dma --out $O/vs.json > $O/vs.log 2>&1 &
for tl in memcheck racecheck; do
  timeout 300 compute-sanitizer --tool $tl --error-exitcode 9 $B $V --variants dma --out $O/s-$tl.json > $O/s-$tl.log 2>&1 &
done
DMABENCH_DMA_RESIDUAL=0 timeout 300 compute-sanitizer --tool racecheck --error-exitcode 9 $B kernels --backend cuda --dtype bf16 --warmup 0 --repeats 1 --n 300,2048 --w 128 --b 1 --hq 8 --hkv 2 --d 128,64 --mode fwdbwd --variants dma --out $O/sr.json > $O/sr.log 2>&1 &
( cuobjdump -sass gpupack/p31b/dmabench > $O/all.sass 2>&1 || cuobjdump -sass gpupack/p31b/lib/*.so > $O/all.sass 2>&1
  awk '/Function :/ {f=$0} f ~ /bwd_main_kernelI13__nv_bfloat16Li128ELi128ELb0ELi1E/ {print}' $O/all.sass > $O/l3-main.sass; rm -f $O/all.sass
  grep -nE 'STL|LDL|BAR.SYNC|EXIT' $O/l3-main.sass | head -40 > $O/l3-spill.txt ) &
wait
for f in v-bf16 v-f16 vr vs s-memcheck s-racecheck; do echo "$f: $(grep -E '^verify:' $O/$f.log) $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' $O/$f.log | tail -1)"; done
echo "sr: $(grep -cE '^\| ' $O/sr.log) rows; $(grep -E 'RACECHECK SUMMARY' $O/sr.log | tail -1)"
cat $O/l3-spill.txt
t done
find $O -name '*.json' -size +100k -delete
tar czf $OUT/o.tgz -C $OUT o
