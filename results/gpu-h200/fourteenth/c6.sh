#!/bin/sh
# call 6: f2 (the cluster kernel reading z itself) as the default against DMABENCH_DECODE_FUSED=1 (after the filter kernel); then tests/gpu.sh's verify part and the sanitizers on the default decode
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=8
NEW=./gpupack/new/dmabench
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader > $O/gpu.txt
dec() { env $4 timeout 40 $NEW kernels --backend cuda --b 1 --hq 32 --hkv 8 --d 128 --dtype bf16 --mode decode --w 1024 --warmup 5 --repeats 40 --variants ${5:-dma} --dma-z $3 --n $2 --check-n 0 --out $O/d-$1.json > $O/d-$1.log 2>&1; echo "$1 rc=$? $(grep -E '^\| (dma|mha)' $O/d-$1.log | cut -d'|' -f6,11,12)"; }
for r in 1 2 3; do dec def-524k-$r 524288 random X=0; dec f1-524k-$r 524288 random DMABENCH_DECODE_FUSED=1; done
for z in clustered rising; do dec def-$z 524288 $z X=0; dec f1-$z 524288 $z DMABENCH_DECODE_FUSED=1; done
for k in 65536 8192; do dec def-$k $k random X=0; dec f1-$k $k random DMABENCH_DECODE_FUSED=1; done
dec mha-524k 524288 random X=0 mha
echo "[$(( $(date +%s)-S0 ))s] timings done"
(timeout 200 compute-sanitizer --tool memcheck --error-exitcode 9 $NEW kernels --backend cuda --variants dma --n 5000,600000 --w 1024 --b 1 --hq 4 --hkv 1 --d 128,64 --mode decode --dma-z random,rising --check-n 600000 --warmup 0 --repeats 1 > $O/san-mem.log 2>&1; echo $? > $O/san-mem.rc) &
(timeout 200 compute-sanitizer --tool racecheck --error-exitcode 9 $NEW kernels --backend cuda --variants dma --n 5000 --w 1024 --b 1 --hq 8 --hkv 2 --d 128 --mode decode --dma-z random,rising --check-n 5000 --warmup 0 --repeats 1 > $O/san-race.log 2>&1; echo $? > $O/san-race.rc) &
DMABENCH_GPU=1 DMABENCH=$NEW DMABENCH_GPU_PART=verify DMABENCH_GPU_JOBS=10 DMABENCH_GPU_KEEP=$O/gpu-verify timeout 380 sh tests/gpu.sh > $O/gpu-verify.log 2>&1; echo "gpu.sh verify rc=$?"
wait
grep -c '^ok' $O/gpu-verify.log | sed 's/^/ok lines: /'; grep '^not ok' $O/gpu-verify.log | head; tail -2 $O/gpu-verify.log
echo "memcheck rc=$(cat $O/san-mem.rc) $(grep 'ERROR SUMMARY' $O/san-mem.log)"; echo "racecheck rc=$(cat $O/san-race.rc) $(grep 'RACECHECK SUMMARY' $O/san-race.log)"
echo "[$(( $(date +%s)-S0 ))s] done"
find $O/gpu-verify -name '*.json' -size +200k -delete 2>/dev/null
tar czf $OUT/o.tgz -C $OUT o
