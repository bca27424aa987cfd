#!/bin/sh
# call 4 (nineteenth set): n22 (nsa's pair kernels: registers for 4 CTAs per SM in the forward, each row's query once
# per batch in shared memory, the batch's list by a warp-wide search; the forward's full flag as tidy2's v1 in the z
# kernels and as main in the others) against main, alternated twice; DMABENCH_NSA_PAIR_MINB=0 in the same binary; the
# pair kernels profiled; n22's verify (all variants, and nsa with the pairs forced) and sanitizers
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=4
MAIN=./gpupack/main/dmabench B=./gpupack/n22/dmabench
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader > $O/gpu.txt; cat $O/gpu.txt
okc() { grep -c '"status":[[:space:]]*"ok"' $1; }
K="kernels --backend cuda --dtype bf16 --warmup 2 --repeats 5 --check-n 0"
k() { env $3 timeout 90 $2 $K $4 --out $O/k-$1.json > $O/k-$1.log 2>&1; echo "$1 rc=$? $(grep -E '^\| (mha|dma|swa|nsa)' $O/k-$1.log | cut -d"|" -f2,4,6,9,11,12 | tr '\n' ' ')"; }
NS="--mode fwd,fwdbwd --variants nsa --n 8192,65536 --w 512 --b 1 --hq 32 --hkv 8 --d 128"
t kernels
for r in 1 2; do
  k main-n-$r $MAIN X=0 "$NS"; k n22-n-$r $B X=0 "$NS"; k n22mb0-n-$r $B DMABENCH_NSA_PAIR_MINB=0 "$NS"
  for x in main:$MAIN n22:$B; do n=${x%%:*}; bin=${x#*:}
    k $n-a-$r $bin X=0 "--mode fwd --variants mha --n 8192 --b 1 --hq 32 --hkv 8 --d 128"
    k $n-b-$r $bin X=0 "--mode fwd --variants dma,swa --n 8192,65536 --w 1024 --b 1 --hq 32 --hkv 8 --d 128"
    k $n-c-$r $bin X=0 "--mode fwdbwd --variants dma --n 8192 --w 1024 --b 1 --hq 32 --hkv 8 --d 128"
  done
done
t profiles
PR="kernels --backend cuda --variants nsa --n 65536 --w 512 --b 1 --hq 32 --hkv 8 --d 128 --dtype bf16 --mode fwdbwd --warmup 0 --repeats 1 --check-n 0"
OUT=$O/prof timeout 100 sh scripts/gpu-kernel-profile.sh pairfwd nsa_slc_pair_kernel 3 $B $PR 2>&1 | tail -8
OUT=$O/prof timeout 120 sh scripts/gpu-kernel-profile.sh pairbwd nsa_slc_pair_bwd_kernel 0 $B $PR 2>&1 | tail -8
t checks
v() { (env $2 timeout 230 $B verify --backend cuda --variants $3 --dtype $4 --quiet --out $O/v-$1.json > $O/v-$1.log 2>&1; echo $? > $O/v-$1.rc) & }
v bf16 X=0 mha,swa,dma,nsa bf16; v f16 X=0 mha,swa,dma,nsa f16
v pairs DMABENCH_NSA_SLC=pairs nsa bf16; v pairsf16 DMABENCH_NSA_SLC=pairs nsa f16; v pairsmb0 "DMABENCH_NSA_SLC=pairs DMABENCH_NSA_PAIR_MINB=0" nsa bf16
s() { (env $2 timeout 230 compute-sanitizer --tool $3 --error-exitcode 9 $B kernels --backend cuda --variants $4 --n 300,2048 --w 128 --b 1 --hq 8 --hkv 2 --d 128,64 --dtype bf16 --mode $5 --warmup 0 --repeats 1 --out $O/s-$1.json > $O/san-$1.log 2>&1; echo $? > $O/san-$1.rc) & }
s race-p DMABENCH_NSA_SLC=pairs racecheck nsa fwdbwd; s mem-p DMABENCH_NSA_SLC=pairs memcheck nsa fwdbwd
s race-f X=0 racecheck mha,swa,dma fwd; s mem-f X=0 memcheck mha,swa,dma fwd
wait
for x in bf16 f16 pairs pairsf16 pairsmb0; do echo "verify n22 $x rc=$(cat $O/v-$x.rc) $(grep '^verify:' $O/v-$x.log | tail -1)"; grep FAIL $O/v-$x.log | head -3; done
for x in race-p mem-p race-f mem-f; do echo "$x rc=$(cat $O/san-$x.rc) $(grep 'SUMMARY' $O/san-$x.log) cells ok $(okc $O/s-$x.json)"; done
t done
rm -f $O/v-*.json; find $O -name '*.json' -size +300k -delete; find $O -name '*.jsonl' -delete
tar czf $OUT/o.tgz -C $OUT o
