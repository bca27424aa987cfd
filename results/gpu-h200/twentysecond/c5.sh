#!/bin/sh
# call 5 (twenty-second set): main at n34: dma's training at 8192 (alone on the GPU), then tests/gpu.sh's
# sanitize-optin list run all at once, each run's log kept as it ends (the part itself reports only at its end)
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=8
B=./gpupack/main/dmabench
t train
tr() { env $3 RUNS="$2" DMABENCH=$B OUT=$O/train-$1 sh scripts/gpu-train-bench.sh 2>&1 | grep -v '^{' | grep -v H200 | sed "s/^/$1 /"; rm -f $O/train-$1/bytes.txt; }
tr d8k "dma:8192:2" X=0
tar czf $OUT/o.tgz -C $OUT o
t sanitize-optin
export OMP_NUM_THREADS=2
SOPT=$(sed -n '/SOPT="/,/"$/p' tests/gpu.sh | sed 's/.*SOPT="//; s/"$//' | tr '\n' ' ')
for o in $SOPT; do
  tool=${o%%:*} rest=${o#*:}; sw=${rest%%:*} vs=${rest#*:}
  (env $(echo "$sw" | tr '+' ' ') timeout 370 compute-sanitizer --tool $tool --error-exitcode 9 $B verify --backend cuda --variants "$vs" --quiet --out $O/opt-$tool-$sw.json > $O/opt-$tool-$sw.log 2>&1; echo $? > $O/opt-$tool-$sw.rc) &
done
wait
for o in $SOPT; do
  tool=${o%%:*} rest=${o#*:}; sw=${rest%%:*} vs=${rest#*:}; n=opt-$tool-$sw
  echo "$tool $vs with $sw: rc=$(cat $O/$n.rc) $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' $O/$n.log) $(grep '^verify:' $O/$n.log | tail -1)"
done
t done
find $O -name '*.json' -delete; find $O -name '*.jsonl' -delete
tar czf $OUT/o.tgz -C $OUT o
