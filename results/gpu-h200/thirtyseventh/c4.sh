#!/bin/sh
# p39c (main 70cef01 + DMABENCH_CUDA_TILE_ORDER: fw1's and the query-tile backward's CTAs with the heads fastest; branch
# next/tile-order 40c5141). Verify every variant in bf16 with =all, and with =all and WS=1 (every forward on fw1); A/B
# of the fwd+bwd at 8192 (dma: -, fwd, bwd, all; mha, swa: -, all) and dma's at 65536; memcheck of dma with =all,
# racecheck of dma with =all in 3 shards.
[ -d gpupack/p39c ] || tar xJf gpupack/p39c.tar.xz -C gpupack
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=3
B=./gpupack/p39c/dmabench
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader > $O/gpu.txt; cat $O/gpu.txt
TA=DMABENCH_CUDA_TILE_ORDER=all
e() { echo "$1" | tr '+' ' '; }
v() { n=$1; s=$2; shift 2; env $(e $s) timeout 200 $B verify --backend cuda --quiet "$@" --out $O/v-$n.json > $O/v-$n.log 2>&1; echo "$?" > $O/v-$n.rc; }
v all $TA --dtype bf16 & v allws1 $TA+DMABENCH_CUDA_FWD_WS=1 --dtype bf16 & v allf16 $TA --dtype f16 --variants dma & wait; t verified
for f in $O/v-*.log; do n=$(basename $f .log); r=$(grep passed $f | tail -1); echo "$n rc=$(cat $O/$n.rc): $r"; echo "$r" | grep -q ' 0 failed' || grep -m8 -E "FAIL|fail|rror" $f; done
tar czf $OUT/o.tgz -C $OUT o
AB="--backend cuda --dtype bf16 --warmup 2 --repeats 5 --check-n 0 --b 1 --hq 32 --hkv 8 --d 128 --w 1024"
DMABENCH=$B OUT=$O/ab8 timeout 150 sh scripts/kernels-ab.sh 3 - DMABENCH_CUDA_TILE_ORDER=fwd DMABENCH_CUDA_TILE_ORDER=bwd $TA -- $AB --n 8192 --variants dma --mode fwdbwd > $O/ab8.txt 2>&1; tail -3 $O/ab8.txt
DMABENCH=$B OUT=$O/abo timeout 100 sh scripts/kernels-ab.sh 2 - $TA -- $AB --n 8192 --variants mha,swa --mode fwdbwd > $O/abo.txt 2>&1; tail -4 $O/abo.txt
DMABENCH=$B OUT=$O/ab64 timeout 100 sh scripts/kernels-ab.sh 1 - $TA -- $AB --n 65536 --repeats 3 --variants dma --mode fwdbwd > $O/ab64.txt 2>&1; tail -3 $O/ab64.txt
t timed
tar czf $OUT/o.tgz -C $OUT o
s() { n=$1; tag=$2; x=$3; shift 3; env $(e $x) timeout 250 compute-sanitizer --tool $n --error-exitcode 9 $B verify --backend cuda --variants dma --quiet "$@" --out $O/s-$n-$tag.json > $O/s-$n-$tag.log 2>&1; echo "s-$n-$tag rc=$? $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY|passed' $O/s-$n-$tag.log | tail -2 | tr '\n' ' ')"; }
s memcheck all $TA > $O/s1.txt & s racecheck all-1 $TA --shard 1/3 > $O/s2.txt & s racecheck all-2 $TA --shard 2/3 > $O/s3.txt & s racecheck all-3 $TA --shard 3/3 > $O/s4.txt & wait
cat $O/s1.txt $O/s2.txt $O/s3.txt $O/s4.txt
t done
find $O -name '*.json' -size +100k -delete; find $O -name '*.jsonl' -delete
tar czf $OUT/o.tgz -C $OUT o
