#!/bin/sh
# call 7 (twenty-sixth set): w4 (the compression's rows load a row's sums before storing) against w3 (main).
# Checks on w4: verify of nsa in bf16 and f16 (f16 takes the lo products), memcheck of nsa's fwd+bwd cells. Then nsa
# at the model's shape and training, w3/w4 alternated twice; the rows' kernel under Nsight Compute
for p in w3 w4; do [ -d gpupack/$p ] || tar xJf gpupack/$p.tar.xz -C gpupack; done
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=2
A=./gpupack/w3/dmabench B=./gpupack/w4/dmabench
okc() { grep -c '"status":[[:space:]]*"ok"' $1; }
v() { (env $2 timeout 150 $B verify --backend cuda --variants $3 --dtype $4 --quiet --out $O/v-$1.json > $O/v-$1.log 2>&1; echo $? > $O/v-$1.rc) & }
v bf16 X=0 nsa bf16; v f16 X=0 nsa f16
(timeout 150 compute-sanitizer --tool memcheck --error-exitcode 9 $B kernels --backend cuda --variants nsa --n 300,2048 --w 128 --b 1 --hq 8 --hkv 2 --d 128,64 --dtype bf16 --mode fwdbwd --warmup 0 --repeats 1 --out $O/s-mem.json > $O/san-mem.log 2>&1; echo $? > $O/san-mem.rc) &
wait
for x in bf16 f16; do echo "verify $x rc=$(cat $O/v-$x.rc) $(grep '^verify:' $O/v-$x.log | tail -1)"; grep FAIL $O/v-$x.log | head -3; done
echo "mem rc=$(cat $O/san-mem.rc) $(grep 'SUMMARY' $O/san-mem.log) cells ok $(okc $O/s-mem.json)"
tar czf $OUT/o.tgz -C $OUT o
t kernels
K="kernels --backend cuda --dtype bf16 --warmup 2 --repeats 5 --check-n 0"
k() { timeout 100 $2 $K $3 --out $O/k-$1.json > $O/k-$1.log 2>&1; echo "$1 rc=$? $(grep -E '^\| (mha|dma|swa|nsa)' $O/k-$1.log | cut -d"|" -f2,4,6,9,11,12 | tr '\n' ' ')"; }
NT="--mode fwd,fwdbwd --variants nsa --n 8192 --w 512 --b 2 --hq 6 --hkv 3 --d 128"
for r in 1 2; do k w3-nt-$r $A "$NT"; k w4-nt-$r $B "$NT"; done
tar czf $OUT/o.tgz -C $OUT o
t train
export OMP_NUM_THREADS=8
trn() { RUNS="$2" DMABENCH=$3 OUT=$O/train-$1 sh scripts/gpu-train-bench.sh 2>&1 | grep -v '^{' | grep -v H200 | sed "s/^/$1 /"; rm -f $O/train-$1/bytes.txt; tar czf $OUT/o.tgz -C $OUT o; }
trn w3 "nsa:8192:2" $A; trn w4 "nsa:8192:2" $B; trn w3-2 "nsa:8192:2" $A; trn w4-2 "nsa:8192:2" $B
t profile
cat README.md docs/*.md > /tmp/bytes.txt
TR="train --config model/configs/gpu-131m-nsa.json --data /tmp/bytes.txt --out /tmp/prof-run --backend cuda --context 8192 --batch-size 2 --steps 2 --log-every 1 --force --quiet"
OUT=$O timeout 60 sh scripts/gpu-kernel-profile.sh cmprows nsa_cmp_bwd_rows_wide_kernel 24 $B $TR > $O/kp-cmprows.log 2>&1; echo "rc=$?"; head -24 $O/kp-cmprows.log
t done
rm -f $O/v-*.json; find $O -name '*.json' -size +300k -delete; find $O -name '*.jsonl' -delete
tar czf $OUT/o.tgz -C $OUT o
