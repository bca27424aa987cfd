#!/bin/sh
# c1 (DMABENCH_CUDA_BWD_CLUSTER=4 / 2, opt-in): verify, sanitizers, timing against the default at the paper shape.
[ -d gpupack/p30b ] || tar xJf gpupack/p30b.tar.xz -C gpupack
O=$OUT/o; mkdir -p $O
B=./gpupack/p30b/dmabench
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader
S0=$(date +%s)
E=DMABENCH_CUDA_BWD_CLUSTER
for dt in bf16 f16; do
  env $E=4 $B verify --backend cuda --variants dma,nsa --dtype $dt --quiet --out $O/v-c4-dn-$dt.json > $O/v-c4-dn-$dt.log 2>&1 &
  env $E=4 DMABENCH_CUDA_BWD_KEYPAR=0 $B verify --backend cuda --variants mha,swa --dtype $dt --quiet --out $O/v-c4-ms-$dt.json > $O/v-c4-ms-$dt.log 2>&1 &
done
env $E=2 $B verify --backend cuda --variants dma --dtype bf16 --quiet --out $O/v-c2-d-bf16.json > $O/v-c2-d-bf16.log 2>&1 &
wait
for f in $O/v-*.log; do echo "$(basename $f): $(grep '^verify:' $f) $(grep -ciE 'error|fail' $f)"; done
echo "verify took $(( $(date +%s) - S0 )) s"
SC="kernels --backend cuda --dtype bf16 --n 300,2048 --w 128 --b 1 --hq 8 --hkv 2 --d 128,64 --mode fwdbwd --warmup 0 --repeats 1"
for t in memcheck racecheck; do
  env $E=4 timeout 200 compute-sanitizer --tool $t --error-exitcode 9 $B $SC --variants dma,nsa --out $O/s-$t.json > $O/s-$t.log 2>&1 &
done; wait
for t in memcheck racecheck; do echo "$t: $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' $O/s-$t.log | tail -1)"; done
echo "sanitizers done at $(( $(date +%s) - S0 )) s"
K="kernels --backend cuda --dtype bf16 --warmup 2 --repeats 5 --check-n 0 --n 8192 --w 1024 --b 1 --hq 32 --hkv 8 --d 128 --mode fwd,fwdbwd"
for r in 1 2; do for x in 1 2 4; do
  env $E=$x timeout 90 $B $K --variants dma,nsa --out $O/k-$x-$r.json > $O/k-$x-$r.log 2>&1
  echo "cl=$x run $r rc=$? $(grep -E '^\| (dma|nsa)' $O/k-$x-$r.log | cut -d'|' -f2,4,11 | tr '\n' ' ')"
done; done
for x in 1 4; do
  env $E=$x DMABENCH_CUDA_BWD_KEYPAR=0 timeout 90 $B $K --variants mha --out $O/km-$x.json > $O/km-$x.log 2>&1
  echo "mha keypar=0 cl=$x rc=$? $(grep -E '^\| mha' $O/km-$x.log | cut -d'|' -f2,4,11 | tr '\n' ' ')"
done
echo "total $(( $(date +%s) - S0 )) s"
tar czf $OUT/o.tgz -C $OUT o
