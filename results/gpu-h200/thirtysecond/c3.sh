#!/bin/sh
# p34b: the reducer warpgroup with 40 registers (consumers 232) and four rows' loads in flight before their adds
# (p34a's reducer: one LDS.128 -> REDG chain at a time in 24 registers). Verify of the default in bf16 and f16,
# dma fwd+bwd A/B p34a (old default) vs p34b alternated, 3 rounds at 8192 and 1 at 65536, the new kernel's profile,
# then memcheck and racecheck over verify's dma grid.
for p in p34a p34b; do [ -d gpupack/$p ] || tar xJf gpupack/$p.tar.xz -C gpupack; done
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=4
A=./gpupack/p34a/dmabench B=./gpupack/p34b/dmabench
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader > $O/gpu.txt; cat $O/gpu.txt
v() { n=$1; e=$2; shift 2; env $e timeout 240 $B verify --backend cuda --quiet "$@" --out $O/v-$n.json > $O/v-$n.log 2>&1; echo "$?" > $O/v-$n.rc; }
v def-bf16 X=0 --dtype bf16 & v def-f16 X=0 --dtype f16 &
v kp0-bf16 DMABENCH_CUDA_BWD_KEYPAR=0 --dtype bf16 --variants mha,swa,dma,nsa &
wait; t verified
for f in $O/v-*.log; do n=$(basename $f .log); echo "$n rc=$(cat $O/$n.rc): $(grep passed $f | tail -1)"; done
tar czf $OUT/o.tgz -C $OUT o
AB="--backend cuda --dtype bf16 --warmup 2 --repeats 5 --check-n 0 --w 1024 --b 1 --hq 32 --hkv 8 --d 128 --mode fwdbwd --variants dma"
for r in 1 2 3; do for x in a b; do eval bin=\$$(echo $x | tr ab AB)
  DMABENCH=$bin OUT=$O/ab8k-$x-$r timeout 60 sh scripts/kernels-ab.sh 1 - -- $AB --n 8192 > /dev/null 2>&1
  echo "8192 round $r p34$x: $(cut -f4 $O/ab8k-$x-$r/ab-medians.txt)"; done; done | tee $O/ab8k.txt
for x in a b; do eval bin=\$$(echo $x | tr ab AB)
  DMABENCH=$bin OUT=$O/ab65-$x timeout 60 sh scripts/kernels-ab.sh 1 - -- $AB --n 65536 --repeats 3 > /dev/null 2>&1
  echo "65536 p34$x: $(cut -f4 $O/ab65-$x/ab-medians.txt)"; done | tee $O/ab65.txt
t timed
tar czf $OUT/o.tgz -C $OUT o
K="kernels --backend cuda --dtype bf16 --warmup 1 --repeats 1 --check-n 0 --w 1024 --b 1 --hq 32 --hkv 8 --d 128 --mode fwdbwd --variants dma --n 8192"
OUT=$O timeout 120 sh scripts/gpu-kernel-profile.sh rb4 bwd_main_kernel 1 $B $K > $O/p-rb4.txt 2>&1; t profiled; tail -6 $O/p-rb4.txt
tar czf $OUT/o.tgz -C $OUT o
s() { n=$1; timeout 290 compute-sanitizer --tool $n --error-exitcode 9 $B verify --backend cuda --variants dma --quiet --out $O/s-$n.json > $O/s-$n.log 2>&1; echo "s-$n rc=$? $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY|passed' $O/s-$n.log | tail -2 | tr '\n' ' ')"; }
s memcheck & s racecheck & wait
t done
find $O -name '*.json' -size +100k -delete; find $O -name '*.jsonl' -delete
tar czf $OUT/o.tgz -C $OUT o
