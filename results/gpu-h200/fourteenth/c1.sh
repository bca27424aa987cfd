#!/bin/sh
# call 1: f3 (DMABENCH_DECODE_FUSED=3: the cluster kernel samples and scans z itself, one launch) against f1 and f2; then checks
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=8
NEW=./gpupack/new/dmabench
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader > $O/gpu.txt
dec() { env $4 timeout 40 $NEW kernels --backend cuda --b 1 --hq 32 --hkv 8 --d 128 --dtype bf16 --mode decode --w 1024 --warmup 5 --repeats 40 --variants dma --dma-z $3 --n $2 --check-n 0 --out $O/d-$1.json > $O/d-$1.log 2>&1; echo "$1 rc=$? $(grep -E '^\| dma' $O/d-$1.log | cut -d'|' -f6,11,12)"; }
for r in 1 2; do
  dec f1-524k-$r 524288 random X=0; dec f2-524k-$r 524288 random DMABENCH_DECODE_FUSED=2; dec f3-524k-$r 524288 random DMABENCH_DECODE_FUSED=3
done
for k in 65536 8192; do
  dec f1-$k $k random X=0; dec f2-$k $k random DMABENCH_DECODE_FUSED=2; dec f3-$k $k random DMABENCH_DECODE_FUSED=3
done
dec f3-clus 524288 clustered DMABENCH_DECODE_FUSED=3; dec f3-rise 524288 rising DMABENCH_DECODE_FUSED=3
echo "[$(( $(date +%s)-S0 ))s] timings done"
v() { (env $2 timeout 200 $NEW verify --backend cuda --dtype $3 --variants dma --quiet --out $O/v-$1.json > $O/v-$1.log 2>&1; echo $? > $O/v-$1.rc) & }
v f3-bf16 DMABENCH_DECODE_FUSED=3 bf16; v f3-f16 DMABENCH_DECODE_FUSED=3 f16; v f1-bf16 X=0 bf16; v f2-bf16 DMABENCH_DECODE_FUSED=2 bf16; v f0-bf16 DMABENCH_DECODE_FUSED=0 bf16
(DMABENCH_DECODE_FUSED=3 timeout 200 $NEW kernels --backend cuda --variants dma --n 70000,131072 --w 1024,4096 --b 1 --hq 8 --hkv 2 --d 128 --dtype bf16 --mode decode --dma-z random,clustered,rising --check-n 131072 --warmup 1 --repeats 3 --out $O/kz.json > $O/kz.log 2>&1; echo $? > $O/kz.rc) &
(DMABENCH_DECODE_FUSED=3 timeout 200 compute-sanitizer --tool memcheck --error-exitcode 9 $NEW kernels --backend cuda --variants dma --n 5000 --w 1024 --b 1 --hq 8 --hkv 2 --d 128,64 --mode decode --dma-z random,rising --check-n 5000 --warmup 0 --repeats 1 > $O/san-mem.log 2>&1; echo $? > $O/san-mem.rc) &
(DMABENCH_DECODE_FUSED=3 timeout 200 compute-sanitizer --tool racecheck --error-exitcode 9 $NEW kernels --backend cuda --variants dma --n 5000 --w 1024 --b 1 --hq 8 --hkv 2 --d 128 --mode decode --check-n 5000 --warmup 0 --repeats 1 > $O/san-race.log 2>&1; echo $? > $O/san-race.rc) &
wait
for n in f3-bf16 f3-f16 f1-bf16 f2-bf16 f0-bf16; do echo "verify $n rc=$(cat $O/v-$n.rc) $(grep '^verify:' $O/v-$n.log | tail -1)"; done
echo "full-size decode checks (f3) rc=$(cat $O/kz.rc) ok=$(grep -c '"status":[[:space:]]*"ok"' $O/kz.json) of 12"
echo "memcheck rc=$(cat $O/san-mem.rc) $(grep 'ERROR SUMMARY' $O/san-mem.log)"; echo "racecheck rc=$(cat $O/san-race.rc) $(grep 'RACECHECK SUMMARY' $O/san-race.log)"
echo "[$(( $(date +%s)-S0 ))s] done"
rm -f $O/v-*.json
tar czf $OUT/o.tgz -C $OUT o
