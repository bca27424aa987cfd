#!/bin/sh
# call 11 (sixteenth set): the key-parallel backward with keys at positions of their own (nsa's compressed branch): nsa at 65536 by default (now key-parallel there) and with DMABENCH_CUDA_BWD_KEYPAR=0; verify of nsa forced and by default; memcheck forced
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
NEW=./gpupack/kpos/dmabench
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader > $O/gpu.txt
(env DMABENCH_CUDA_BWD_KEYPAR=1 timeout 150 $NEW verify --backend cuda --dtype bf16 --variants nsa,mha --quiet --out $O/v-kp.json > $O/v-kp.log 2>&1; echo $? > $O/v-kp.rc) &
(env DMABENCH_CUDA_BWD_KEYPAR=1 timeout 150 $NEW verify --backend cuda --dtype f16 --variants nsa --quiet --out $O/v-kp16.json > $O/v-kp16.log 2>&1; echo $? > $O/v-kp16.rc) &
(timeout 150 $NEW verify --backend cuda --dtype bf16 --variants nsa --quiet --out $O/v-def.json > $O/v-def.log 2>&1; echo $? > $O/v-def.rc) &
(env DMABENCH_CUDA_BWD_KEYPAR=1 timeout 150 compute-sanitizer --tool memcheck --error-exitcode 9 $NEW verify --backend cuda --variants nsa --quiet > $O/san-mem.log 2>&1; echo $? > $O/san-mem.rc) &
wait
t verified
for v in kp kp16 def; do echo "verify $v rc=$(cat $O/v-$v.rc) $(grep '^verify:' $O/v-$v.log | tail -1)"; grep FAIL $O/v-$v.log | head -3; done
echo "memcheck rc=$(cat $O/san-mem.rc) $(grep 'ERROR SUMMARY' $O/san-mem.log)"
K="kernels --backend cuda --b 1 --hq 32 --hkv 8 --d 128 --dtype bf16 --mode fwdbwd --warmup 1 --repeats 3 --check-n 0 --variants nsa --n 65536 --w 512"
for m in def:X=0 qt:DMABENCH_CUDA_BWD_KEYPAR=0; do env ${m#*:} timeout 60 $NEW $K --out $O/k-${m%%:*}.json > $O/k-${m%%:*}.log 2>&1; echo "${m%%:*} rc=$? $(grep -E '^\| nsa' $O/k-${m%%:*}.log | cut -d'|' -f2,4,6,9,11,12)"; done
t done
rm -f $O/v-*.json; find $O -name '*.jsonl' -delete
tar czf $OUT/o.tgz -C $OUT o
