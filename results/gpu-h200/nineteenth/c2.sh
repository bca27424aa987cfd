#!/bin/sh
# call 2 (nineteenth set): tidy2 (the key loads' per-thread setup in KeyRowCopy; a range block's full flag from
# load_kv through sFull; dma's z prefetch and nsa's masked p as one lambda each; the pair loop through nsa_overlap)
# against main (n20) alternated twice; PyTorch SDPA's anchors; where nsa's fwd+bwd at 65536 and its training step at
# 8192 spend their kernel time; tidy2's verify (bf16, f16, wgmma forward and backward) and sanitizers on forward cells
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=4
MAIN=./gpupack/main/dmabench B=./gpupack/tidy2/dmabench
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader > $O/gpu.txt; cat $O/gpu.txt
okc() { grep -c '"status":[[:space:]]*"ok"' $1; }
K="kernels --backend cuda --dtype bf16 --warmup 2 --repeats 5 --check-n 0"
k() { env $3 timeout 90 $2 $K $4 --out $O/k-$1.json > $O/k-$1.log 2>&1; echo "$1 rc=$? $(grep -E '^\| (mha|dma|swa|nsa)' $O/k-$1.log | cut -d'|' -f2,4,5,6,9,11 | tr '\n' ' ')"; }
t kernels
for r in 1 2; do
  for x in main:$MAIN tidy2:$B; do n=${x%%:*}; bin=${x#*:}
    k $n-a-$r $bin X=0 "--mode fwd --variants mha --n 8192 --b 1 --hq 32 --hkv 8 --d 128"
    k $n-b-$r $bin X=0 "--mode fwd --variants dma,swa --n 8192,65536 --w 1024 --b 1 --hq 32 --hkv 8 --d 128"
    k $n-c-$r $bin X=0 "--mode fwdbwd --variants dma --n 8192 --w 1024 --b 1 --hq 32 --hkv 8 --d 128"
  done
done
t sdpa
timeout 100 python3 scripts/sdpa_anchor.py > $O/sdpa.json 2> $O/sdpa.log; echo "sdpa rc=$?"; cat $O/sdpa.log | head -8
t profiles
PK="kernels --backend cuda --b 1 --hq 32 --hkv 8 --d 128 --dtype bf16 --mode fwdbwd --warmup 1 --repeats 1 --check-n 0"
OUT=$O PER=2 timeout 120 sh scripts/gpu-profile.sh nsa-65536 $MAIN $PK --variants nsa --n 65536 --w 512 > /dev/null 2>&1; echo "nsa65536 rc=$?"; head -26 $O/profile-nsa-65536.txt
DMABENCH=$MAIN OUT=$O STEPS=3 timeout 120 sh scripts/gpu-train-profile.sh nsa 8192 2 > /dev/null 2>&1; echo "train nsa rc=$?"; head -34 $O/profile-train-nsa-8192.txt
gzip -f $O/ncu-*.csv
t checks
v() { (env $2 timeout 220 $B verify --backend cuda --variants $3 --dtype $4 --quiet --out $O/v-$1.json > $O/v-$1.log 2>&1; echo $? > $O/v-$1.rc) & }
v bf16 X=0 mha,swa,dma,nsa bf16; v f16 X=0 mha,swa,dma,nsa f16
v wgfwd DMABENCH_CUDA_WGMMA=1 mha,dma bf16; v wgbwd "DMABENCH_CUDA_WGMMA_BWD=1 DMABENCH_CUDA_BWD_KEYPAR=0" mha,dma bf16
for tool in racecheck memcheck; do
(timeout 220 compute-sanitizer --tool $tool --error-exitcode 9 $B kernels --backend cuda --variants mha,swa,dma,nsa --n 300,2048 --w 128 --b 1 --hq 8 --hkv 2 --d 128,64 --dtype bf16 --mode fwd --warmup 0 --repeats 1 --out $O/$tool.json > $O/san-$tool.log 2>&1; echo $? > $O/san-$tool.rc) &
done
wait
for x in bf16 f16 wgfwd wgbwd; do echo "verify tidy2 $x rc=$(cat $O/v-$x.rc) $(grep '^verify:' $O/v-$x.log | tail -1)"; grep FAIL $O/v-$x.log | head -3; done
for tool in racecheck memcheck; do echo "$tool rc=$(cat $O/san-$tool.rc) $(grep 'SUMMARY' $O/san-$tool.log) cells ok $(okc $O/$tool.json) of 16"; done
t done
rm -f $O/v-*.json; find $O -name '*.json' -size +300k -delete; find $O -name '*.jsonl' -delete
tar czf $OUT/o.tgz -C $OUT o
