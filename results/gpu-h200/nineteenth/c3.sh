#!/bin/sh
# call 3 (nineteenth set): tidy2 with the range path only in kernels without z (branch next/n21's binary, whose default
# pair kernel is main's) against main, alternated twice; nsa's pair forward with 2 (main), 3 or 4 CTAs' worth of
# registers (DMABENCH_NSA_PAIR_MINB); the pair forward and backward kernels profiled at 65536; n21's verify and
# sanitizers on forward cells
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=4
MAIN=./gpupack/main/dmabench B=./gpupack/n21/dmabench
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
  for mb in 0 3 4; do k minb$mb-$r $B DMABENCH_NSA_PAIR_MINB=$mb "--mode fwd --variants nsa --n 8192,65536 --w 512 --b 1 --hq 32 --hkv 8 --d 128"; done
done
t profiles
PR="kernels --backend cuda --variants nsa --n 65536 --w 512 --b 1 --hq 32 --hkv 8 --d 128 --dtype bf16 --mode fwdbwd --warmup 0 --repeats 1 --check-n 0"
OUT=$O/prof timeout 120 sh scripts/gpu-kernel-profile.sh pairfwd nsa_slc_pair_kernel 3 $B $PR 2>&1 | tail -24
OUT=$O/prof timeout 150 sh scripts/gpu-kernel-profile.sh pairbwd nsa_slc_pair_bwd_kernel 0 $B $PR 2>&1 | tail -24
t checks
v() { (env $2 timeout 220 $B verify --backend cuda --variants $3 --dtype $4 --quiet --out $O/v-$1.json > $O/v-$1.log 2>&1; echo $? > $O/v-$1.rc) & }
v bf16 X=0 mha,swa,dma,nsa bf16; v f16 X=0 mha,swa,dma,nsa f16
v wgfwd DMABENCH_CUDA_WGMMA=1 mha,dma bf16; v wgbwd "DMABENCH_CUDA_WGMMA_BWD=1 DMABENCH_CUDA_BWD_KEYPAR=0" mha,dma bf16
v mb3 DMABENCH_NSA_PAIR_MINB=3 nsa bf16; v mb4 DMABENCH_NSA_PAIR_MINB=4 nsa bf16
for tool in racecheck memcheck; do
(timeout 220 compute-sanitizer --tool $tool --error-exitcode 9 $B kernels --backend cuda --variants mha,swa,dma,nsa --n 300,2048 --w 128 --b 1 --hq 8 --hkv 2 --d 128,64 --dtype bf16 --mode fwd --warmup 0 --repeats 1 --out $O/$tool.json > $O/san-$tool.log 2>&1; echo $? > $O/san-$tool.rc) &
done
wait
for x in bf16 f16 wgfwd wgbwd mb3 mb4; do echo "verify n21 $x rc=$(cat $O/v-$x.rc) $(grep '^verify:' $O/v-$x.log | tail -1)"; grep FAIL $O/v-$x.log | head -3; done
for tool in racecheck memcheck; do echo "$tool rc=$(cat $O/san-$tool.rc) $(grep 'SUMMARY' $O/san-$tool.log) cells ok $(okc $O/$tool.json) of 16"; done
t done
rm -f $O/v-*.json; find $O -name '*.json' -size +300k -delete; find $O -name '*.jsonl' -delete
tar czf $OUT/o.tgz -C $OUT o
