#!/bin/sh
# l2 (p30d: the dma backward's next-block metadata formed after the block's S and dP, not before the barrier):
# verify, sanitizers, timing against p30c (l1), alternated, paper shape at 8192 and 65536; Nsight Compute on p30d's
# query-tile backward at 8192.
for p in p30c p30d; do [ -d gpupack/$p ] || tar xJf gpupack/$p.tar.xz -C gpupack; done
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
B=./gpupack/p30d/dmabench
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader
for dt in bf16 f16; do
  $B verify --backend cuda --variants dma --dtype $dt --quiet --out $O/v-d-$dt.json > $O/v-d-$dt.log 2>&1 &
  DMABENCH_DMA_RESIDUAL=0 $B verify --backend cuda --variants dma --dtype $dt --quiet --out $O/v-dr0-$dt.json > $O/v-dr0-$dt.log 2>&1 &
done
wait
for f in $O/v-*.log; do echo "$(basename $f): $(grep '^verify:' $f)"; done
t verify done
SC="kernels --backend cuda --dtype bf16 --n 300,2048 --w 128 --b 1 --hq 8 --hkv 2 --d 128,64 --mode fwdbwd --warmup 0 --repeats 1"
for t in memcheck racecheck; do
  timeout 200 compute-sanitizer --tool $t --error-exitcode 9 $B $SC --variants dma --out $O/s-$t.json > $O/s-$t.log 2>&1 &
  DMABENCH_DMA_RESIDUAL=0 timeout 200 compute-sanitizer --tool $t --error-exitcode 9 $B $SC --variants dma --out $O/s-$t-r0.json > $O/s-$t-r0.log 2>&1 &
done; wait
for t in memcheck racecheck memcheck-r0 racecheck-r0; do echo "$t: $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' $O/s-$t.log | tail -1)"; done
t sanitizers done
K="kernels --backend cuda --dtype bf16 --warmup 2 --repeats 5 --check-n 0 --w 1024 --b 1 --hq 32 --hkv 8 --d 128 --mode fwd,fwdbwd --variants dma"
for r in 1 2; do for p in p30c p30d; do
  timeout 90 ./gpupack/$p/dmabench $K --n 8192 --out $O/k-$p-$r.json > $O/k-$p-$r.log 2>&1
  echo "$p 8192 run $r rc=$? $(grep -E '^\| dma' $O/k-$p-$r.log | cut -d'|' -f4,11 | tr '\n' ' ')"
done; done
for r in 1 2; do for p in p30c p30d; do
  timeout 120 ./gpupack/$p/dmabench $K --n 65536 --repeats 3 --out $O/kl-$p-$r.json > $O/kl-$p-$r.log 2>&1
  echo "$p 65536 run $r rc=$? $(grep -E '^\| dma' $O/kl-$p-$r.log | cut -d'|' -f4,11 | tr '\n' ' ')"
done; done
t kernels done
tar czf $OUT/o.tgz -C $OUT o
OUT=$O timeout 150 sh scripts/gpu-kernel-profile.sh dmabwd bwd_main_kernel 0 $B kernels --backend cuda --variants dma --n 8192 --w 1024 --b 1 --hq 32 --hkv 8 --d 128 --dtype bf16 --mode fwdbwd --warmup 0 --repeats 1 --check-n 0 > $O/kp-dmabwd.log 2>&1
t "profile rc=$?"; head -30 $O/kp-dmabwd.log
find $O -name 'v-*.json' -delete
tar czf $OUT/o.tgz -C $OUT o
