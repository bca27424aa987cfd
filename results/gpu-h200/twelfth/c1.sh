#!/bin/sh
# call 1: f1 (dma decode's fused final select + attention): verify, sanitizers, timings
B=./gpubuild/dmabench; O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv > $O/nvidia-smi.csv; cat $O/nvidia-smi.csv
t verify
(OMP_NUM_THREADS=4 timeout 150 $B verify --backend cuda --variants dma --dtype bf16 --quiet --out $O/v-dma-bf16.json > $O/v-dma-bf16.log 2>&1; echo $? > $O/v-dma-bf16.rc) &
(OMP_NUM_THREADS=4 timeout 150 $B verify --backend cuda --variants dma --dtype f16 --quiet --out $O/v-dma-f16.json > $O/v-dma-f16.log 2>&1; echo $? > $O/v-dma-f16.rc) &
(OMP_NUM_THREADS=4 DMABENCH_DECODE_FUSED=0 timeout 150 $B verify --backend cuda --variants dma --dtype bf16 --quiet --out $O/v-dma-nofused.json > $O/v-dma-nofused.log 2>&1; echo $? > $O/v-dma-nofused.rc) &
(OMP_NUM_THREADS=4 DMABENCH_DECODE_SEL_SAMPLE=0 timeout 150 $B verify --backend cuda --variants dma --dtype bf16 --quiet --out $O/v-dma-exact.json > $O/v-dma-exact.log 2>&1; echo $? > $O/v-dma-exact.rc) &
wait
for n in v-dma-bf16 v-dma-f16 v-dma-nofused v-dma-exact; do echo "$n rc=$(cat $O/$n.rc) $(grep '^verify:' $O/$n.log | tail -1)"; grep -iE 'fail|error' $O/$n.log | head -5; done
KS="$B kernels --backend cuda --variants dma --mode decode --warmup 0 --repeats 1 --quiet"
t sanitize
for tool in memcheck racecheck synccheck; do
  (timeout 200 compute-sanitizer --tool $tool --error-exitcode 9 $KS --n 70000,5000 --check-n 70000 --w 1024,3000 --hq 32 --hkv 8 --d 128,64 --dma-z random,rising > $O/san-$tool.log 2>&1; echo "rc=$?" >> $O/san-$tool.log) &
done
wait
for tool in memcheck racecheck synccheck; do echo "$tool: $(tail -1 $O/san-$tool.log) $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY|SYNCCHECK SUMMARY' $O/san-$tool.log | tail -1)"; done
K="$B kernels --backend cuda --b 1 --hq 32 --hkv 8 --d 128 --dtype bf16 --mode decode --w 1024 --warmup 5 --repeats 30"
t decode
for r in 1 2; do
  for f in 1 0; do
    DMABENCH_DECODE_FUSED=$f timeout 60 $K --variants dma --n 524288,65536 --dma-z random,clustered,rising --out $O/k-dec-f$f-r$r.json > $O/k-dec-f$f-r$r.log 2>&1; echo "fused=$f run $r rc=$?"; grep -E '^\| dma' $O/k-dec-f$f-r$r.log | cut -c1-170
  done
done
timeout 60 $K --variants mha --n 524288 --out $O/k-dec-mha.json > $O/k-dec-mha.log 2>&1; grep -E '^\| mha' $O/k-dec-mha.log | cut -c1-170
t done
tar czf $OUT/o.tgz -C $OUT o
