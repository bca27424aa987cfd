#!/bin/sh
# next session, call A: branch gpu-next (n13 selection with 8 warps, n14 the choice
# union/pairs): verify (default, pairs in chunks of 37, union, 4 warps), memcheck and
# racecheck at 1100, GPU model tests, timings at 8192/65536 with the choice's counts,
# the 131M model's nsa training at 8192 (default and union), ncu of the selection
B=./gpubuild/dmabench; O=/tmp/o; mkdir -p $O; S0=$(date +%s)
t() { tar czf $OUT/o.tgz -C $O . 2>/dev/null; echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive
K="$B kernels --backend cuda --variants nsa --b 1 --hq 32 --hkv 8 --d 128 --w 512 --dtype bf16"
for e in "X=1" "DMABENCH_NSA_SLC=pairs DMABENCH_NSA_PAIR_QUERIES=37" "DMABENCH_NSA_SLC=union" "DMABENCH_NSA_SEL_WARPS=4" "DMABENCH_NSA_SLC=pairs DMABENCH_NSA_PAIR_DSUM=0"; do for dt in bf16 f16; do n=$(echo "$e" | tr ' =' '__'); t "verify $dt $e"; env $e timeout 60 $B verify --backend cuda --variants nsa --dtype $dt --quiet --out $O/v-$dt-$n.json > $O/v-$dt-$n.log 2>&1; echo "rc=$?"; grep '^verify:' $O/v-$dt-$n.log | tail -1; done; done
for e in "X=1" "DMABENCH_NSA_SLC=pairs DMABENCH_NSA_PAIR_QUERIES=300"; do n=$(echo "$e" | tr ' =' '__'); t "memcheck $e"; env $e timeout 60 compute-sanitizer --tool memcheck --error-exitcode 9 $B kernels --backend cuda --variants nsa --n 1100 --b 2 --hq 4 --hkv 2 --d 128 --w 256 --mode fwd,fwdbwd --check-n 1100 --warmup 0 --repeats 1 --out $O/chk-$n.json > $O/memcheck-$n.log 2>&1; echo "rc=$?"; grep -E "ERROR SUMMARY|cells:" $O/memcheck-$n.log; done
t racecheck; timeout 45 compute-sanitizer --tool racecheck --error-exitcode 9 $B kernels --backend cuda --variants nsa --n 1100 --b 1 --hq 4 --hkv 2 --d 128 --w 256 --mode fwd,fwdbwd --check-n 0 --warmup 0 --repeats 1 > $O/racecheck.log 2>&1; echo "rc=$?"; grep -E "RACECHECK SUMMARY" $O/racecheck.log
t tests-model; DMABENCH_TESTS=./gpubuild/tests DMABENCH=$B OUT=$O/tm timeout 60 sh scripts/gpu-check.sh tests-model > $O/tm.log 2>&1; echo "rc=$? ok $(grep -c '^ok' $O/tm.log) not-ok $(grep -c '^not ok' $O/tm.log)"; grep '^not ok' $O/tm.log | cut -c1-200
for e in "DMABENCH_NSA_SLC=union DMABENCH_NSA_SEL_WARPS=4" "DMABENCH_NSA_SLC=union" "DMABENCH_NSA_SLC=pairs DMABENCH_NSA_PAIR_DSUM=0" "DMABENCH_NSA_SLC=pairs" "DMABENCH_NSA_SLC_STATS=1"; do n=$(echo "$e" | tr ' =' '__'); t "timing $e"; env $e timeout 60 $K --n 8192,65536 --mode fwd,fwdbwd --check-n 0 --warmup 1 --repeats 3 --out $O/k-$n.json > $O/k-$n.log 2>$O/k-$n.err; echo "rc=$?"; grep -E '^\| nsa' $O/k-$n.log | cut -c1-110; sort $O/k-$n.err | uniq -c | head -4; done
mkdir -p $O/train; cat README.md docs/*.md > /tmp/bytes.txt
for e in "DMABENCH_NSA_SLC=union" "DMABENCH_NSA_SLC_STATS=1"; do n=$(echo "$e" | tr ' =' '__'); t "train $e"; env $e timeout 30 $B train --config model/configs/gpu-131m-nsa.json --data /tmp/bytes.txt --out /tmp/tr --backend cuda --context 8192 --batch-size 2 --steps 30 --log-every 5 --force --quiet > $O/train/train-$n.log 2>&1; echo rc=$?; cp /tmp/tr/train_log.jsonl $O/train/train-$n.jsonl; grep '"tokens_per_s"' /tmp/tr/train_log.jsonl | grep -v event | tail -1 | cut -c1-120; grep "selected branch" $O/train/train-$n.log | sort | uniq -c | sort -rn | head -3; done
t done
tar czf $OUT/o.tgz -C $O .
