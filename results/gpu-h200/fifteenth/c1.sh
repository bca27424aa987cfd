#!/bin/sh
# call 1: l1 (the scans of z with a hit mask per thread, one prefix scan and atomic per warp) against main's build, alternating; then l1's checks
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=8
NEW=./gpupack/new/dmabench; OLD=./gpupack/old/dmabench
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader > $O/gpu.txt
dec() { env $5 timeout 40 $4 kernels --backend cuda --b 1 --hq 32 --hkv 8 --d 128 --dtype bf16 --mode decode --w 1024 --warmup 5 --repeats 40 --variants dma --dma-z $3 --n $2 --check-n 0 --out $O/d-$1.json > $O/d-$1.log 2>&1; echo "$1 rc=$? $(grep -E '^\| dma' $O/d-$1.log | cut -d'|' -f6,11,12)"; }
for r in 1 2 3; do dec old-524k-$r 524288 random $OLD X=0; dec new-524k-$r 524288 random $NEW X=0; done
for r in 1 2; do dec old-f1-524k-$r 524288 random $OLD DMABENCH_DECODE_FUSED=1; dec new-f1-524k-$r 524288 random $NEW DMABENCH_DECODE_FUSED=1; done
for z in clustered rising; do dec old-$z 524288 $z $OLD X=0; dec new-$z 524288 $z $NEW X=0; done
for k in 65536 8192; do dec old-$k $k random $OLD X=0; dec new-$k $k random $NEW X=0; done
echo "[$(( $(date +%s)-S0 ))s] timings done"
v() { (env $2 timeout 240 $NEW verify --backend cuda --dtype $3 --variants dma --quiet --out $O/v-$1.json > $O/v-$1.log 2>&1; echo $? > $O/v-$1.rc) & }
v f2-bf16 X=0 bf16; v f2-f16 X=0 f16; v f1-bf16 DMABENCH_DECODE_FUSED=1 bf16; v f0-bf16 DMABENCH_DECODE_FUSED=0 bf16
k() { (env $2 timeout 240 $NEW kernels --backend cuda --variants dma $3 --dtype bf16 --mode decode --dma-z random,clustered,rising --warmup 1 --repeats 3 --out $O/$1.json > $O/$1.log 2>&1; echo $? > $O/$1.rc) & }
k kz X=0 "--n 70000,131072 --w 1024,4096 --b 1 --hq 8 --hkv 2 --d 128 --check-n 131072"
k kt X=0 "--n 600000,1048576 --w 1024,2048 --b 1 --hq 4 --hkv 1 --d 64 --check-n 1048576"
k kz1 DMABENCH_DECODE_FUSED=1 "--n 70000,131072 --w 1024,4096 --b 1 --hq 8 --hkv 2 --d 128 --check-n 131072"
(timeout 240 compute-sanitizer --tool memcheck --error-exitcode 9 $NEW kernels --backend cuda --variants dma --n 5000,600000 --w 1024 --b 1 --hq 4 --hkv 1 --d 128,64 --mode decode --dma-z random,rising --check-n 600000 --warmup 0 --repeats 1 > $O/san-mem.log 2>&1; echo $? > $O/san-mem.rc) &
(DMABENCH_DECODE_FUSED=1 timeout 240 compute-sanitizer --tool memcheck --error-exitcode 9 $NEW kernels --backend cuda --variants dma --n 5000,600000 --w 1024 --b 1 --hq 4 --hkv 1 --d 64 --mode decode --dma-z random,rising --check-n 600000 --warmup 0 --repeats 1 > $O/san-mem1.log 2>&1; echo $? > $O/san-mem1.rc) &
(timeout 240 compute-sanitizer --tool racecheck --error-exitcode 9 $NEW kernels --backend cuda --variants dma --n 5000 --w 1024 --b 1 --hq 8 --hkv 2 --d 128 --mode decode --dma-z random,rising --check-n 5000 --warmup 0 --repeats 1 > $O/san-race.log 2>&1; echo $? > $O/san-race.rc) &
(DMABENCH_DECODE_FUSED=1 timeout 240 compute-sanitizer --tool racecheck --error-exitcode 9 $NEW kernels --backend cuda --variants dma --n 5000 --w 1024 --b 1 --hq 8 --hkv 2 --d 128 --mode decode --dma-z random --check-n 5000 --warmup 0 --repeats 1 > $O/san-race1.log 2>&1; echo $? > $O/san-race1.rc) &
wait
for n in f2-bf16 f2-f16 f1-bf16 f0-bf16; do echo "verify $n rc=$(cat $O/v-$n.rc) $(grep '^verify:' $O/v-$n.log | tail -1)"; done
echo "full-size decode (default) rc=$(cat $O/kz.rc) ok=$(grep -c '"status":[[:space:]]*"ok"' $O/kz.json) of 12"
echo "full-size decode (FUSED=1) rc=$(cat $O/kz1.rc) ok=$(grep -c '"status":[[:space:]]*"ok"' $O/kz1.json) of 12"
echo "past 512k (default) rc=$(cat $O/kt.rc) ok=$(grep -c '"status":[[:space:]]*"ok"' $O/kt.json) of 12"
for s in mem mem1; do echo "memcheck $s rc=$(cat $O/san-$s.rc) $(grep 'ERROR SUMMARY' $O/san-$s.log)"; done
for s in race race1; do echo "racecheck $s rc=$(cat $O/san-$s.rc) $(grep 'RACECHECK SUMMARY' $O/san-$s.log)"; done
echo "[$(( $(date +%s)-S0 ))s] done"
rm -f $O/v-*.json
tar czf $OUT/o.tgz -C $OUT o
