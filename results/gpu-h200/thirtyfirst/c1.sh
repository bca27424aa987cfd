#!/bin/sh
# p33a (main at de27c63): first GPU run of probe, fw1 (DMABENCH_CUDA_FWD_WS=1/2) and rw1 (DMABENCH_CUDA_BWD_WG_REDUCER=1).
# Predictions (8192, paper shape): fw1 dma fwd 0.589 -> 0.40-0.50, mha fwd 1.61 -> 1.1-1.4, =2 a further 10-20%;
# rw1 dma fwd+bwd 2.63 -> 2.25-2.45 (none if the L2's reduction rate binds).
[ -d gpupack/p33a ] || tar xJf gpupack/p33a.tar.xz -C gpupack
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
B=./gpupack/p33a/dmabench
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader
timeout 90 $B probe --out $O/probe.json > $O/probe.log 2>&1; t "probe rc=$?"; cat $O/probe.log
tar czf $OUT/o.tgz -C $OUT o
for s in DMABENCH_CUDA_FWD_WS=1 DMABENCH_CUDA_FWD_WS=2 DMABENCH_CUDA_BWD_WG_REDUCER=1+DMABENCH_CUDA_BWD_KEYPAR=0; do
  for dt in bf16 f16; do
    n=$(echo $s | sed 's/DMABENCH_CUDA_//g;s/[=+]/_/g')-$dt
    env $(echo $s | tr '+' ' ') timeout 200 $B verify --backend cuda --dtype $dt --variants mha,swa,dma,nsa --quiet > $O/v-$n.log 2>&1 &
  done
done
wait; t "verifies done"
for f in $O/v-*.log; do echo "$(basename $f): $(tail -1 $f)"; grep -m4 -i 'fail\|error' $f; done
tar czf $OUT/o.tgz -C $OUT o
K="--backend cuda --dtype bf16 --warmup 2 --repeats 5 --check-n 0 --w 1024 --b 1 --hq 32 --hkv 8 --d 128"
DMABENCH=$B OUT=$O/ab1 timeout 150 sh scripts/kernels-ab.sh 2 - DMABENCH_CUDA_FWD_WS=1 DMABENCH_CUDA_FWD_WS=2 -- $K --mode fwd --variants mha,dma --n 8192 > $O/ab1.log 2>&1
t "ab1 rc=$?"; cat $O/ab1.log | tail -12
tar czf $OUT/o.tgz -C $OUT o
DMABENCH=$B OUT=$O/ab2 timeout 150 sh scripts/kernels-ab.sh 2 - DMABENCH_CUDA_BWD_WG_REDUCER=1 DMABENCH_CUDA_FWD_WS=1 DMABENCH_CUDA_FWD_WS=1+DMABENCH_CUDA_BWD_WG_REDUCER=1 -- $K --mode fwdbwd --variants dma --n 8192 > $O/ab2.log 2>&1
t "ab2 rc=$?"; cat $O/ab2.log | tail -10
tar czf $OUT/o.tgz -C $OUT o
DMABENCH=$B OUT=$O/ab3 timeout 120 sh scripts/kernels-ab.sh 1 - DMABENCH_CUDA_FWD_WS=1+DMABENCH_CUDA_BWD_WG_REDUCER=1 -- $K --repeats 3 --mode fwd,fwdbwd --variants dma --n 65536 > $O/ab3.log 2>&1
t "ab3 rc=$?"; cat $O/ab3.log | tail -8
find $O -name '*.json' -size +100k -delete
tar czf $OUT/o.tgz -C $OUT o
