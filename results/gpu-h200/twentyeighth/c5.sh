#!/bin/sh
# e1 (p30e: the query-tile backward's dV and dK products in one pass into separate accumulators, then both sets of
# adds): verify every variant, sanitizers, timing against p30d (l2), alternated; dma training at 8192.
for p in p30d p30e; do [ -d gpupack/$p ] || tar xJf gpupack/$p.tar.xz -C gpupack; done
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
B=./gpupack/p30e/dmabench
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader
for dt in bf16 f16; do
  $B verify --backend cuda --dtype $dt --quiet --out $O/v-$dt.json > $O/v-$dt.log 2>&1 &
  DMABENCH_CUDA_BWD_KEYPAR=0 $B verify --backend cuda --variants mha,swa,nsa --dtype $dt --quiet --out $O/v-kp0-$dt.json > $O/v-kp0-$dt.log 2>&1 &
done
DMABENCH_DMA_RESIDUAL=0 $B verify --backend cuda --variants dma --dtype bf16 --quiet --out $O/v-dr0-bf16.json > $O/v-dr0-bf16.log 2>&1 &
DMABENCH_CUDA_BWD_TILE=64 $B verify --backend cuda --variants dma --dtype bf16 --quiet --out $O/v-t64-bf16.json > $O/v-t64-bf16.log 2>&1 &
wait
for f in $O/v-*.log; do echo "$(basename $f): $(grep '^verify:' $f)"; done
t verify done
SC="kernels --backend cuda --dtype bf16 --n 300,2048 --w 128 --b 1 --hq 8 --hkv 2 --d 128,64 --mode fwdbwd --warmup 0 --repeats 1"
for t in memcheck racecheck; do
  timeout 200 compute-sanitizer --tool $t --error-exitcode 9 $B $SC --variants dma --out $O/s-$t.json > $O/s-$t.log 2>&1 &
  DMABENCH_CUDA_BWD_KEYPAR=0 timeout 200 compute-sanitizer --tool $t --error-exitcode 9 $B $SC --variants mha,nsa --out $O/s-$t-kp0.json > $O/s-$t-kp0.log 2>&1 &
done; wait
for t in memcheck racecheck memcheck-kp0 racecheck-kp0; do echo "$t: $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' $O/s-$t.log | tail -1)"; done
t sanitizers done
K="kernels --backend cuda --dtype bf16 --warmup 2 --repeats 5 --check-n 0 --w 1024 --b 1 --hq 32 --hkv 8 --d 128 --mode fwd,fwdbwd"
for r in 1 2; do for p in p30d p30e; do
  timeout 90 ./gpupack/$p/dmabench $K --variants dma --n 8192 --out $O/k-$p-$r.json > $O/k-$p-$r.log 2>&1
  echo "$p 8192 run $r rc=$? $(grep -E '^\| dma' $O/k-$p-$r.log | cut -d'|' -f4,11 | tr '\n' ' ')"
done; done
for r in 1 2; do for p in p30d p30e; do
  timeout 120 ./gpupack/$p/dmabench $K --variants dma --n 65536 --repeats 3 --out $O/kl-$p-$r.json > $O/kl-$p-$r.log 2>&1
  echo "$p 65536 run $r rc=$? $(grep -E '^\| dma' $O/kl-$p-$r.log | cut -d'|' -f4,11 | tr '\n' ' ')"
done; done
for p in p30d p30e; do
  DMABENCH_CUDA_BWD_KEYPAR=0 timeout 90 ./gpupack/$p/dmabench $K --variants mha --n 8192 --out $O/km-$p.json > $O/km-$p.log 2>&1
  echo "$p mha keypar=0 8192 rc=$? $(grep -E '^\| mha' $O/km-$p.log | cut -d'|' -f4,11 | tr '\n' ' ')"
done
t kernels done
tar czf $OUT/o.tgz -C $OUT o
export OMP_NUM_THREADS=8
n=0
for p in p30d p30e p30d p30e; do
  n=$((n + 1))
  RUNS="dma:8192:2" DMABENCH=./gpupack/$p/dmabench OUT=$O/train-$n-$p sh scripts/gpu-train-bench.sh 2>&1 | grep -v '^{' | grep -v H200 | sed "s/^/$p /"
  rm -f $O/train-$n-$p/bytes.txt
  t "train $p"
done
find $O -name '*.jsonl' -size +300k -delete
find $O -name 'v-*.json' -delete
tar czf $OUT/o.tgz -C $OUT o
