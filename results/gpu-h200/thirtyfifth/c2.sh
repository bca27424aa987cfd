#!/bin/sh
# p37b (main f7b1e47 + the products probe). The probe's wgmma products by layout (1 and 2 CTAs an SM); verify bf16;
# main's dma fwd / fwd+bwd and mha fwd at 8192 (and fw1's forwards beside them); tests/gpu.sh's model part.
[ -d gpupack/p37b ] || tar xJf gpupack/p37b.tar.xz -C gpupack
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=3
B=./gpupack/p37b/dmabench
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader > $O/gpu.txt; cat $O/gpu.txt
timeout 120 $B probe --ops wg-ss,wg-ss-sw,wg-ss64,wg-rs,wg-rs-sw --ctas-per-sm 1,2 --keys 64 --hkv 1 --iters 2048 --warmup 1 --repeats 5 --out $O/probe.json > $O/probe.txt 2>&1; echo "probe rc=$?"; cat $O/probe.txt
timeout 60 $B probe --ops wg-ss,wg-rs --ctas-per-sm 1 --keys 64 --hkv 1 --iters 7 --warmup 0 --repeats 1 > $O/probe-odd.txt 2>&1; echo "probe odd rc=$?"; grep "^| wg" $O/probe-odd.txt
t probed
tar czf $OUT/o.tgz -C $OUT o
K="--backend cuda --dtype bf16 --warmup 2 --repeats 5 --check-n 0 --b 1 --hq 32 --hkv 8 --d 128 --w 1024 --n 8192"
timeout 60 $B kernels $K --variants dma --mode fwd,fwdbwd --out $O/k-dma.json > $O/k-dma.txt 2>&1; grep -E "^\| dma" $O/k-dma.txt | head -4
timeout 60 $B kernels $K --variants mha --mode fwd --out $O/k-mha.json > $O/k-mha.txt 2>&1; grep -E "^\| mha" $O/k-mha.txt | head -2
DMABENCH_CUDA_FWD_WS=1 timeout 60 $B kernels $K --variants dma,mha --mode fwd --out $O/k-ws.json > $O/k-ws.txt 2>&1; grep -E "^\| (dma|mha)" $O/k-ws.txt | head -4
t timed
tar czf $OUT/o.tgz -C $OUT o
timeout 200 $B verify --backend cuda --quiet --dtype bf16 --out $O/v-bf16.json > $O/v-bf16.log 2>&1; echo "verify rc=$? $(grep passed $O/v-bf16.log | tail -1)" &
DMABENCH_GPU=1 DMABENCH_GPU_PART=model DMABENCH=$B DMABENCH_TESTS=./gpupack/p37b/tests timeout 280 sh tests/gpu.sh > $O/model.txt 2>&1; echo "model rc=$?"; echo "ok: $(grep -cE '^ok' $O/model.txt)"; grep -E "^not ok" $O/model.txt | head; tail -2 $O/model.txt
wait
t done
find $O -name '*.json' -size +100k -delete; find $O -name '*.jsonl' -delete
tar czf $OUT/o.tgz -C $OUT o
