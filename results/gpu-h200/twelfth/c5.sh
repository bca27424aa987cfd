#!/bin/sh
# call 5: f1 third version (the chunk's K and V rows through cp.async into shared memory)
B=./gpubuild/dmabench; O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive
v() { n=$1 e=$2; shift 2; (env OMP_NUM_THREADS=4 $e timeout 150 $B verify --backend cuda --quiet --out $O/$n.json "$@" > $O/$n.log 2>&1; echo $? > $O/$n.rc) & }
v v-dma-bf16 X=1 --variants dma --dtype bf16
v v-dma-f16 X=1 --variants dma --dtype f16
v v-dma-exact DMABENCH_DECODE_SEL_SAMPLE=0 --variants dma --dtype bf16
KS="$B kernels --backend cuda --warmup 0 --repeats 1 --quiet --variants dma --mode decode --hq 32 --hkv 8"
(timeout 150 compute-sanitizer --tool memcheck --error-exitcode 9 $KS --n 70000,5000 --check-n 70000 --w 1024,2048,3000 --d 128,64 --dma-z random,rising > $O/san-mem-dec.log 2>&1; echo "rc=$?" >> $O/san-mem-dec.log) &
(timeout 150 compute-sanitizer --tool racecheck --error-exitcode 9 $KS --n 5000 --check-n 5000 --w 1024,2048 --d 128,64 > $O/san-race-dec.log 2>&1; echo "rc=$?" >> $O/san-race-dec.log) &
wait
for n in v-dma-bf16 v-dma-f16 v-dma-exact; do echo "$n rc=$(cat $O/$n.rc) $(grep '^verify:' $O/$n.log | tail -1)"; done
for n in san-mem-dec san-race-dec; do echo "$n: $(tail -1 $O/$n.log) $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' $O/$n.log | tail -1)"; done
K="$B kernels --backend cuda --b 1 --hq 32 --hkv 8 --d 128 --dtype bf16 --mode decode --w 1024 --warmup 5 --repeats 50 --variants dma"
t decode
for r in 1 2; do
  for f in 1 0; do
    DMABENCH_DECODE_FUSED=$f timeout 60 $K --n 524288,65536 --dma-z random,clustered,rising --out $O/k-dec-f$f-r$r.json > $O/k-dec-f$f-r$r.log 2>&1; echo "fused=$f run $r rc=$?"; grep -E '^\| dma' $O/k-dec-f$f-r$r.log | cut -d'|' -f2,6,11,12
  done
done
t ncu
timeout 100 ncu --metrics gpu__time_duration.sum,launch__registers_per_thread $K --n 524288 --repeats 2 --warmup 1 --check-n 0 --quiet > $O/ncu.log 2>&1
grep -E "sel_|gpu__time" $O/ncu.log | tail -6 | cut -c1-120
t done
tar czf $OUT/o.tgz -C $OUT o
