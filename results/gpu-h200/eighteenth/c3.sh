#!/bin/sh
# call 3 (eighteenth set): n18 (nsa's selection-block scores as a product with the overlaps) against
# DMABENCH_NSA_SEL_MMA=0 (the pair loop, as main) in one binary: nsa fwd and fwd+bwd at 8192 and 65536, the selection's
# profile, nsa training at 8192; verify (bf16, f16, bf16 with the pair loop), memcheck, racecheck
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=8
B=./gpupack/n18/dmabench
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader > $O/gpu.txt; cat $O/gpu.txt
okc() { grep -c '"status":[[:space:]]*"ok"' $1; }
timeout 60 $B kernels --backend cuda --variants nsa --n 300,2048 --w 128 --b 2 --hq 8 --hkv 2 --d 128,64 --dtype bf16 --mode fwdbwd --warmup 0 --repeats 1 --out $O/q.json > $O/q.log 2>&1; echo "quick rc=$? ok=$(okc $O/q.json) of 4"
K="kernels --backend cuda --dtype bf16 --warmup 2 --repeats 5 --check-n 0"
k() { env $2 timeout 120 $B $K $3 --out $O/k-$1.json > $O/k-$1.log 2>&1; echo "$1 rc=$? $(grep -E '^\| (mha|dma|swa|nsa)' $O/k-$1.log | cut -d'|' -f2,4,5,6,9,11,12 | tr '\n' ' ')"; }
t kernels
for r in 1 2; do
  k base-$r DMABENCH_NSA_SEL_MMA=0 "--mode fwd,fwdbwd --variants nsa --n 8192,65536 --w 512 --b 1 --hq 32 --hkv 8 --d 128"
  k n18-$r X=0 "--mode fwd,fwdbwd --variants nsa --n 8192,65536 --w 512 --b 1 --hq 32 --hkv 8 --d 128"
done
t train
cat README.md docs/*.md > /tmp/bytes.txt
for x in base:DMABENCH_NSA_SEL_MMA=0 n18:X=0; do n=${x%%:*}; e=${x#*:}
  env $e timeout 100 $B train --config model/configs/gpu-131m-nsa.json --data /tmp/bytes.txt --out /tmp/tr-$n --backend cuda --context 8192 --batch-size 2 --steps 30 --log-every 5 --force --quiet > $O/train-$n.log 2>&1; echo "train $n rc=$?"
  cp /tmp/tr-$n/train_log.jsonl $O/train-$n.jsonl; grep '"tokens_per_s"' /tmp/tr-$n/train_log.jsonl | grep -v event | grep -o '"tokens_per_s":[0-9.e+]*' | tr '\n' ' '; echo
done
t profile
PR="kernels --backend cuda --variants nsa --n 65536 --w 512 --b 1 --hq 32 --hkv 8 --d 128 --dtype bf16 --mode fwd --warmup 1 --repeats 1 --check-n 0"
OUT=$O/prof timeout 150 sh scripts/gpu-kernel-profile.sh n18sel nsa_select_tc 1 $B $PR 2>&1 | tail -24
t checks
for dt in bf16 f16; do (timeout 250 $B verify --backend cuda --variants nsa --dtype $dt --quiet --out $O/v-$dt.json > $O/v-$dt.log 2>&1; echo $? > $O/v-$dt.rc) & done
(DMABENCH_NSA_SEL_MMA=0 timeout 250 $B verify --backend cuda --variants nsa --dtype bf16 --quiet --out $O/v-nomma.json > $O/v-nomma.log 2>&1; echo $? > $O/v-nomma.rc) &
(timeout 250 compute-sanitizer --tool memcheck --error-exitcode 9 $B kernels --backend cuda --variants nsa --n 300,2048 --w 128 --b 2 --hq 8 --hkv 2 --d 128,64 --dtype bf16 --mode fwdbwd --warmup 0 --repeats 1 --out $O/mem.json > $O/san-mem.log 2>&1; echo $? > $O/san-mem.rc) &
(timeout 250 compute-sanitizer --tool racecheck --error-exitcode 9 $B kernels --backend cuda --variants nsa --n 300,2048 --w 128 --b 1 --hq 8 --hkv 2 --d 128,64 --dtype bf16 --mode fwdbwd --warmup 0 --repeats 1 --out $O/race.json > $O/san-race.log 2>&1; echo $? > $O/san-race.rc) &
wait
for v in bf16 f16 nomma; do echo "verify $v rc=$(cat $O/v-$v.rc) $(grep '^verify:' $O/v-$v.log | tail -1)"; grep FAIL $O/v-$v.log | head -3; done
echo "memcheck rc=$(cat $O/san-mem.rc) $(grep 'ERROR SUMMARY' $O/san-mem.log) cells ok $(okc $O/mem.json)"; echo "racecheck rc=$(cat $O/san-race.rc) $(grep 'RACECHECK SUMMARY' $O/san-race.log) cells ok $(okc $O/race.json)"
t done
rm -f $O/v-*.json; find $O -name '*.json' -size +300k -delete
tar czf $OUT/o.tgz -C $OUT o
