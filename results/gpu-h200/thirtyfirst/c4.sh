#!/bin/sh
# p33c: rw1 the default, its hand-offs on mbarriers (racecheck models them; it does not model bar.arrive:
# arrive-race mode 0 in c3); fw1's producer with its key slot's entry from registers (no local array).
# Predicted: dma fwd+bwd 8192 2.56 (as rw1 on named barriers) against 2.64 with WG_REDUCER=0; fw1 dma fwd
# 0.75 -> 0.68-0.72. Then verify (default every dtype, fw1, ov1), memcheck + racecheck over dma's grid
# (default and fw1), and tests/gpu.sh's model part, at once.
[ -d gpupack/p33c ] || tar xJf gpupack/p33c.tar.xz -C gpupack
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
B=./gpupack/p33c/dmabench
K="--backend cuda --dtype bf16 --warmup 2 --repeats 5 --check-n 0 --w 1024 --b 1 --hq 32 --hkv 8 --d 128"
DMABENCH=$B OUT=$O/ab1 timeout 100 sh scripts/kernels-ab.sh 3 - DMABENCH_CUDA_BWD_WG_REDUCER=0 -- $K --mode fwdbwd --variants dma --n 8192 > $O/ab1.log 2>&1
t "ab1 rc=$?"; tail -3 $O/ab1.log
DMABENCH=$B OUT=$O/ab2 timeout 100 sh scripts/kernels-ab.sh 2 - DMABENCH_CUDA_FWD_WS=1 -- $K --mode fwd --variants mha,dma --n 8192 > $O/ab2.log 2>&1
t "ab2 rc=$?"; tail -4 $O/ab2.log
tar czf $OUT/o.tgz -C $OUT o
v() { n=$1; shift; env "$@" timeout 430 $B verify --backend cuda --quiet --out $O/v-$n.json > $O/v-$n.log 2>&1; echo "$?" > $O/v-$n.rc; }
v def-bf16 X=0 --dtype bf16 & v def-f16 X=0 --dtype f16 & v def-f32 X=0 --dtype f32 &
v ws-bf16 DMABENCH_CUDA_FWD_WS=1 --dtype bf16 --variants mha,swa,dma,nsa & v ws-f16 DMABENCH_CUDA_FWD_WS=1 --dtype f16 --variants mha,swa,dma,nsa &
v ov1-bf16 DMABENCH_CUDA_BWD_WG_REDUCER=0 DMABENCH_CUDA_BWD_KEYPAR=0 --dtype bf16 --variants mha,swa,dma,nsa &
s() { n=$1; tool=$2; shift 2; env "$@" timeout 430 compute-sanitizer --tool $tool --error-exitcode 9 $B verify --backend cuda --variants dma --quiet --out $O/s-$n.json > $O/s-$n.log 2>&1; echo "$?" > $O/s-$n.rc; }
s m-def memcheck X=0 & s r-def racecheck X=0 & s r-ws racecheck DMABENCH_CUDA_FWD_WS=1 & s m-ws memcheck DMABENCH_CUDA_FWD_WS=1 &
env DMABENCH_GPU=1 DMABENCH=$B DMABENCH_TESTS=./gpupack/p33c/tests DMABENCH_GPU_PART=model DMABENCH_GPU_JOBS=2 DMABENCH_GPU_KEEP=$O/keep-model timeout 430 sh tests/gpu.sh > $O/gpu-model.log 2>&1 &
wait; t "all done"
for f in $O/v-*.log; do n=$(basename $f .log); echo "$n rc=$(cat $O/$n.rc): $(tail -1 $f)"; done
for f in $O/s-*.log; do n=$(basename $f .log); echo "$n rc=$(cat $O/$n.rc): $(grep -E 'SUMMARY|verify:' $f | tr '\n' ' ')"; grep -m2 "Race reported\|Invalid" $f | cut -c1-200; done
echo "gpu-model: $(grep -c '^ok' $O/gpu-model.log) ok, $(grep -c '^not ok' $O/gpu-model.log) not ok"; grep -m6 '^not ok' $O/gpu-model.log; tail -1 $O/gpu-model.log
find $O -name '*.json' -size +100k -delete; find $O -name '*.jsonl' -delete
tar czf $OUT/o.tgz -C $OUT o
