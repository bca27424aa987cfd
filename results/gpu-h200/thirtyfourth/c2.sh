#!/bin/sh
# p36m (main: the backward TM's proxy fence and its boxes a row a thread): verify bf16 (all variants), the opt-ins
# that reach TM with other settings (DMA_RESIDUAL=0, DMA_SAVED=0) and fw1 (FWD_WS=1); memcheck and racecheck over
# verify's dma grid with tests/gpu.sh's model part beside them; then the backward kernel profiled and one fwd+bwd
# call's kernels split.
[ -d gpupack/p36m ] || tar xJf gpupack/p36m.tar.xz -C gpupack
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=3
B=./gpupack/p36m/dmabench
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader > $O/gpu.txt; cat $O/gpu.txt
v() { n=$1; e=$2; shift 2; env $e timeout 200 $B verify --backend cuda --quiet "$@" --out $O/v-$n.json > $O/v-$n.log 2>&1; echo "$?" > $O/v-$n.rc; }
v bf16 X=0 --dtype bf16 & v res0 DMABENCH_DMA_RESIDUAL=0 --dtype bf16 --variants dma & v sav0 DMABENCH_DMA_SAVED=0 --dtype bf16 --variants dma &
v ws1 DMABENCH_CUDA_FWD_WS=1 --dtype bf16 & wait; t verified
for f in $O/v-*.log; do n=$(basename $f .log); r=$(grep passed $f | tail -1); echo "$n rc=$(cat $O/$n.rc): $r"; echo "$r" | grep -q ' 0 failed' || grep -m8 -E "FAIL|fail" $f; done
tar czf $OUT/o.tgz -C $OUT o
s() { n=$1; timeout 260 compute-sanitizer --tool $n --error-exitcode 9 $B verify --backend cuda --variants dma --quiet --out $O/s-$n.json > $O/s-$n.log 2>&1; echo "s-$n rc=$? $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY|passed' $O/s-$n.log | tail -2 | tr '\n' ' ')"; }
s memcheck > $O/s1.txt & s racecheck > $O/s2.txt &
DMABENCH_GPU=1 DMABENCH_GPU_PART=model DMABENCH=$B DMABENCH_TESTS=./gpupack/p36m/tests timeout 260 sh tests/gpu.sh > $O/model.txt 2>&1; echo "model rc=$?"; cat $O/model.txt | grep -E "^(ok|not ok)" | tail -30
wait; cat $O/s1.txt $O/s2.txt; t sanitized
tar czf $OUT/o.tgz -C $OUT o
K="kernels --backend cuda --dtype bf16 --warmup 1 --repeats 1 --check-n 0 --w 1024 --b 1 --hq 32 --hkv 8 --d 128 --mode fwdbwd --variants dma --n 8192"
OUT=$O timeout 100 sh scripts/gpu-kernel-profile.sh rows bwd_main_kernel 1 $B $K > $O/p-rows.txt 2>&1; t profiled; tail -6 $O/p-rows.txt
OUT=$O PER=2 timeout 80 sh scripts/gpu-profile.sh split $B $K > $O/p-split.txt 2>&1; cat $O/profile-split.txt
t done
find $O -name '*.json' -size +100k -delete; find $O -name '*.jsonl' -delete
tar czf $OUT/o.tgz -C $OUT o
