#!/bin/sh
# call 8: g3 (nsa's position-term gradient from one column sum per kv head): checks, timings, training
B=./gpubuild/dmabench; O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive
v() { n=$1 e=$2; shift 2; (env OMP_NUM_THREADS=2 $e timeout 150 $B verify --backend cuda --quiet --out $O/$n.json "$@" > $O/$n.log 2>&1; echo $? > $O/$n.rc) & }
v v-nsa-bf16 X=1 --variants nsa --dtype bf16
v v-nsa-f16 X=1 --variants nsa --dtype f16
v v-nsa-f32 X=1 --variants nsa --dtype f32
v v-nsa-notc DMABENCH_NSA_CMP_TC=0 --variants nsa --dtype bf16
v v-nsa-nosaved DMABENCH_NSA_SAVED=0 --variants nsa --dtype bf16
(timeout 150 compute-sanitizer --tool memcheck --error-exitcode 9 $B kernels --backend cuda --warmup 0 --repeats 1 --quiet --variants nsa --mode fwdbwd --n 1100 --check-n 1100 --hq 8 --hkv 2 --d 128,64 > $O/san-mem-nsa.log 2>&1; echo "rc=$?" >> $O/san-mem-nsa.log) &
(DMABENCH_GPU=1 timeout 150 ./gpubuild/tests/test_model_gpu_train > $O/tmt.log 2>&1; echo "rc=$?" >> $O/tmt.log) &
wait
for n in v-nsa-bf16 v-nsa-f16 v-nsa-f32 v-nsa-notc v-nsa-nosaved; do echo "$n rc=$(cat $O/$n.rc) $(grep '^verify:' $O/$n.log | tail -1)"; done
echo "memcheck: $(tail -1 $O/san-mem-nsa.log) $(grep 'ERROR SUMMARY' $O/san-mem-nsa.log | tail -1)"
echo "model train tests: $(grep -c '^ok' $O/tmt.log) ok, $(grep -c '^not ok' $O/tmt.log) not ok, $(tail -1 $O/tmt.log)"
t kernels
timeout 90 $B kernels --backend cuda --b 1 --hq 32 --hkv 8 --d 128 --dtype bf16 --warmup 2 --repeats 5 --variants nsa --n 8192,65536 --mode fwdbwd --w 512 --nsa-n 16 --out $O/k-nsa.json > $O/k-nsa.log 2>&1; echo rc=$?; grep -E '^\| nsa' $O/k-nsa.log | cut -d'|' -f2,4,6,9,11,12
t train
cat README.md docs/*.md > /tmp/bytes.txt; mkdir -p $O/train
timeout 60 $B train --config model/configs/gpu-131m-nsa.json --data /tmp/bytes.txt --out /tmp/tr-nsa --backend cuda --context 8192 --batch-size 2 --steps 30 --log-every 5 --force --quiet > $O/train/train-nsa-8192.log 2>&1; echo "nsa rc=$?"; cp /tmp/tr-nsa/train_log.jsonl $O/train/train-nsa-8192.jsonl; grep '"tokens_per_s"' /tmp/tr-nsa/train_log.jsonl | grep -v event | tail -1 | cut -c1-170
t done
tar czf $OUT/o.tgz -C $OUT o
