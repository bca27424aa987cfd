#!/bin/sh
# call 5 (eighteenth set): tests/gpu.sh's sanitize part on main (n18: memcheck over verify of each variant, racecheck
# over dma's and nsa's); tidy (the key metadata's shared helper, the copy's setup after the list branch) against main:
# mha fwd at 8192, dma fwd at 8192 and 65536, dma fwd+bwd at 8192; tidy's verify (bf16, f16, wgmma forward and backward)
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=4
MAIN=./gpupack/n18/dmabench B=./gpupack/tidy/dmabench
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader > $O/gpu.txt; cat $O/gpu.txt
K="kernels --backend cuda --dtype bf16 --warmup 2 --repeats 7 --check-n 0"
k() { env $3 timeout 90 $2 $K $4 --out $O/k-$1.json > $O/k-$1.log 2>&1; echo "$1 rc=$? $(grep -E '^\| (mha|dma|swa|nsa)' $O/k-$1.log | cut -d'|' -f2,4,6,9,11,12 | tr '\n' ' ')"; }
t kernels
for r in 1 2; do
  for x in main:$MAIN tidy:$B; do n=${x%%:*}; bin=${x#*:}
    k $n-mha-$r $bin X=0 "--mode fwd --variants mha --n 8192 --b 1 --hq 32 --hkv 8 --d 128"
    k $n-dma-$r $bin X=0 "--mode fwd --variants dma --n 8192,65536 --w 1024 --b 1 --hq 32 --hkv 8 --d 128"
    k $n-fb-$r $bin X=0 "--mode fwdbwd --variants dma --n 8192 --w 1024 --b 1 --hq 32 --hkv 8 --d 128"
  done
done
t checks
(DMABENCH_GPU=1 DMABENCH=$MAIN DMABENCH_TESTS=./gpupack/n18/tests DMABENCH_GPU_PART=sanitize DMABENCH_GPU_JOBS=6 DMABENCH_GPU_KEEP=$O/gpu-san timeout 420 sh tests/gpu.sh > $O/gpu-san.log 2>&1; echo $? > $O/gpu-san.rc) &
v() { (env $2 timeout 300 $B verify --backend cuda --variants $3 --dtype $4 --quiet --out $O/v-$1.json > $O/v-$1.log 2>&1; echo $? > $O/v-$1.rc) & }
v bf16 X=0 mha,swa,dma,nsa bf16; v f16 X=0 mha,swa,dma,nsa f16
v wgfwd DMABENCH_CUDA_WGMMA=1 mha,dma bf16; v wgbwd "DMABENCH_CUDA_WGMMA_BWD=1 DMABENCH_CUDA_BWD_KEYPAR=0" mha,dma bf16
wait
for x in bf16 f16 wgfwd wgbwd; do echo "verify tidy $x rc=$(cat $O/v-$x.rc) $(grep '^verify:' $O/v-$x.log | tail -1)"; grep FAIL $O/v-$x.log | head -3; done
echo "gpu.sh sanitize rc=$(cat $O/gpu-san.rc) ok=$(grep -c '^ok' $O/gpu-san.log) notok=$(grep -c '^not ok' $O/gpu-san.log)"; grep '^not ok\|^ok' $O/gpu-san.log | head -12
t done
rm -f $O/v-*.json; find $O -name '*.json' -size +300k -delete; find $O -name '*.jsonl' -delete
tar czf $OUT/o.tgz -C $OUT o
