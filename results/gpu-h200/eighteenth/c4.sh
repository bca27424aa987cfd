#!/bin/sh
# call 4 (eighteenth set): n19 (the selection's K~ copy addresses computed once) against main (n18): nsa fwd and fwd+bwd
# at 8192 and 65536, the selection's profile; n19's verify, and the opt-in versions that d8 and n18 touch (dma's 64-row
# and wgmma backward, the wgmma forward, without the saved area; nsa's 4-warp selection, argmax pick, without the saved
# area), f32; memcheck and racecheck of nsa cells
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=4
MAIN=./gpupack/n18/dmabench B=./gpupack/n19/dmabench
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader > $O/gpu.txt; cat $O/gpu.txt
okc() { grep -c '"status":[[:space:]]*"ok"' $1; }
timeout 60 $B kernels --backend cuda --variants nsa --n 300,2048 --w 128 --b 2 --hq 8 --hkv 2 --d 128,64 --dtype bf16 --mode fwdbwd --warmup 0 --repeats 1 --out $O/q.json > $O/q.log 2>&1; echo "quick rc=$? ok=$(okc $O/q.json) of 4"
K="kernels --backend cuda --dtype bf16 --warmup 2 --repeats 5 --check-n 0"
k() { env $3 timeout 120 $2 $K $4 --out $O/k-$1.json > $O/k-$1.log 2>&1; echo "$1 rc=$? $(grep -E '^\| (mha|dma|swa|nsa)' $O/k-$1.log | cut -d'|' -f2,4,5,6,9,11,12 | tr '\n' ' ')"; }
t kernels
for r in 1 2; do
  k main-$r $MAIN X=0 "--mode fwd,fwdbwd --variants nsa --n 8192,65536 --w 512 --b 1 --hq 32 --hkv 8 --d 128"
  k n19-$r $B X=0 "--mode fwd,fwdbwd --variants nsa --n 8192,65536 --w 512 --b 1 --hq 32 --hkv 8 --d 128"
done
t profile
PR="kernels --backend cuda --variants nsa --n 65536 --w 512 --b 1 --hq 32 --hkv 8 --d 128 --dtype bf16 --mode fwd --warmup 1 --repeats 1 --check-n 0"
OUT=$O/prof timeout 150 sh scripts/gpu-kernel-profile.sh n19sel nsa_select_tc 1 $B $PR 2>&1 | tail -12
t checks
v() { (env $2 timeout 300 $B verify --backend cuda --variants $3 --dtype $4 --quiet --out $O/v-$1.json > $O/v-$1.log 2>&1; echo $? > $O/v-$1.rc) & }
v nsa-bf16 X=0 nsa bf16; v nsa-f16 X=0 nsa f16; v f32 X=0 dma,nsa f32
v tile64 "DMABENCH_CUDA_BWD_TILE=64 DMABENCH_CUDA_BWD_KEYPAR=0" dma bf16; v wgfwd DMABENCH_CUDA_WGMMA=1 dma bf16
v wgbwd "DMABENCH_CUDA_WGMMA_BWD=1 DMABENCH_CUDA_BWD_KEYPAR=0" dma,nsa bf16
v dmanosaved DMABENCH_DMA_SAVED=0 dma bf16; v nsanosaved DMABENCH_NSA_SAVED=0 nsa bf16
v sel4 DMABENCH_NSA_SEL_WARPS=4 nsa bf16; v sel4f16 DMABENCH_NSA_SEL_WARPS=4 nsa f16; v argmax DMABENCH_NSA_PICK=argmax nsa bf16
(timeout 300 compute-sanitizer --tool memcheck --error-exitcode 9 $B kernels --backend cuda --variants nsa --n 300,2048 --w 128 --b 2 --hq 8 --hkv 2 --d 128,64 --dtype bf16 --mode fwdbwd --warmup 0 --repeats 1 --out $O/mem.json > $O/san-mem.log 2>&1; echo $? > $O/san-mem.rc) &
(DMABENCH_NSA_SEL_WARPS=4 timeout 300 compute-sanitizer --tool racecheck --error-exitcode 9 $B kernels --backend cuda --variants nsa --n 300,2048 --w 128 --b 1 --hq 8 --hkv 2 --d 128,64 --dtype bf16 --mode fwdbwd --warmup 0 --repeats 1 --out $O/race4.json > $O/san-race4.log 2>&1; echo $? > $O/san-race4.rc) &
(timeout 300 compute-sanitizer --tool racecheck --error-exitcode 9 $B kernels --backend cuda --variants nsa --n 300,2048 --w 128 --b 1 --hq 8 --hkv 2 --d 128,64 --dtype bf16 --mode fwdbwd --warmup 0 --repeats 1 --out $O/race.json > $O/san-race.log 2>&1; echo $? > $O/san-race.rc) &
wait
for x in nsa-bf16 nsa-f16 f32 tile64 wgfwd wgbwd dmanosaved nsanosaved sel4 sel4f16 argmax; do echo "verify $x rc=$(cat $O/v-$x.rc) $(grep '^verify:' $O/v-$x.log | tail -1)"; grep FAIL $O/v-$x.log | head -3; done
echo "memcheck rc=$(cat $O/san-mem.rc) $(grep 'ERROR SUMMARY' $O/san-mem.log) cells ok $(okc $O/mem.json)"
for r in race race4; do echo "$r rc=$(cat $O/san-$r.rc) $(grep 'RACECHECK SUMMARY' $O/san-$r.log) cells ok $(okc $O/$r.json)"; done
t done
rm -f $O/v-*.json; find $O -name '*.json' -size +300k -delete; find $O -name '*.jsonl' -delete
tar czf $OUT/o.tgz -C $OUT o
