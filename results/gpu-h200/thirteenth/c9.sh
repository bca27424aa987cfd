#!/bin/sh
# call 9: f2, the fused decode kernel reading z itself (DMABENCH_DECODE_FUSED=2, no filter kernel): checks and timings
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=4
NEW=./gpupack/new/dmabench
(DMABENCH_DECODE_FUSED=2 timeout 150 $NEW verify --backend cuda --dtype bf16 --variants dma --quiet --out $O/v-f2.json > $O/v-f2.log 2>&1; echo $? > $O/v-f2.rc) &
(DMABENCH_DECODE_FUSED=2 timeout 150 $NEW verify --backend cuda --dtype f16 --variants dma --quiet --out $O/v-f2-f16.json > $O/v-f2-f16.log 2>&1; echo $? > $O/v-f2-f16.rc) &
(DMABENCH_DECODE_FUSED=2 timeout 150 $NEW kernels --backend cuda --variants dma --n 70000,131072 --w 1024,4096 --b 1 --hq 8 --hkv 2 --d 128 --dtype bf16 --mode decode --dma-z random,clustered,rising --check-n 131072 --warmup 1 --repeats 3 --out $O/kz.json > $O/kz.log 2>&1; echo $? > $O/kz.rc) &
(DMABENCH_DECODE_FUSED=2 timeout 150 compute-sanitizer --tool memcheck --error-exitcode 9 $NEW kernels --backend cuda --variants dma --n 5000 --w 1024 --b 1 --hq 8 --hkv 2 --d 128,64 --mode decode --dma-z random,rising --check-n 5000 --warmup 0 --repeats 1 > $O/san-mem.log 2>&1; echo $? > $O/san-mem.rc) &
(DMABENCH_DECODE_FUSED=2 timeout 150 compute-sanitizer --tool racecheck --error-exitcode 9 $NEW kernels --backend cuda --variants dma --n 5000 --w 1024 --b 1 --hq 8 --hkv 2 --d 128 --mode decode --check-n 5000 --warmup 0 --repeats 1 > $O/san-race.log 2>&1; echo $? > $O/san-race.rc) &
dec() { env $4 timeout 40 $NEW kernels --backend cuda --b 1 --hq 32 --hkv 8 --d 128 --dtype bf16 --mode decode --w 1024 --warmup 5 --repeats 40 --variants dma --dma-z $3 --n $2 --out $O/d-$1.json > $O/d-$1.log 2>&1; echo "$1 rc=$? $(grep -E '^\| dma' $O/d-$1.log | cut -d'|' -f2,6,11,12,14,16)"; }
sleep 1
for r in 1 2; do
  dec f1-rand-$r 524288 random X=0; dec f2-rand-$r 524288 random DMABENCH_DECODE_FUSED=2
done
dec f2-clus 524288 clustered DMABENCH_DECODE_FUSED=2; dec f2-rise 524288 rising DMABENCH_DECODE_FUSED=2
dec f1-65k 65536 random X=0; dec f2-65k 65536 random DMABENCH_DECODE_FUSED=2
wait
for n in v-f2 v-f2-f16; do echo "$n rc=$(cat $O/$n.rc) $(grep '^verify:' $O/$n.log | tail -1)"; done
echo "full-size decode checks rc=$(cat $O/kz.rc) ok=$(grep -c '"status":[[:space:]]*"ok"' $O/kz.json) of 12"
echo "memcheck rc=$(cat $O/san-mem.rc) $(grep 'ERROR SUMMARY' $O/san-mem.log)"; echo "racecheck rc=$(cat $O/san-race.rc) $(grep 'RACECHECK SUMMARY' $O/san-race.log)"
echo "[$(( $(date +%s)-S0 ))s] done"
rm -f $O/v-f2.json $O/v-f2-f16.json
tar czf $OUT/o.tgz -C $OUT o
