#!/bin/sh
# call 1 (eighteenth set): d8 (dma's Dsum from O's rounding residual, kept in the saved area) against
# DMABENCH_DMA_RESIDUAL=0 (the first pass, as main) in one binary: dma bwd and fwd+bwd at 8192 and 65536,
# swa fwd+bwd at 65536; verify (bf16, f16, and bf16 without the residual), memcheck, racecheck
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=8
B=./gpupack/d8/dmabench
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader > $O/gpu.txt; cat $O/gpu.txt
okc() { grep -c '"status":[[:space:]]*"ok"' $1; }
timeout 40 $B kernels --backend cuda --variants dma --n 300,2048 --w 256 --b 2 --hq 4 --hkv 2 --d 128,64 --dtype bf16 --mode fwdbwd --warmup 0 --repeats 1 --out $O/q.json > $O/q.log 2>&1; echo "quick rc=$? ok=$(okc $O/q.json) of 4"
K="kernels --backend cuda --dtype bf16 --warmup 2 --repeats 7 --check-n 0"
k() { env $2 timeout 90 $B $K $3 --out $O/k-$1.json > $O/k-$1.log 2>&1; echo "$1 rc=$? $(grep -E '^\| (mha|dma|swa|nsa)' $O/k-$1.log | cut -d'|' -f2,4,5,6,9,11,12 | tr '\n' ' ')"; }
t kernels
for r in 1 2; do
  k base-$r DMABENCH_DMA_RESIDUAL=0 "--mode bwd,fwdbwd --variants dma --n 8192,65536 --w 1024 --b 1 --hq 32 --hkv 8 --d 128"
  k d8-$r X=0 "--mode bwd,fwdbwd --variants dma --n 8192,65536 --w 1024 --b 1 --hq 32 --hkv 8 --d 128"
done
k swa X=0 "--mode fwd,fwdbwd --variants swa --n 8192,65536 --w 1024 --b 1 --hq 32 --hkv 8 --d 128"
k dmafwd X=0 "--mode fwd --variants dma --n 8192,65536 --w 1024 --b 1 --hq 32 --hkv 8 --d 128"
t checks
for dt in bf16 f16; do (timeout 200 $B verify --backend cuda --variants dma --dtype $dt --quiet --out $O/v-$dt.json > $O/v-$dt.log 2>&1; echo $? > $O/v-$dt.rc) & done
(DMABENCH_DMA_RESIDUAL=0 timeout 200 $B verify --backend cuda --variants dma --dtype bf16 --quiet --out $O/v-nores.json > $O/v-nores.log 2>&1; echo $? > $O/v-nores.rc) &
(timeout 250 compute-sanitizer --tool memcheck --error-exitcode 9 $B verify --backend cuda --variants dma --quiet > $O/san-mem.log 2>&1; echo $? > $O/san-mem.rc) &
(timeout 200 compute-sanitizer --tool racecheck --error-exitcode 9 $B kernels --backend cuda --variants dma --n 300,2048 --w 256 --b 1 --hq 4 --hkv 2 --d 128,64 --dtype bf16 --mode fwdbwd --warmup 0 --repeats 1 --out $O/race.json > $O/san-race.log 2>&1; echo $? > $O/san-race.rc) &
wait
for v in bf16 f16 nores; do echo "verify $v rc=$(cat $O/v-$v.rc) $(grep '^verify:' $O/v-$v.log | tail -1)"; grep FAIL $O/v-$v.log | head -3; done
echo "memcheck rc=$(cat $O/san-mem.rc) $(grep 'ERROR SUMMARY' $O/san-mem.log)"; echo "racecheck rc=$(cat $O/san-race.rc) $(grep 'RACECHECK SUMMARY' $O/san-race.log) cells ok $(okc $O/race.json)"
t done
rm -f $O/v-*.json; find $O -name '*.json' -size +300k -delete; find $O -name '*.jsonl' -delete
tar czf $OUT/o.tgz -C $OUT o
