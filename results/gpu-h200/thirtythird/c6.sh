#!/bin/sh
# p35g: the reducer tiles' K/V rows by the tensor memory accelerator (TM: a 64 x 1 box per half row, 128-byte
# swizzle, one box a consumer thread, an mbarrier per stage); DMABENCH_CUDA_BWD_TMA=0 the cp.async path as before.
# Verify (bf16, f16, the query tiles forced for every variant, TMA=0); if all pass: dma fwd+bwd A/B (3 rounds at
# 8192, 1 at 65536), the kernel profiled, memcheck and racecheck over verify's dma grid.
[ -d gpupack/p35g ] || tar xJf gpupack/p35g.tar.xz -C gpupack
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=4
B=./gpupack/p35g/dmabench
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader > $O/gpu.txt; cat $O/gpu.txt
v() { n=$1; e=$2; shift 2; env $e timeout 200 $B verify --backend cuda --quiet "$@" --out $O/v-$n.json > $O/v-$n.log 2>&1; echo "$?" > $O/v-$n.rc; }
v tm-bf16 X=0 --dtype bf16 & v tm-f16 X=0 --dtype f16 & v tm-kp0 DMABENCH_CUDA_BWD_KEYPAR=0 --dtype bf16 & v tm0-bf16 DMABENCH_CUDA_BWD_TMA=0 --dtype bf16 --variants dma & wait; t verified
bad=0
for f in $O/v-*.log; do n=$(basename $f .log); r=$(grep passed $f | tail -1); echo "$n rc=$(cat $O/$n.rc): $r"; echo "$r" | grep -q ' 0 failed' || { bad=1; grep -m8 -E "FAIL|fail" $f; }; done
tar czf $OUT/o.tgz -C $OUT o
[ $bad = 0 ] || exit 0
AB="--backend cuda --dtype bf16 --warmup 2 --repeats 5 --check-n 0 --b 1 --hq 32 --hkv 8 --d 128 --w 1024 --variants dma --mode fwdbwd"
DMABENCH=$B OUT=$O/ab8k timeout 150 sh scripts/kernels-ab.sh 3 DMABENCH_CUDA_BWD_TMA=0 - -- $AB --n 8192 > $O/ab8k.txt 2>&1; tail -3 $O/ab8k.txt
DMABENCH=$B OUT=$O/ab65 timeout 90 sh scripts/kernels-ab.sh 1 DMABENCH_CUDA_BWD_TMA=0 - -- $AB --n 65536 --repeats 3 > $O/ab65.txt 2>&1; tail -3 $O/ab65.txt
t timed
tar czf $OUT/o.tgz -C $OUT o
K="kernels --backend cuda --dtype bf16 --warmup 1 --repeats 1 --check-n 0 --w 1024 --b 1 --hq 32 --hkv 8 --d 128 --mode fwdbwd --variants dma --n 8192"
OUT=$O timeout 100 sh scripts/gpu-kernel-profile.sh tm bwd_main_kernel 1 $B $K > $O/p-tm.txt 2>&1; t profiled; tail -6 $O/p-tm.txt
tar czf $OUT/o.tgz -C $OUT o
s() { n=$1; timeout 250 compute-sanitizer --tool $n --error-exitcode 9 $B verify --backend cuda --variants dma --quiet --out $O/s-$n.json > $O/s-$n.log 2>&1; echo "s-$n rc=$? $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY|passed' $O/s-$n.log | tail -2 | tr '\n' ' ')"; }
s memcheck > $O/s1.txt & s racecheck > $O/s2.txt & wait; cat $O/s1.txt $O/s2.txt
t done
find $O -name '*.json' -size +100k -delete; find $O -name '*.jsonl' -delete
tar czf $OUT/o.tgz -C $OUT o
