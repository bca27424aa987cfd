#!/bin/sh
# p29b: slc_choose_pairs (DMABENCH_NSA_SLC=auto / _STATS=1) takes its counts' places from pair_layout.
# verify of nsa in bf16 (default, and SLC=auto with the stats) and f16 (SLC=auto); memcheck of nsa's fwd+bwd cells with SLC=auto
[ -d gpupack/p29b ] || tar xJf gpupack/p29b.tar.xz -C gpupack
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
B=./gpupack/p29b/dmabench
export OMP_NUM_THREADS=4
v() { (env $2 timeout 200 $B verify --backend cuda --variants nsa --dtype $3 --quiet --out $O/v-$1.json > $O/v-$1.log 2>&1; echo $? > $O/v-$1.rc) & }
v bf16 X=0 bf16; v auto-bf16 "DMABENCH_NSA_SLC=auto DMABENCH_NSA_SLC_STATS=1" bf16; v auto-f16 DMABENCH_NSA_SLC=auto f16
(DMABENCH_NSA_SLC=auto timeout 200 compute-sanitizer --tool memcheck --error-exitcode 9 $B kernels --backend cuda --variants nsa --n 300,2048 --w 128 --b 1 --hq 8 --hkv 2 --d 128,64 --dtype bf16 --mode fwdbwd --warmup 0 --repeats 1 --out $O/s-mem.json > $O/san-mem.log 2>&1; echo $? > $O/san-mem.rc) &
wait
for x in bf16 auto-bf16 auto-f16; do echo "verify $x rc=$(cat $O/v-$x.rc) $(grep '^verify:' $O/v-$x.log | tail -1)"; grep FAIL $O/v-$x.log | head -3; done
echo "stats lines: $(grep -c 'nsa: selected branch' $O/v-auto-bf16.log)"; grep 'nsa: selected branch' $O/v-auto-bf16.log | sort | uniq -c | sort -rn | head -5
echo "mem rc=$(cat $O/san-mem.rc) $(grep 'SUMMARY' $O/san-mem.log) cells ok $(grep -c '"status":[[:space:]]*"ok"' $O/s-mem.json)"
t done
rm -f $O/v-*.json
tar czf $OUT/o.tgz -C $OUT o
