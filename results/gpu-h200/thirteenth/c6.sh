#!/bin/sh
# call 6: review mends (nsa's group dot products and union start shared; the fused decode without the split's plan and list): verify, memcheck, decode
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=4
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv > $O/smi.txt
NEW=./gpupack/new/dmabench
t verify
v() { n=$1; shift; (env "$@" timeout 240 $NEW verify --backend cuda --quiet --out $O/v-$n.json > $O/v-$n.log 2>&1; echo $? > $O/v-$n.rc) & }
v bf16 X=0 --dtype bf16; v f16 X=0 --dtype f16
v nsatc0 DMABENCH_NSA_TC=0 --dtype bf16 --variants nsa; v union DMABENCH_NSA_SLC=union --dtype bf16 --variants nsa
v union16 DMABENCH_NSA_SLC=union --dtype f16 --variants nsa; v pairs DMABENCH_NSA_SLC=pairs --dtype bf16 --variants nsa
v nsatc0f16 DMABENCH_NSA_TC=0 --dtype f16 --variants nsa
(DMABENCH_NSA_SLC=union timeout 200 compute-sanitizer --tool memcheck --error-exitcode 9 $NEW kernels --backend cuda --variants nsa --n 1100 --b 1 --hq 8 --hkv 2 --d 128 --w 256 --mode fwdbwd --warmup 0 --repeats 1 > $O/san-mem-nsa.log 2>&1; echo $? > $O/san-mem-nsa.rc) &
(timeout 200 $NEW kernels --backend cuda --variants dma --n 70000,131072 --w 1024,4096 --b 1 --hq 8 --hkv 2 --d 128 --dtype bf16 --mode decode --dma-z random,clustered,rising --check-n 131072 --warmup 1 --repeats 3 --out $O/kz.json > $O/kz.log 2>&1; echo $? > $O/kz.rc) &
wait
for n in bf16 f16 nsatc0 nsatc0f16 union union16 pairs; do echo "v-$n rc=$(cat $O/v-$n.rc) $(grep '^verify:' $O/v-$n.log | tail -1)"; done
echo "memcheck nsa union rc=$(cat $O/san-mem-nsa.rc) $(grep 'ERROR SUMMARY' $O/san-mem-nsa.log)"
echo "decode full-size checks rc=$(cat $O/kz.rc) ok=$(grep -c '"status":[[:space:]]*"ok"' $O/kz.json) of 12"
t decode
dec() { timeout 60 $NEW kernels --backend cuda --b 1 --hq 32 --hkv 8 --d 128 --dtype bf16 --mode decode --w 1024 --warmup 5 --repeats 40 --variants dma --dma-z $3 --n $2 --out $O/d-$1.json > $O/d-$1.log 2>&1; echo "$1 rc=$? $(grep -E '^\| dma' $O/d-$1.log | cut -d'|' -f2,6,11,12,14,16)"; }
dec rand-1 524288 random; dec rand65k 65536 random; dec rand-2 524288 random
t done
tar czf $OUT/o.tgz -C $OUT o
