#!/bin/sh
# p39b (main 3a9aec4 + fw1 TM at CTA scope, the default where fw1 runs; the backward MC at CTA scope; key_slot_store; the
# plan's rows from key_rows: the merge candidate). Verify the default in bf16, f16 and f32 (every variant) and TMA=0 (dma,
# bf16); tests/gpu.sh's model part; A/B of dma's fwd+bwd, default against TMA=0, at 8192 (3 rounds) and 65536 (1 round);
# memcheck of dma (default, TMA=0) and racecheck of dma (default) in 3 shards.
[ -d gpupack/p39b ] || tar xJf gpupack/p39b.tar.xz -C gpupack
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=3
B=./gpupack/p39b/dmabench
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader > $O/gpu.txt; cat $O/gpu.txt
v() { n=$1; e=$2; shift 2; env $e timeout 220 $B verify --backend cuda --quiet "$@" --out $O/v-$n.json > $O/v-$n.log 2>&1; echo "$?" > $O/v-$n.rc; }
v bf16 X=0 --dtype bf16 & v f16 X=0 --dtype f16 & v f32 X=0 --dtype f32 & v tma0 DMABENCH_CUDA_FWD_TMA=0 --dtype bf16 --variants dma &
DMABENCH_GPU=1 DMABENCH_GPU_PART=model DMABENCH=$B DMABENCH_TESTS=./gpupack/p39b/tests timeout 280 sh tests/gpu.sh > $O/model.txt 2>&1; echo "model rc=$? ok: $(grep -cE '^ok' $O/model.txt) not ok: $(grep -cE '^not ok' $O/model.txt)"; grep -E "^not ok" $O/model.txt | head
wait; t verified
for f in $O/v-*.log; do n=$(basename $f .log); r=$(grep passed $f | tail -1); echo "$n rc=$(cat $O/$n.rc): $r"; echo "$r" | grep -q ' 0 failed' || grep -m8 -E "FAIL|fail|rror" $f; done
tar czf $OUT/o.tgz -C $OUT o
AB="--backend cuda --dtype bf16 --warmup 2 --repeats 5 --check-n 0 --b 1 --hq 32 --hkv 8 --d 128 --w 1024"
DMABENCH=$B OUT=$O/ab8 timeout 150 sh scripts/kernels-ab.sh 3 - DMABENCH_CUDA_FWD_TMA=0 -- $AB --n 8192 --variants dma --mode fwd,fwdbwd > $O/ab8.txt 2>&1; tail -4 $O/ab8.txt
DMABENCH=$B OUT=$O/ab64 timeout 150 sh scripts/kernels-ab.sh 1 - DMABENCH_CUDA_FWD_TMA=0 -- $AB --n 65536 --repeats 3 --variants dma --mode fwdbwd > $O/ab64.txt 2>&1; tail -3 $O/ab64.txt
t timed
tar czf $OUT/o.tgz -C $OUT o
s() { n=$1; tag=$2; e=$3; shift 3; env $e timeout 250 compute-sanitizer --tool $n --error-exitcode 9 $B verify --backend cuda --variants dma --quiet "$@" --out $O/s-$n-$tag.json > $O/s-$n-$tag.log 2>&1; echo "s-$n-$tag rc=$? $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY|passed' $O/s-$n-$tag.log | tail -2 | tr '\n' ' ')"; }
s memcheck def X=0 > $O/s1.txt & s memcheck tma0 DMABENCH_CUDA_FWD_TMA=0 > $O/s2.txt &
s racecheck def-1 X=0 --shard 1/3 > $O/s3.txt & s racecheck def-2 X=0 --shard 2/3 > $O/s4.txt &
s racecheck def-3 X=0 --shard 3/3 > $O/s5.txt & wait; cat $O/s1.txt $O/s2.txt $O/s3.txt $O/s4.txt $O/s5.txt
t done
find $O -name '*.json' -size +100k -delete; find $O -name '*.jsonl' -delete
tar czf $OUT/o.tgz -C $OUT o
