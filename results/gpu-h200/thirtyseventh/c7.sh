#!/bin/sh
# p39e (main 9cf4316 + dm_cluster_fits and align_sw128; branch tidy/cluster-fits). Verify every variant in bf16 with the
# default and with WS=1 (every forward on fw1's multicast rows); memcheck of dma with the default; the probe (every op).
[ -d gpupack/p39e ] || tar xJf gpupack/p39e.tar.xz -C gpupack
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=3
B=./gpupack/p39e/dmabench
v() { n=$1; e=$2; shift 2; env $e timeout 120 $B verify --backend cuda --quiet "$@" --out $O/v-$n.json > $O/v-$n.log 2>&1; echo "$?" > $O/v-$n.rc; }
(timeout 165 compute-sanitizer --tool memcheck --error-exitcode 9 $B verify --backend cuda --variants dma --quiet --out $O/s-memcheck.json > $O/s-memcheck.log 2>&1; echo "s-memcheck rc=$? $(grep -E 'ERROR SUMMARY|passed' $O/s-memcheck.log | tail -2 | tr '\n' ' ')" > $O/s.txt) &
v def X=0 --dtype bf16 & v ws1 DMABENCH_CUDA_FWD_WS=1 --dtype bf16 & wait; t verified
for f in $O/v-*.log; do n=$(basename $f .log); r=$(grep passed $f | tail -1); echo "$n rc=$(cat $O/$n.rc): $r"; echo "$r" | grep -q ' 0 failed' || grep -m8 -E "FAIL|fail|rror" $f; done
cat $O/s.txt
tar czf $OUT/o.tgz -C $OUT o
timeout 25 $B probe --out $O/probe.json > $O/probe.txt 2>&1; echo "probe rc=$?"; tail -22 $O/probe.txt
t done
find $O -name '*.json' -size +100k -delete
tar czf $OUT/o.tgz -C $OUT o
