#!/bin/sh
# call 1 (twenty-first set): issue 8. next/qkvrem's op tests; nsa's training at 8192 with the selected branch
# by default / pairs / union (n29 = main), and with next/qkvrem (narrow dW kernel); mha at 8192 for the ratio;
# then a training profile of qkv's nsa step
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=8
A=./gpupack/n29/dmabench Q=./gpupack/qkv/dmabench
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader > $O/gpu.txt; cat $O/gpu.txt
t optests
echo "op tests: not in this call (carry limit)"
t train
tr() { env $4 RUNS="$2" DMABENCH=$3 OUT=$O/train-$1 sh scripts/gpu-train-bench.sh 2>&1 | grep -v '^{' | grep -v H200 | sed "s/^/$1 /"; rm -f $O/train-$1/bytes.txt; }
tr def "nsa:8192:2" $A X=0
tr pairs "nsa:8192:2" $A DMABENCH_NSA_SLC=pairs
tr union "nsa:8192:2" $A DMABENCH_NSA_SLC=union
tr qkv "nsa:8192:2 mha:8192:2" $Q X=0
tr stats "nsa:8192:2" $A "DMABENCH_NSA_SLC_STATS=1 STEPS=5"
grep 'selected branch' $O/train-stats/train-nsa-8192.log | sort | uniq -c | sort -rn | head -8
tr def2 "nsa:8192:2" $A X=0
tar czf $OUT/o.tgz -C $OUT o
t profile
OUT=$O/prof DMABENCH=$Q timeout 200 sh scripts/gpu-train-profile.sh nsa 8192 2 > $O/prof.log 2>&1; echo "prof rc=$?"
head -30 $O/prof/profile-train-nsa-8192.txt
gzip $O/prof/ncu-*.csv 2>/dev/null
t done
find $O -name '*.json' -size +300k -delete; find $O -name '*.jsonl' -size +300k -delete
tar czf $OUT/o.tgz -C $OUT o
