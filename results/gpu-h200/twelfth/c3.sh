#!/bin/sh
# call 3: f1 second version (keys in shared memory, select's shared prefix skipped),
# g1/g4 (8-wide convert, nsa gate_dout and combine), t9 (split qkv GEMMs):
# verify, sanitizers, model tests, decode timings, training throughput
B=./gpubuild/dmabench; O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv > $O/nvidia-smi.csv
t verify
v() { n=$1 e=$2; shift 2; (env OMP_NUM_THREADS=3 $e timeout 240 $B verify --backend cuda --quiet --out $O/$n.json "$@" > $O/$n.log 2>&1; echo $? > $O/$n.rc) & }
v v-all-bf16 X=1 --dtype bf16
v v-all-f16 X=1 --dtype f16
v v-all-f32 X=1 --dtype f32
v v-dma-nofused DMABENCH_DECODE_FUSED=0 --variants dma --dtype bf16
v v-dma-exact DMABENCH_DECODE_SEL_SAMPLE=0 --variants dma --dtype bf16
wait
for n in v-all-bf16 v-all-f16 v-all-f32 v-dma-nofused v-dma-exact; do echo "$n rc=$(cat $O/$n.rc) $(grep '^verify:' $O/$n.log | tail -1)"; grep -E 'FAIL|not ok' $O/$n.log | head -5; done
t sanitize
KS="$B kernels --backend cuda --warmup 0 --repeats 1 --quiet"
(timeout 150 compute-sanitizer --tool memcheck --error-exitcode 9 $KS --variants dma --mode decode --n 70000,5000 --check-n 70000 --w 1024,3000 --hq 32 --hkv 8 --d 128,64 --dma-z random,rising > $O/san-mem-dec.log 2>&1; echo "rc=$?" >> $O/san-mem-dec.log) &
(timeout 150 compute-sanitizer --tool racecheck --error-exitcode 9 $KS --variants dma --mode decode --n 5000 --check-n 5000 --w 1024 --hq 32 --hkv 8 --d 128 > $O/san-race-dec.log 2>&1; echo "rc=$?" >> $O/san-race-dec.log) &
(timeout 150 compute-sanitizer --tool memcheck --error-exitcode 9 $KS --variants nsa,mha --mode fwd,fwdbwd --n 1100 --check-n 1100 --hq 8 --hkv 2 --d 128 > $O/san-mem-nsa.log 2>&1; echo "rc=$?" >> $O/san-mem-nsa.log) &
(DMABENCH_GPU=1 timeout 200 ./gpubuild/tests/test_model_gpu_train > $O/tmt.log 2>&1; echo "rc=$?" >> $O/tmt.log) &
wait
for n in san-mem-dec san-race-dec san-mem-nsa; do echo "$n: $(tail -1 $O/$n.log) $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' $O/$n.log | tail -1)"; done
echo "model train tests: $(grep -c '^ok' $O/tmt.log) ok, $(grep -c '^not ok' $O/tmt.log) not ok, $(tail -1 $O/tmt.log)"; grep '^not ok' $O/tmt.log | head
K="$B kernels --backend cuda --b 1 --hq 32 --hkv 8 --d 128 --dtype bf16 --mode decode --w 1024 --warmup 5 --repeats 30"
t decode
for r in 1 2; do
  for f in 1 0; do
    DMABENCH_DECODE_FUSED=$f timeout 60 $K --variants dma --n 524288,65536 --dma-z random,clustered,rising --out $O/k-dec-f$f-r$r.json > $O/k-dec-f$f-r$r.log 2>&1; echo "fused=$f run $r rc=$?"; grep -E '^\| dma' $O/k-dec-f$f-r$r.log | cut -c1-120
  done
done
t train
cat README.md docs/*.md > /tmp/bytes.txt; mkdir -p $O/train
for v in nsa mha; do
  timeout 120 $B train --config model/configs/gpu-131m-$v.json --data /tmp/bytes.txt --out /tmp/tr-$v --backend cuda --context 8192 --batch-size 2 --steps 30 --log-every 5 --force --quiet > $O/train/train-$v-8192.log 2>&1; echo "$v rc=$?"
  cp /tmp/tr-$v/train_log.jsonl $O/train/train-$v-8192.jsonl; grep '"tokens_per_s"' /tmp/tr-$v/train_log.jsonl | grep -v event | tail -1 | cut -c1-200
done
t done
tar czf $OUT/o.tgz -C $OUT o
