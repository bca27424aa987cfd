#!/bin/sh
# call 6 (seventeenth set): k2 (dma's forward loads the next blocks' list entries and z a block ahead) against main (k1):
# dma fwd at 8192 and 65536, fwd+bwd at 8192, mha fwd at 8192; k2's verify, memcheck (dma) and racecheck (dma and mha cells)
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=8
MAIN=./gpupack/k1/dmabench K2=./gpupack/k2/dmabench
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader > $O/gpu.txt; cat $O/gpu.txt
okc() { grep -c '"status":[[:space:]]*"ok"' $1; }
timeout 40 $K2 kernels --backend cuda --variants dma,mha --n 300,2048 --w 256 --b 2 --hq 4 --hkv 2 --d 128,64 --dtype bf16 --mode fwdbwd --warmup 0 --repeats 1 --out $O/q-k2.json > $O/q-k2.log 2>&1; echo "quick k2 rc=$? ok=$(okc $O/q-k2.json) of 8"
K="kernels --backend cuda --dtype bf16 --warmup 2 --repeats 7 --check-n 0"
k() { env $3 timeout 60 $2 $K $4 --out $O/k-$1.json > $O/k-$1.log 2>&1; echo "$1 rc=$? $(grep -E '^\| (mha|dma|swa|nsa)' $O/k-$1.log | cut -d'|' -f2,4,6,9,11,12 | tr '\n' ' ')"; }
t kernels
for r in 1 2; do
  for x in k1:$MAIN k2:$K2; do n=${x%%:*}; bin=${x#*:}
    k $n-dma-$r $bin X=0 "--mode fwd --variants dma --n 8192,65536 --w 1024 --b 1 --hq 32 --hkv 8 --d 128"
  done
done
for x in k1:$MAIN k2:$K2; do n=${x%%:*}; bin=${x#*:}
  k $n-fb $bin X=0 "--mode fwdbwd --variants dma --n 8192 --w 1024 --b 1 --hq 32 --hkv 8 --d 128"
  k $n-mha $bin X=0 "--mode fwd --variants mha --n 8192 --b 1 --hq 32 --hkv 8 --d 128"
done
t checks
for dt in bf16 f16; do (timeout 150 $K2 verify --backend cuda --dtype $dt --quiet --out $O/v-$dt.json > $O/v-$dt.log 2>&1; echo $? > $O/v-$dt.rc) & done
(timeout 170 compute-sanitizer --tool memcheck --error-exitcode 9 $K2 verify --backend cuda --variants dma --quiet > $O/san-mem.log 2>&1; echo $? > $O/san-mem.rc) &
(timeout 150 compute-sanitizer --tool racecheck --error-exitcode 9 $K2 kernels --backend cuda --variants dma,mha --n 300,2048 --w 256 --b 1 --hq 4 --hkv 2 --d 128,64 --dtype bf16 --mode fwdbwd --warmup 0 --repeats 1 --out $O/race.json > $O/san-race.log 2>&1; echo $? > $O/san-race.rc) &
wait
for v in bf16 f16; do echo "verify $v rc=$(cat $O/v-$v.rc) $(grep '^verify:' $O/v-$v.log | tail -1)"; grep FAIL $O/v-$v.log | head -3; done
echo "memcheck rc=$(cat $O/san-mem.rc) $(grep 'ERROR SUMMARY' $O/san-mem.log)"; echo "racecheck rc=$(cat $O/san-race.rc) $(grep 'RACECHECK SUMMARY' $O/san-race.log) cells ok $(okc $O/race.json)"
t done
rm -f $O/v-*.json; find $O -name '*.json' -size +300k -delete; find $O -name '*.jsonl' -delete
tar czf $OUT/o.tgz -C $OUT o
