#!/bin/sh
# call 1 (nineteenth set): n20 (nsa's selection with one K~ stage where that lets two CTAs share an SM) against
# DMABENCH_NSA_SEL_STAGES=2 in one binary: nsa fwd and fwd+bwd at 8192 and 65536; n20's verify (bf16, f16, stages 1 and 2
# forced, 4 selection warps, the pair loop) and racecheck; tests/gpu.sh's sanitize part on main (6ce3604's kernels)
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=4
MAIN=./gpupack/main/dmabench B=./gpupack/n20/dmabench
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader > $O/gpu.txt; cat $O/gpu.txt
okc() { grep -c '"status":[[:space:]]*"ok"' $1; }
K="kernels --backend cuda --dtype bf16 --warmup 2 --repeats 5 --check-n 0"
k() { env $3 timeout 90 $2 $K $4 --out $O/k-$1.json > $O/k-$1.log 2>&1; echo "$1 rc=$? $(grep -E '^\| (mha|dma|swa|nsa)' $O/k-$1.log | cut -d'|' -f2,4,6,9,11,12 | tr '\n' ' ')"; }
t kernels
for r in 1 2; do
  k st2-$r $B DMABENCH_NSA_SEL_STAGES=2 "--mode fwd,fwdbwd --variants nsa --n 8192,65536 --w 512 --b 1 --hq 32 --hkv 8 --d 128"
  k n20-$r $B X=0 "--mode fwd,fwdbwd --variants nsa --n 8192,65536 --w 512 --b 1 --hq 32 --hkv 8 --d 128"
done
k main-1 $MAIN X=0 "--mode fwd --variants nsa --n 65536 --w 512 --b 1 --hq 32 --hkv 8 --d 128"
t checks
(DMABENCH_GPU=1 DMABENCH=$MAIN DMABENCH_TESTS=./gpupack/main/tests DMABENCH_GPU_PART=sanitize DMABENCH_GPU_JOBS=6 DMABENCH_GPU_KEEP=$O/gpu-san timeout 430 sh tests/gpu.sh > $O/gpu-san.log 2>&1; echo $? > $O/gpu-san.rc) &
v() { (env $2 timeout 300 $B verify --backend cuda --variants nsa --dtype $3 --quiet --out $O/v-$1.json > $O/v-$1.log 2>&1; echo $? > $O/v-$1.rc) & }
v bf16 X=0 bf16; v f16 X=0 f16; v st1 DMABENCH_NSA_SEL_STAGES=1 bf16; v st2 DMABENCH_NSA_SEL_STAGES=2 bf16
v w4 DMABENCH_NSA_SEL_WARPS=4 bf16; v nomma DMABENCH_NSA_SEL_MMA=0 bf16
for s in 1 2; do
(DMABENCH_NSA_SEL_STAGES=$s timeout 300 compute-sanitizer --tool racecheck --error-exitcode 9 $B kernels --backend cuda --variants nsa --n 300,2048 --w 128 --b 1 --hq 8 --hkv 2 --d 128,64 --dtype bf16 --mode fwd --warmup 0 --repeats 1 --out $O/race$s.json > $O/san-race$s.log 2>&1; echo $? > $O/san-race$s.rc) &
done
(DMABENCH_NSA_SEL_STAGES=1 timeout 300 compute-sanitizer --tool memcheck --error-exitcode 9 $B kernels --backend cuda --variants nsa --n 300,2048 --w 128 --b 2 --hq 8 --hkv 2 --d 128,64 --dtype bf16 --mode fwdbwd --warmup 0 --repeats 1 --out $O/mem.json > $O/san-mem.log 2>&1; echo $? > $O/san-mem.rc) &
wait
for v in bf16 f16 st1 st2 w4 nomma; do echo "verify $v rc=$(cat $O/v-$v.rc) $(grep '^verify:' $O/v-$v.log | tail -1)"; grep FAIL $O/v-$v.log | head -3; done
for s in 1 2; do echo "racecheck st$s rc=$(cat $O/san-race$s.rc) $(grep 'RACECHECK SUMMARY' $O/san-race$s.log) cells ok $(okc $O/race$s.json)"; done
echo "memcheck st1 rc=$(cat $O/san-mem.rc) $(grep 'ERROR SUMMARY' $O/san-mem.log) cells ok $(okc $O/mem.json)"
echo "gpu.sh sanitize rc=$(cat $O/gpu-san.rc) ok=$(grep -c '^ok' $O/gpu-san.log) notok=$(grep -c '^not ok' $O/gpu-san.log)"; grep '^not ok\|^ok' $O/gpu-san.log | head -14
t done
rm -f $O/v-*.json; find $O -name '*.json' -size +300k -delete; find $O -name '*.jsonl' -delete
tar czf $OUT/o.tgz -C $OUT o
