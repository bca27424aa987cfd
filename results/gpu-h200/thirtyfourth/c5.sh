#!/bin/sh
# p36f (main 895c8d5 with MC generalised to clusters of CL = 2 (default) or 4 (DMABENCH_CUDA_BWD_MC=4: the whole
# GQA group of the paper shape shares its K/V rows, each CTA issuing a quarter of the boxes)). Verify (bf16 default,
# bf16 / f16 / KEYPAR=0 with MC=4); if all pass: dma fwd+bwd A/B default vs MC=4 (3 rounds at 8192, 1 at 65536),
# memcheck and racecheck over verify's dma grid with MC=4.
[ -d gpupack/p36f ] || tar xJf gpupack/p36f.tar.xz -C gpupack
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=3
B=./gpupack/p36f/dmabench
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader > $O/gpu.txt; cat $O/gpu.txt
v() { n=$1; e=$2; shift 2; env $e timeout 200 $B verify --backend cuda --quiet "$@" --out $O/v-$n.json > $O/v-$n.log 2>&1; echo "$?" > $O/v-$n.rc; }
v bf16 X=0 --dtype bf16 & v m4-bf16 DMABENCH_CUDA_BWD_MC=4 --dtype bf16 & v m4-f16 DMABENCH_CUDA_BWD_MC=4 --dtype f16 &
v m4-kp0 DMABENCH_CUDA_BWD_MC=4+DMABENCH_CUDA_BWD_KEYPAR=0 --dtype bf16 & wait; t verified
bad=0
for f in $O/v-*.log; do n=$(basename $f .log); r=$(grep passed $f | tail -1); echo "$n rc=$(cat $O/$n.rc): $r"; echo "$r" | grep -q ' 0 failed' || { bad=1; grep -m8 -E "FAIL|fail|rror" $f; }; done
tar czf $OUT/o.tgz -C $OUT o
[ $bad = 0 ] || exit 0
AB="--backend cuda --dtype bf16 --warmup 2 --repeats 5 --check-n 0 --b 1 --hq 32 --hkv 8 --d 128 --w 1024 --variants dma --mode fwdbwd"
DMABENCH=$B OUT=$O/ab8k timeout 150 sh scripts/kernels-ab.sh 3 - DMABENCH_CUDA_BWD_MC=4 -- $AB --n 8192 > $O/ab8k.txt 2>&1; tail -3 $O/ab8k.txt
DMABENCH=$B OUT=$O/ab65 timeout 100 sh scripts/kernels-ab.sh 1 - DMABENCH_CUDA_BWD_MC=4 -- $AB --n 65536 --repeats 3 > $O/ab65.txt 2>&1; tail -3 $O/ab65.txt
t timed
tar czf $OUT/o.tgz -C $OUT o
s() { n=$1; v=$2; shift 2; env "$@" timeout 240 compute-sanitizer --tool $n --error-exitcode 9 $B verify --backend cuda --variants $v --quiet --out $O/s-$n-$v.json > $O/s-$n-$v.log 2>&1; echo "s-$n-$v rc=$? $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY|passed' $O/s-$n-$v.log | tail -2 | tr '\n' ' ')"; }
s memcheck dma DMABENCH_CUDA_BWD_MC=4 > $O/s1.txt & s racecheck dma DMABENCH_CUDA_BWD_MC=4 > $O/s2.txt & wait; cat $O/s1.txt $O/s2.txt
t done
find $O -name '*.json' -size +100k -delete; find $O -name '*.jsonl' -delete
tar czf $OUT/o.tgz -C $OUT o
