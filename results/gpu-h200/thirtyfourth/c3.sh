#!/bin/sh
# p36m (main ef0f95c) and p36d (p36m + DH: the reducer tiles form Dsum themselves, O's and the residual's rows copied
# with Q and dO and dotted before the first block's products, bwd_dot_kernel skipped; DMABENCH_CUDA_BWD_DSUM_HERE=0
# keeps it; one host helper encodes the row-gather tensor maps). Verify p36d (bf16, f16, KEYPAR=0, DSUM_HERE=0);
# if all pass: dma fwd+bwd A/B (3 rounds at 8192, 1 at 65536), the probe's layout checks, memcheck and racecheck
# over verify's dma grid and racecheck of mha through the query tiles, one fwd+bwd call's kernels split.
[ -d gpupack/p36d ] || tar xJf gpupack/p36.tar.xz -C gpupack
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=3
A=./gpupack/p36m/dmabench B=./gpupack/p36d/dmabench
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader > $O/gpu.txt; cat $O/gpu.txt
v() { n=$1; e=$2; shift 2; env $e timeout 200 $B verify --backend cuda --quiet "$@" --out $O/v-$n.json > $O/v-$n.log 2>&1; echo "$?" > $O/v-$n.rc; }
v bf16 X=0 --dtype bf16 & v f16 X=0 --dtype f16 & v kp0 DMABENCH_CUDA_BWD_KEYPAR=0 --dtype bf16 &
v dh0 DMABENCH_CUDA_BWD_DSUM_HERE=0 --dtype bf16 --variants dma & wait; t verified
bad=0
for f in $O/v-*.log; do n=$(basename $f .log); r=$(grep passed $f | tail -1); echo "$n rc=$(cat $O/$n.rc): $r"; echo "$r" | grep -q ' 0 failed' || { bad=1; grep -m8 -E "FAIL|fail" $f; }; done
tar czf $OUT/o.tgz -C $OUT o
[ $bad = 0 ] || exit 0
AB="--backend cuda --dtype bf16 --warmup 2 --repeats 5 --check-n 0 --b 1 --hq 32 --hkv 8 --d 128 --w 1024 --variants dma --mode fwdbwd"
OUT=$O/ab8k timeout 150 sh scripts/kernels-ab.sh 3 DMABENCH=$A DMABENCH=$B -- $AB --n 8192 > $O/ab8k.txt 2>&1; tail -3 $O/ab8k.txt
OUT=$O/ab65 timeout 100 sh scripts/kernels-ab.sh 1 DMABENCH=$A DMABENCH=$B -- $AB --n 65536 --repeats 3 > $O/ab65.txt 2>&1; tail -3 $O/ab65.txt
t timed
tar czf $OUT/o.tgz -C $OUT o
timeout 60 $B probe --iters 8 --warmup 0 --repeats 1 --ctas-per-sm 1,2 --out $O/probe-small.json > $O/probe-small.txt 2>&1; echo "probe small rc=$? $(grep -c '"check":[[:space:]]*"ok"' $O/probe-small.json) ok"
s() { n=$1; v=$2; shift 2; env "$@" timeout 250 compute-sanitizer --tool $n --error-exitcode 9 $B verify --backend cuda --variants $v --quiet --out $O/s-$n-$v.json > $O/s-$n-$v.log 2>&1; echo "s-$n-$v rc=$? $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY|passed' $O/s-$n-$v.log | tail -2 | tr '\n' ' ')"; }
s memcheck dma X=0 > $O/s1.txt & s racecheck dma X=0 > $O/s2.txt & s racecheck mha DMABENCH_CUDA_BWD_KEYPAR=0 > $O/s3.txt & wait; cat $O/s1.txt $O/s2.txt $O/s3.txt
t sanitized
tar czf $OUT/o.tgz -C $OUT o
K="kernels --backend cuda --dtype bf16 --warmup 1 --repeats 1 --check-n 0 --w 1024 --b 1 --hq 32 --hkv 8 --d 128 --mode fwdbwd --variants dma --n 8192"
OUT=$O PER=2 timeout 80 sh scripts/gpu-profile.sh split $B $K > $O/p-split.txt 2>&1; cat $O/profile-split.txt
t done
find $O -name '*.json' -size +100k -delete; find $O -name '*.jsonl' -delete
tar czf $OUT/o.tgz -C $OUT o
