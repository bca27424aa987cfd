#!/bin/sh
# p37a (main 5236830 + PF + DH + the MC fallback + dm_cluster_config). Verify it: bf16, f16, KEYPAR=0,
# dma with DSUM_HERE=0 (PF alone), RESIDUAL=0, SAVED=0; then the A/B main's path (PREFETCH=0 + DSUM_HERE=0) / PF / PF+DH (3 rounds at 8192, 1 at 65536),
# memcheck and racecheck over dma's grid, tests/gpu.sh's model part.
[ -d gpupack/p37a ] || tar xJf gpupack/p37a.tar.xz -C gpupack
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=3
B=./gpupack/p37a/dmabench
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader > $O/gpu.txt; cat $O/gpu.txt
v() { n=$1; e=$2; shift 2; env $e timeout 200 $B verify --backend cuda --quiet "$@" --out $O/v-$n.json > $O/v-$n.log 2>&1; echo "$?" > $O/v-$n.rc; }
v bf16 X=0 --dtype bf16 & v f16 X=0 --dtype f16 & v kp0 DMABENCH_CUDA_BWD_KEYPAR=0 --dtype bf16 & wait
v pf DMABENCH_CUDA_BWD_DSUM_HERE=0 --dtype bf16 --variants dma & v res0 DMABENCH_DMA_RESIDUAL=0 --dtype bf16 --variants dma &
v sav0 DMABENCH_DMA_SAVED=0 --dtype bf16 --variants dma & wait; t verified
bad=0
for f in $O/v-*.log; do n=$(basename $f .log); r=$(grep passed $f | tail -1); echo "$n rc=$(cat $O/$n.rc): $r"; echo "$r" | grep -q ' 0 failed' || { bad=1; grep -m8 -E "FAIL|fail|rror" $f; }; done
tar czf $OUT/o.tgz -C $OUT o
[ $bad = 0 ] || exit 0
AB="--backend cuda --dtype bf16 --warmup 2 --repeats 5 --check-n 0 --b 1 --hq 32 --hkv 8 --d 128 --w 1024 --variants dma --mode fwdbwd"
SET="DMABENCH_CUDA_BWD_PREFETCH=0+DMABENCH_CUDA_BWD_DSUM_HERE=0 DMABENCH_CUDA_BWD_DSUM_HERE=0 -"
DMABENCH=$B OUT=$O/ab8k timeout 200 sh scripts/kernels-ab.sh 3 $SET -- $AB --n 8192 > $O/ab8k.txt 2>&1; tail -4 $O/ab8k.txt
DMABENCH=$B OUT=$O/ab65 timeout 150 sh scripts/kernels-ab.sh 1 $SET -- $AB --n 65536 --repeats 3 > $O/ab65.txt 2>&1; tail -4 $O/ab65.txt
t timed
tar czf $OUT/o.tgz -C $OUT o
s() { n=$1; v=$2; shift 2; env "$@" timeout 250 compute-sanitizer --tool $n --error-exitcode 9 $B verify --backend cuda --variants $v --quiet --out $O/s-$n-$v.json > $O/s-$n-$v.log 2>&1; echo "s-$n-$v rc=$? $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY|passed' $O/s-$n-$v.log | tail -2 | tr '\n' ' ')"; }
s memcheck dma X=0 > $O/s1.txt & s racecheck dma X=0 > $O/s2.txt &
# (the model part: next call, with the test programs)
wait; cat $O/s1.txt $O/s2.txt
t done
find $O -name '*.json' -size +100k -delete; find $O -name '*.jsonl' -delete
tar czf $OUT/o.tgz -C $OUT o
