#!/bin/sh
# call 7: call 6's verify runs again (call 6 passed their options to env, not to dmabench)
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=4
NEW=./gpupack/new/dmabench
v() { n=$1 e=$2; shift 2; (env "$e" timeout 200 $NEW verify --backend cuda --quiet --out $O/v-$n.json "$@" > $O/v-$n.log 2>&1; echo $? > $O/v-$n.rc) & }
v bf16 X=0 --dtype bf16; v f16 X=0 --dtype f16
v nsatc0 DMABENCH_NSA_TC=0 --dtype bf16 --variants nsa; v nsatc0f16 DMABENCH_NSA_TC=0 --dtype f16 --variants nsa
v union DMABENCH_NSA_SLC=union --dtype bf16 --variants nsa; v union16 DMABENCH_NSA_SLC=union --dtype f16 --variants nsa
v pairs DMABENCH_NSA_SLC=pairs --dtype bf16 --variants nsa
wait
for n in bf16 f16 nsatc0 nsatc0f16 union union16 pairs; do echo "v-$n rc=$(cat $O/v-$n.rc) $(grep '^verify:' $O/v-$n.log | tail -1)"; done
echo "[$(( $(date +%s)-S0 ))s] done"
rm -f $O/v-bf16.json $O/v-f16.json
tar czf $OUT/o.tgz -C $OUT o
