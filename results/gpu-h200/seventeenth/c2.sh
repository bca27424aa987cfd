#!/bin/sh
# call 2 (seventeenth set): o2 (o1 + contiguous key blocks loaded without per-key metadata) and o3 (o2 + one barrier per block)
# against main: mha fwd at 8192/16384 and the model's shape; swa/dma/nsa at 65536; SDPA; Nsight Compute of o3; checks of o2 and o3
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=8
MAIN=./gpupack/main/dmabench O2=./gpupack/o2/dmabench O3=./gpupack/o3/dmabench
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader > $O/gpu.txt; cat $O/gpu.txt
okc() { grep -c '"status":[[:space:]]*"ok"' $1; }
for x in o2:$O2 o3:$O3; do n=${x%%:*}; bin=${x#*:}
timeout 60 $bin kernels --backend cuda --variants mha,swa,dma,nsa --n 300,2048 --w 256 --b 2 --hq 4 --hkv 2 --d 128,64 --dtype bf16 --mode fwd --warmup 0 --repeats 1 --out $O/q-$n.json > $O/q-$n.log 2>&1; echo "quick $n rc=$? ok=$(okc $O/q-$n.json) of 16"
done
K="kernels --backend cuda --dtype bf16 --warmup 2 --repeats 7 --check-n 0"
k() { env $3 timeout 120 $2 $K $4 --out $O/k-$1.json > $O/k-$1.log 2>&1; echo "$1 rc=$? $(grep -E '^\| (mha|dma|swa|nsa)' $O/k-$1.log | cut -d'|' -f2,4,6,9,11,12 | tr '\n' ' ')"; }
t kernels
for r in 1 2 3; do
  for x in main:$MAIN o2:$O2 o3:$O3; do n=${x%%:*}; bin=${x#*:}
    k $n-8192-$r $bin X=0 "--mode fwd --variants mha --n 8192,16384 --b 1 --hq 32 --hkv 8 --d 128"
    k $n-model-$r $bin X=0 "--mode fwd --variants mha --n 2048 --b 8 --hq 6 --hkv 3 --d 128"
  done
done
for x in main:$MAIN o3:$O3; do n=${x%%:*}; bin=${x#*:}
  k $n-65k $bin X=0 "--mode fwd --variants swa,dma,nsa --n 65536 --w 1024 --b 1 --hq 32 --hkv 8 --d 128"
  k $n-fb $bin X=0 "--mode fwdbwd --variants mha --n 2048 --b 8 --hq 6 --hkv 3 --d 128"
done
t sdpa
timeout 100 python3 scripts/sdpa_anchor.py > $O/sdpa.json 2> $O/sdpa.log; echo "sdpa rc=$?"; head -4 $O/sdpa.log
t profile
PR="kernels --backend cuda --variants mha --n 8192 --b 1 --hq 32 --hkv 8 --d 128 --dtype bf16 --mode fwd --warmup 1 --repeats 1 --check-n 0"
OUT=$O/prof timeout 120 sh scripts/gpu-kernel-profile.sh o3 attn_fwd_kernel 1 $O3 $PR 2>&1 | tail -8
t checks
for dt in bf16 f16; do (timeout 200 $O3 verify --backend cuda --dtype $dt --quiet --out $O/v-o3-$dt.json > $O/v-o3-$dt.log 2>&1; echo $? > $O/v-o3-$dt.rc) & done
(timeout 200 $O2 verify --backend cuda --dtype bf16 --quiet --out $O/v-o2-bf16.json > $O/v-o2-bf16.log 2>&1; echo $? > $O/v-o2-bf16.rc) &
(timeout 200 compute-sanitizer --tool memcheck --error-exitcode 9 $O3 verify --backend cuda --variants mha,swa,nsa --quiet > $O/san-mem.log 2>&1; echo $? > $O/san-mem.rc) &
(timeout 200 compute-sanitizer --tool racecheck --error-exitcode 9 $O3 verify --backend cuda --variants mha,dma --quiet > $O/san-race.log 2>&1; echo $? > $O/san-race.rc) &
(timeout 200 compute-sanitizer --tool synccheck --error-exitcode 9 $O3 verify --backend cuda --variants mha --quiet > $O/san-sync.log 2>&1; echo $? > $O/san-sync.rc) &
wait
for v in o3-bf16 o3-f16 o2-bf16; do echo "verify $v rc=$(cat $O/v-$v.rc) $(grep '^verify:' $O/v-$v.log | tail -1)"; grep FAIL $O/v-$v.log | head -3; done
echo "memcheck rc=$(cat $O/san-mem.rc) $(grep 'ERROR SUMMARY' $O/san-mem.log)"; echo "racecheck rc=$(cat $O/san-race.rc) $(grep 'RACECHECK SUMMARY' $O/san-race.log)"; echo "synccheck rc=$(cat $O/san-sync.rc) $(grep 'ERROR SUMMARY' $O/san-sync.log)"
t done
rm -f $O/v-*.json; find $O -name '*.json' -size +300k -delete; find $O -name '*.jsonl' -delete
tar czf $OUT/o.tgz -C $OUT o
