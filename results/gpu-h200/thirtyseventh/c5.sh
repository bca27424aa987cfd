#!/bin/sh
# p39d (main d73f7e1: fw1 TM by default, the backward's multicast at CTA scope, the backward's tiles with the heads
# fastest). Verify every variant in bf16; dma's fwd and fwd+bwd at 8192 and 65536; the kernel durations of dma's fwd+bwd
# at 8192; dma's fwd+bwd at 131072 and 262144.
[ -d gpupack/p39d ] || tar xJf gpupack/p39d.tar.xz -C gpupack
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=3
B=./gpupack/p39d/dmabench
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader > $O/gpu.txt; cat $O/gpu.txt
timeout 150 $B verify --backend cuda --quiet --dtype bf16 --out $O/v-bf16.json > $O/v-bf16.log 2>&1; echo "v-bf16 rc=$?: $(grep passed $O/v-bf16.log | tail -1)"; t verified
K="--backend cuda --b 1 --hq 32 --hkv 8 --d 128 --dtype bf16 --w 1024 --variants dma"
timeout 120 $B kernels $K --n 8192,65536 --mode fwd,fwdbwd --warmup 2 --repeats 5 --out $O/k.json > $O/k.txt 2>&1; echo "rc=$?"; grep -E "^\| dma|rror" $O/k.txt; t timed
tar czf $OUT/o.tgz -C $OUT o
OUT=$O PER=2 timeout 100 sh scripts/gpu-profile.sh fb $B kernels $K --warmup 1 --repeats 1 --check-n 0 --n 8192 --mode fwdbwd > /dev/null 2>&1; cat $O/profile-fb.txt; t profiled
tar czf $OUT/o.tgz -C $OUT o
timeout 200 $B kernels $K --n 131072,262144 --mode fwdbwd --warmup 1 --repeats 3 --check-n 0 --out $O/k-long.json > $O/k-long.txt 2>&1; echo "rc=$?"; grep -E "^\| dma|rror" $O/k-long.txt
t done
find $O -name '*.json' -size +300k -delete; find $O -name '*.jsonl' -delete
tar czf $OUT/o.tgz -C $OUT o
