#!/bin/sh
# p33a: rw1 timed against the default (3 rounds at 8192, 1 at 65536); then Nsight Compute on fw1 (dma and mha
# fwd 8192) and the default mma.sync forward (dma fwd 8192), to see why fw1 is 1.39x slower; then memcheck and
# racecheck over verify's dma grid with rw1.
[ -d gpupack/p33a ] || tar xJf gpupack/p33a.tar.xz -C gpupack
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
B=./gpupack/p33a/dmabench
K="--backend cuda --dtype bf16 --warmup 2 --repeats 5 --check-n 0 --w 1024 --b 1 --hq 32 --hkv 8 --d 128"
R=DMABENCH_CUDA_BWD_WG_REDUCER=1
DMABENCH=$B OUT=$O/ab4 timeout 100 sh scripts/kernels-ab.sh 3 - $R -- $K --mode fwdbwd --variants dma --n 8192 > $O/ab4.log 2>&1
t "ab4 rc=$?"; tail -3 $O/ab4.log
DMABENCH=$B OUT=$O/ab5 timeout 100 sh scripts/kernels-ab.sh 1 - $R -- $K --repeats 3 --mode fwdbwd --variants dma,mha --n 65536 > $O/ab5.log 2>&1
t "ab5 rc=$?"; tail -4 $O/ab5.log
tar czf $OUT/o.tgz -C $OUT o
P="kernels --backend cuda --dtype bf16 --warmup 1 --repeats 1 --check-n 0 --w 1024 --b 1 --hq 32 --hkv 8 --d 128 --mode fwd --n 8192"
env DMABENCH_CUDA_FWD_WS=1 OUT=$O/prof timeout 100 sh scripts/gpu-kernel-profile.sh fw1dma attn_fwd_ws_kernel 1 $B $P --variants dma > $O/prof1.log 2>&1; t "prof1 rc=$?"
OUT=$O/prof timeout 100 sh scripts/gpu-kernel-profile.sh defdma attn_fwd_kernel 1 $B $P --variants dma > $O/prof2.log 2>&1; t "prof2 rc=$?"
env DMABENCH_CUDA_FWD_WS=1 OUT=$O/prof timeout 100 sh scripts/gpu-kernel-profile.sh fw1mha attn_fwd_ws_kernel 1 $B $P --variants mha > $O/prof3.log 2>&1; t "prof3 rc=$?"
for f in fw1dma defdma fw1mha; do echo "== $f"; grep -E 'Duration|Registers Per|Achieved Occupancy|Executed Ipc A|Issue Slots Busy|No Eligible|L2 Cache Throughput|DRAM Throughput|Compute \(SM\) Throughput|Memory Throughput' $O/prof/$f-details.txt | head -12; done
tar czf $OUT/o.tgz -C $OUT o
env $R timeout 280 compute-sanitizer --tool memcheck --error-exitcode 9 $B verify --backend cuda --variants dma --quiet --out $O/m-rw1.json > $O/m-rw1.log 2>&1 &
env $R timeout 280 compute-sanitizer --tool racecheck --error-exitcode 9 $B verify --backend cuda --variants dma --quiet --out $O/r-rw1.json > $O/r-rw1.log 2>&1 &
wait; t "sanitizers done"
for f in m-rw1 r-rw1; do echo "$f: $(grep -E 'SUMMARY|verify:' $O/$f.log | tr '\n' ' ')"; done
find $O -name '*.json' -size +100k -delete; find $O -name '*.jsonl' -delete
tar czf $OUT/o.tgz -C $OUT o
