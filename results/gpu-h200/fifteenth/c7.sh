#!/bin/sh
# call 7: e3 (the backward's dK/dV reductions unconditional, one base address per row) against main's build, alternating; the training throughput; then e3's checks
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=8
NEW=./gpupack/new/dmabench; OLD=./gpupack/old/dmabench
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader > $O/gpu.txt
K="kernels --backend cuda --dtype bf16 --mode fwdbwd --warmup 2 --repeats 5 --check-n 0"
k() { timeout 100 $2 $K $3 --out $O/k-$1.json > $O/k-$1.log 2>&1; echo "$1 rc=$? $(grep -E '^\| (mha|dma|swa)' $O/k-$1.log | cut -d'|' -f2,4,6,9,11,12 | tr '\n' ' ')"; }
for r in 1 2; do for b in old new; do B=$OLD; [ $b = new ] && B=$NEW
  k $b-8192-$r $B "--variants mha,dma --w 1024 --n 8192 --b 1 --hq 32 --hkv 8 --d 128"
  k $b-model-$r $B "--variants mha --n 2048 --b 8 --hq 6 --hkv 3 --d 128"
done; done
for b in old new; do B=$OLD; [ $b = new ] && B=$NEW; k $b-65k $B "--variants dma,swa --n 65536 --w 1024 --b 1 --hq 32 --hkv 8 --d 128"; done
t train
DMABENCH=$NEW OUT=$O/train sh scripts/gpu-train-bench.sh
t checks
for dt in bf16 f16; do (timeout 200 $NEW verify --backend cuda --dtype $dt --quiet --out $O/v-$dt.json > $O/v-$dt.log 2>&1; echo $? > $O/v-$dt.rc) & done
(timeout 200 compute-sanitizer --tool memcheck --error-exitcode 9 $NEW verify --backend cuda --variants mha,dma --quiet > $O/san-mem.log 2>&1; echo $? > $O/san-mem.rc) &
(timeout 200 compute-sanitizer --tool racecheck --error-exitcode 9 $NEW verify --backend cuda --variants mha --quiet > $O/san-race.log 2>&1; echo $? > $O/san-race.rc) &
wait
for dt in bf16 f16; do echo "verify e3 $dt rc=$(cat $O/v-$dt.rc) $(grep '^verify:' $O/v-$dt.log | tail -1)"; grep FAIL $O/v-$dt.log | head -3; done
echo "memcheck rc=$(cat $O/san-mem.rc) $(grep 'ERROR SUMMARY' $O/san-mem.log)"; echo "racecheck rc=$(cat $O/san-race.rc) $(grep 'RACECHECK SUMMARY' $O/san-race.log)"
t done
rm -f $O/v-*.json $O/train/bytes.txt; find $O -name '*.json' -size +300k -delete
tar czf $OUT/o.tgz -C $OUT o
