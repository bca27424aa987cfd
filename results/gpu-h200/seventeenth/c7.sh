#!/bin/sh
# call 7 (seventeenth set): k3 (main's k2 with the copy's per-thread destinations in one helper; its PTX order differs):
# verify in bf16 and f16, memcheck of mha and dma, and a timing against k2 (mha fwd 8192, dma fwd 65536)
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=8
K2=./gpupack/k2/dmabench K3=./gpupack/k3/dmabench
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader > $O/gpu.txt; cat $O/gpu.txt
for dt in bf16 f16; do (timeout 120 $K3 verify --backend cuda --dtype $dt --quiet --out $O/v-$dt.json > $O/v-$dt.log 2>&1; echo $? > $O/v-$dt.rc) & done
(timeout 130 compute-sanitizer --tool memcheck --error-exitcode 9 $K3 verify --backend cuda --variants mha,dma --quiet > $O/san-mem.log 2>&1; echo $? > $O/san-mem.rc) &
wait
for v in bf16 f16; do echo "verify $v rc=$(cat $O/v-$v.rc) $(grep '^verify:' $O/v-$v.log | tail -1)"; grep FAIL $O/v-$v.log | head -3; done
echo "memcheck rc=$(cat $O/san-mem.rc) $(grep 'ERROR SUMMARY' $O/san-mem.log)"
t kernels
K="kernels --backend cuda --dtype bf16 --warmup 2 --repeats 7 --check-n 0"
for x in k2:$K2 k3:$K3; do n=${x%%:*}; bin=${x#*:}
  timeout 40 $bin $K --variants mha,dma --n 8192 --w 1024 --b 1 --hq 32 --hkv 8 --d 128 --mode fwd --out $O/k-$n.json > $O/k-$n.log 2>&1; echo "$n rc=$? $(grep -E '^\| (mha|dma)' $O/k-$n.log | cut -d'|' -f2,4,6,9,11,12 | tr '\n' ' ')"
done
t done
rm -f $O/v-*.json; find $O -name '*.json' -size +300k -delete
tar czf $OUT/o.tgz -C $OUT o
