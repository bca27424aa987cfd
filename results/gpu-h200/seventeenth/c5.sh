#!/bin/sh
# call 5 (seventeenth set): k1 (a list's block entries read once per warp and shuffled to the copying rows) against main (o3):
# dma fwd and fwd+bwd at 8192 and 65536; k1's checks (verify, the opt-in kernels that share the copy, memcheck, racecheck)
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=8
MAIN=./gpupack/o3/dmabench K1=./gpupack/k1/dmabench
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader > $O/gpu.txt; cat $O/gpu.txt
okc() { grep -c '"status":[[:space:]]*"ok"' $1; }
timeout 60 $K1 kernels --backend cuda --variants dma,mha,nsa --n 300,2048 --w 256 --b 2 --hq 4 --hkv 2 --d 128,64 --dtype bf16 --mode fwdbwd --warmup 0 --repeats 1 --out $O/q-k1.json > $O/q-k1.log 2>&1; echo "quick k1 rc=$? ok=$(okc $O/q-k1.json) of 12"
K="kernels --backend cuda --dtype bf16 --warmup 2 --repeats 7 --check-n 0"
k() { env $3 timeout 120 $2 $K $4 --out $O/k-$1.json > $O/k-$1.log 2>&1; echo "$1 rc=$? $(grep -E '^\| (mha|dma|swa|nsa)' $O/k-$1.log | cut -d'|' -f2,4,6,9,11,12 | tr '\n' ' ')"; }
t kernels
for r in 1 2 3; do
  for x in main:$MAIN k1:$K1; do n=${x%%:*}; bin=${x#*:}
    k $n-8k-$r $bin X=0 "--mode fwd,fwdbwd --variants dma --n 8192 --w 1024 --b 1 --hq 32 --hkv 8 --d 128"
    k $n-65k-$r $bin X=0 "--mode fwd,fwdbwd --variants dma --n 65536 --w 1024 --b 1 --hq 32 --hkv 8 --d 128"
  done
done
t checks
for dt in bf16 f16; do (timeout 300 $K1 verify --backend cuda --dtype $dt --quiet --out $O/v-$dt.json > $O/v-$dt.log 2>&1; echo $? > $O/v-$dt.rc) & done
(env DMABENCH_CUDA_WGMMA=1 timeout 300 $K1 verify --backend cuda --variants mha,dma --quiet --out $O/v-wg.json > $O/v-wg.log 2>&1; echo $? > $O/v-wg.rc) &
(env DMABENCH_CUDA_WGMMA_BWD=1 DMABENCH_CUDA_BWD_KEYPAR=0 timeout 300 $K1 verify --backend cuda --variants dma,nsa --quiet --out $O/v-wgb.json > $O/v-wgb.log 2>&1; echo $? > $O/v-wgb.rc) &
(env DMABENCH_CUDA_BWD_TILE=64 DMABENCH_CUDA_BWD_KEYPAR=0 timeout 300 $K1 verify --backend cuda --variants dma --quiet --out $O/v-t64.json > $O/v-t64.log 2>&1; echo $? > $O/v-t64.rc) &
(timeout 380 compute-sanitizer --tool memcheck --error-exitcode 9 $K1 verify --backend cuda --variants dma --quiet > $O/san-mem.log 2>&1; echo $? > $O/san-mem.rc) &
(timeout 380 compute-sanitizer --tool racecheck --error-exitcode 9 $K1 verify --backend cuda --variants dma --quiet > $O/san-race.log 2>&1; echo $? > $O/san-race.rc) &
wait
for v in bf16 f16 wg wgb t64; do echo "verify $v rc=$(cat $O/v-$v.rc) $(grep '^verify:' $O/v-$v.log | tail -1)"; grep FAIL $O/v-$v.log | head -3; done
echo "memcheck rc=$(cat $O/san-mem.rc) $(grep 'ERROR SUMMARY' $O/san-mem.log)"; echo "racecheck rc=$(cat $O/san-race.rc) $(grep 'RACECHECK SUMMARY' $O/san-race.log)"
t done
rm -f $O/v-*.json; find $O -name '*.json' -size +300k -delete; find $O -name '*.jsonl' -delete
tar czf $OUT/o.tgz -C $OUT o
