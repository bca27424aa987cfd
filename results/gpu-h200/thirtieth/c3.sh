#!/bin/sh
# p32c = p32b with a diagnostic switch (DMABENCH_DIAG_ADDS, not committed): 1 leaves dV's sums out of the query-tile
# backward, 3 both dV's and dK's (its gradients then wrong): how much of bwd_main_kernel the adds hold. Prediction:
# 2.63 -> 2.2-2.4 ms with none (the twenty-seventh set's mma.sync kernel lost 0.48 ms without them); then one launch
# without the adds under Nsight Compute's full set; then the GPU model's training at 8192 (p32b): dma and mha.
for p in p32b p32c; do [ -d gpupack/$p ] || tar xJf gpupack/$p.tar.xz -C gpupack; done
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
B=./gpupack/p32c/dmabench
K="kernels --backend cuda --dtype bf16 --warmup 2 --repeats 5 --check-n 0 --w 1024 --b 1 --hq 32 --hkv 8 --d 128 --mode fwdbwd --variants dma"
med() { grep -E '^\| (dma|mha)' $1 | cut -d'|' -f2,4,11 | tr '\n' ' '; }
for r in 1 2; do for d in 0 1 3; do
  DMABENCH_DIAG_ADDS=$d timeout 60 $B $K --n 8192 --out $O/a$d-$r.json > $O/a$d-$r.log 2>&1; echo "adds-off $d 8192 r$r rc=$? $(med $O/a$d-$r.log)"
done; done
for d in 0 3; do
  DMABENCH_DIAG_ADDS=$d timeout 90 $B $K --n 65536 --repeats 3 --out $O/b$d.json > $O/b$d.log 2>&1; echo "adds-off $d 65536 rc=$? $(med $O/b$d.log)"
done
t timed
tar czf $OUT/o.tgz -C $OUT o
DMABENCH_DIAG_ADDS=3 OUT=$O/prof timeout 120 sh scripts/gpu-kernel-profile.sh noadds bwd_main_kernel 1 $B kernels --backend cuda --dtype bf16 \
  --warmup 1 --repeats 1 --check-n 0 --w 1024 --b 1 --hq 32 --hkv 8 --d 128 --mode fwdbwd --variants dma --n 8192 > $O/prof.log 2>&1
t "profile rc=$?"; cat $O/prof.log
tar czf $OUT/o.tgz -C $OUT o
DMABENCH=./gpupack/p32b/dmabench OUT=$O/train RUNS="dma:8192:2 mha:8192:2" timeout 300 sh scripts/gpu-train-bench.sh > $O/train.log 2>&1
t "train rc=$?"; cat $O/train.log
find $O -name '*.json' -size +100k -delete
tar czf $OUT/o.tgz -C $OUT o
