#!/bin/sh
# p35a (main at 371efed) and p35b (next/kv-pin, 492b11e: the reducer tiles keep their K/V copies' operands live
# until the next block's wait). Verify p35b in bf16 and f16, dma fwd+bwd A/B alternated (3 rounds at 8192, 1 at
# 65536), p35b's backward kernel and p35a's forward (with O's residual) profiled, memcheck and racecheck of p35b.
for p in p35a p35b; do [ -d gpupack/$p ] || tar xJf gpupack/$p.tar.xz -C gpupack; done
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=4
A=./gpupack/p35a/dmabench B=./gpupack/p35b/dmabench
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader > $O/gpu.txt; cat $O/gpu.txt
v() { n=$1; e=$2; shift 2; env $e timeout 240 $B verify --backend cuda --quiet "$@" --out $O/v-$n.json > $O/v-$n.log 2>&1; echo "$?" > $O/v-$n.rc; }
v b-bf16 X=0 --dtype bf16 & v b-f16 X=0 --dtype f16 & wait; t verified
for f in $O/v-*.log; do n=$(basename $f .log); echo "$n rc=$(cat $O/$n.rc): $(grep passed $f | tail -1)"; done
tar czf $OUT/o.tgz -C $OUT o
AB="--backend cuda --dtype bf16 --warmup 2 --repeats 5 --check-n 0 --w 1024 --b 1 --hq 32 --hkv 8 --d 128 --mode fwdbwd --variants dma"
OUT=$O/ab8k timeout 150 sh scripts/kernels-ab.sh 3 DMABENCH=$A DMABENCH=$B -- $AB --n 8192 > $O/ab8k.txt 2>&1; tail -4 $O/ab8k.txt
OUT=$O/ab65 timeout 90 sh scripts/kernels-ab.sh 1 DMABENCH=$A DMABENCH=$B -- $AB --n 65536 --repeats 3 > $O/ab65.txt 2>&1; tail -3 $O/ab65.txt
t timed
tar czf $OUT/o.tgz -C $OUT o
K="kernels --backend cuda --dtype bf16 --warmup 1 --repeats 1 --check-n 0 --w 1024 --b 1 --hq 32 --hkv 8 --d 128 --mode fwdbwd --variants dma --n 8192"
OUT=$O timeout 120 sh scripts/gpu-kernel-profile.sh pin bwd_main_kernel 1 $B $K > $O/p-pin.txt 2>&1; t profiled; tail -6 $O/p-pin.txt
OUT=$O timeout 120 sh scripts/gpu-kernel-profile.sh fwdres attn_fwd_kernel 1 $A $K > $O/p-fwdres.txt 2>&1; t profiled; tail -6 $O/p-fwdres.txt
tar czf $OUT/o.tgz -C $OUT o
s() { n=$1; timeout 290 compute-sanitizer --tool $n --error-exitcode 9 $B verify --backend cuda --variants dma --quiet --out $O/s-$n.json > $O/s-$n.log 2>&1; echo "s-$n rc=$? $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY|passed' $O/s-$n.log | tail -2 | tr '\n' ' ')"; }
s memcheck & s racecheck & wait
t done
find $O -name '*.json' -size +100k -delete; find $O -name '*.jsonl' -delete
tar czf $OUT/o.tgz -C $OUT o
