#!/bin/sh
# gpu-check.sh: the whole GPU check in one run, for a GPU machine (docs/gpu.md):
# provenance, the GPU tests (tests/gpu.sh: every CUDA kernel against the reference,
# bf16 and f16, forward and backward; compute-sanitizer), the speed
# profile at the DMA paper's shapes (B=1, Hq=32, Hkv=8, D=128, bf16, causal), and
# PyTorch's SDPA timed in the same run as the anchor. Reports go to $OUT.
#   OUT=results/gpu sh scripts/gpu-check.sh [tests|sanitize|sanitize-optin|bench|bench-optin|optin-engine|optin-nsa|optin-decode|profile]
#   (default: all)
# The test programs come from $DMABENCH_TESTS (default ./build/tests).
set -u
OUT=${OUT:-results/gpu-local}
B=${DMABENCH:-./build/dmabench}
mkdir -p "$OUT"
$B env >"$OUT/env.json"
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,clocks.mem,driver_version --format=csv >"$OUT/nvidia-smi.csv" 2>&1
cat "$OUT/nvidia-smi.csv"
# parts, so that each fits a time-limited run: tests (no sanitizers; or
# tests-verify and tests-model, its two halves), sanitize
# and sanitize-optin (tests/gpu.sh's sanitizer runs of the default and the other
# kernel versions, chosen in the environment), bench (timings and anchors),
# bench-optin (the other versions and the decode knobs); no argument: all
PART=${1:-all}
if [ "$PART" = tests ] || [ "$PART" = all ] || [ "$PART" = quick ]; then
    echo "== GPU tests (tests/gpu.sh without the sanitizers)"
    DMABENCH_GPU=1 DMABENCH_GPU_SANITIZE=0 DMABENCH=$B sh tests/gpu.sh | tee "$OUT/gpu-tests.log"
fi
# the same in two calls: tests/gpu.sh's verify part, then its model part
for tp in verify model; do
    if [ "$PART" = tests-$tp ]; then
        echo "== GPU tests, $tp part (tests/gpu.sh without the sanitizers)"
        DMABENCH_GPU=1 DMABENCH_GPU_PART=$tp DMABENCH_GPU_SANITIZE=0 DMABENCH=$B sh tests/gpu.sh | tee "$OUT/gpu-tests-$tp.log"
    fi
done
for san in sanitize sanitize-optin; do
    if [ "$PART" = $san ] || [ "$PART" = all ]; then
        echo "== GPU tests under compute-sanitizer ($san)"
        DMABENCH_GPU=1 DMABENCH_GPU_PART=$san DMABENCH=$B sh tests/gpu.sh | tee "$OUT/gpu-tests-$san.log"
    fi
done
if [ "$PART" = profile ]; then
    # Nsight Compute kernel times (scripts/gpu-profile.sh) of the cells whose
    # timings missed their predictions: one timed call each (the check against the
    # reference runs first, at a small shape, and is in the sums too)
    P="$B kernels --backend cuda --b 1 --hq 32 --hkv 8 --d 128 --dtype bf16 --warmup 0 --repeats 1"
    OUT=$OUT timeout 120 sh scripts/gpu-profile.sh dma-decode $P --variants dma --n 524288 --w 1024 --mode decode --out /tmp/p1.json
    OUT=$OUT timeout 150 sh scripts/gpu-profile.sh nsa-fwd-65536 $P --variants nsa --n 65536 --w 512 --mode fwd --out /tmp/p2.json
    OUT=$OUT timeout 150 sh scripts/gpu-profile.sh mha-bwd-8192 $P --variants mha --n 8192 --mode fwdbwd --out /tmp/p3.json
    DMABENCH=$B OUT=$OUT STEPS=2 timeout 150 sh scripts/gpu-train-profile.sh dma 8192 2
    rm -f "$OUT"/ncu-*.csv # large; the sums are in profile-*.txt
    exit 0
fi
case "$PART" in bench | all | bench-optin | optin-*) ;; *) exit 0 ;; esac
K="$B kernels --backend cuda --b 1 --hq 32 --hkv 8 --d 128 --dtype bf16"
# each step under a time limit, so that one slow cell cannot take the whole run
lim() { t=$1; shift; timeout "$t" "$@" 2>/dev/null | grep -E '^\| (mha|swa|dma|nsa) ' | cut -c1-150; }
if [ "$PART" = bench ] || [ "$PART" = all ]; then
echo "== kernels (B=1 Hq=32 Hkv=8 D=128 bf16 causal)"
lim 90 $K --variants mha --n 8192,16384 --mode fwd,fwdbwd --warmup 3 --repeats 10 --out "$OUT/kernels-mha.json"
lim 120 $K --variants swa,dma --n 8192,65536 --w 1024 --mode fwd,fwdbwd --warmup 2 --repeats 7 --out "$OUT/kernels-sparse.json"
lim 200 $K --variants swa,dma --n 131072,262144 --w 1024 --mode fwd --warmup 1 --repeats 3 --out "$OUT/kernels-long.json"
lim 40 $K --variants dma --n 65536 --w 1024 --mode fwd --dma-z clustered,wdt --warmup 2 --repeats 7 --out "$OUT/kernels-dma-z.json"
echo "== nsa (l 32, d 16, l' 64, n 16, w 512)"
lim 120 $K --variants nsa --n 8192,65536,131072,262144 --w 512 --mode fwd --warmup 1 --repeats 3 --out "$OUT/kernels-nsa.json"
lim 90 $K --variants nsa --n 8192,65536 --w 512 --mode fwdbwd --warmup 1 --repeats 3 --out "$OUT/kernels-nsa-bwd.json"
echo "== decode (Nq = 1)"
lim 90 $K --variants mha,dma --n 65536,524288 --w 1024 --mode decode --warmup 3 --repeats 10 --out "$OUT/kernels-decode.json"
echo "== anchors (PyTorch SDPA, same card)"
timeout 90 python3 scripts/sdpa_anchor.py >"$OUT/anchors.json" 2>"$OUT/anchors.log"; tail -12 "$OUT/anchors.log"
fi
[ "$PART" = bench ] && exit 0
# the other versions in three parts (each fits a time-limited run); bench-optin: all
want() { [ "$PART" = bench-optin ] || [ "$PART" = all ] || [ "$PART" = "$1" ]; }
if want optin-engine; then
echo "== the engine's other versions: 64-row backward tiles, key-parallel backward, wgmma forward and backward"
lim 100 env DMABENCH_CUDA_BWD_TILE=64 $K --variants mha,swa,dma --n 8192,65536 --w 1024 --mode fwdbwd --warmup 2 \
    --repeats 5 --out "$OUT/kernels-bwd64.json"
lim 60 env DMABENCH_CUDA_BWD_KEYPAR=1 $K --variants mha,swa --n 8192,65536 --w 1024 --mode fwdbwd --warmup 2 \
    --repeats 5 --out "$OUT/kernels-bwd-keypar.json"
echo "-- the forward on Hopper's wgmma (DMABENCH_CUDA_WGMMA=1)"
lim 90 env DMABENCH_CUDA_WGMMA=1 $K --variants mha --n 8192,16384 --mode fwd --warmup 3 --repeats 10 \
    --out "$OUT/kernels-wgmma-mha.json"
lim 60 env DMABENCH_CUDA_WGMMA=1 $K --variants swa,dma --n 65536 --w 1024 --mode fwd --warmup 2 --repeats 7 \
    --out "$OUT/kernels-wgmma-sparse.json"
echo "-- the query-tile backward on mma.sync (DMABENCH_CUDA_WGMMA_BWD=0; wgmma is the default), and both on wgmma"
lim 90 env DMABENCH_CUDA_WGMMA_BWD=0 $K --variants mha,swa,dma --n 8192,65536 --w 1024 --mode fwdbwd --warmup 2 \
    --repeats 5 --out "$OUT/kernels-mmasync-bwd.json"
lim 60 env DMABENCH_CUDA_WGMMA=1 $K --variants mha,dma --n 8192 --w 1024 --mode fwdbwd \
    --warmup 2 --repeats 5 --out "$OUT/kernels-wgmma-both.json"
echo "== the model's attention shapes (B=2, Hq=6, Hkv=3, D=128, N=8192; model/configs/gpu-131m-*.json)"
lim 90 $B kernels --backend cuda --b 2 --hq 6 --hkv 3 --d 128 --dtype bf16 --variants mha,dma,nsa --n 8192 --w 1024 \
    --mode fwd,fwdbwd --warmup 2 --repeats 5 --out "$OUT/kernels-model-shape.json"
for bw in "" DMABENCH_CUDA_BWD_KEYPAR=1 DMABENCH_CUDA_WGMMA=1 DMABENCH_CUDA_WGMMA_BWD=0; do
    echo "-- mha at the 131M model's context 2048 (B=8, Hq=6, Hkv=3) ${bw:-default}"
    lim 60 env $bw $B kernels --backend cuda --b 8 --hq 6 --hkv 3 --d 128 --dtype bf16 --variants mha --n 2048 \
        --mode fwd,fwdbwd --warmup 3 --repeats 10 --out "$OUT/kernels-model-2048${bw:+-${bw%%=*}}.json"
done
fi
if want optin-nsa; then
echo "== nsa's other versions: the selected-branch backward on the CUDA cores (DMABENCH_NSA_TC_BWD=0), the"
echo "   repeated-argmax pick (DMABENCH_NSA_PICK=argmax), the blocked compression forward (DMABENCH_NSA_CMP_BLK=1)"
echo "   and the per-block compression both ways (DMABENCH_NSA_CMP_BLK=0); the selected branch by key"
echo "   block (DMABENCH_NSA_SLC=pairs) and by the union of a tile's blocks (DMABENCH_NSA_SLC=union), each fixed"
lim 90 env DMABENCH_NSA_TC_BWD=0 $K --variants nsa --n 8192 --w 512 --mode fwdbwd --warmup 1 --repeats 3 \
    --out "$OUT/kernels-nsa-tcbwd0.json"
lim 90 env DMABENCH_NSA_PICK=argmax $K --variants nsa --n 8192,65536 --w 512 --mode fwd --warmup 1 --repeats 3 \
    --out "$OUT/kernels-nsa-argmax.json"
lim 60 env DMABENCH_NSA_CMP_BLK=1 $K --variants nsa --n 8192,65536 --w 512 --mode fwd --warmup 1 --repeats 3 \
    --out "$OUT/kernels-nsa-cmpblk.json"
lim 120 env DMABENCH_NSA_CMP_BLK=0 $K --variants nsa --n 8192,65536 --w 512 --mode fwdbwd --warmup 1 --repeats 3 \
    --out "$OUT/kernels-nsa-cmpblk0.json"
lim 120 env DMABENCH_NSA_SLC=pairs $K --variants nsa --n 8192,65536 --w 512 --mode fwd,fwdbwd --warmup 1 --repeats 3 \
    --out "$OUT/kernels-nsa-pairs.json"
lim 120 env DMABENCH_NSA_SLC=union $K --variants nsa --n 8192,65536 --w 512 --mode fwd,fwdbwd --warmup 1 --repeats 3 \
    --out "$OUT/kernels-nsa-union.json"
fi
if want optin-decode; then
echo "== decode: dma's select with clustered z; the exact select over all of z (DMABENCH_DECODE_SEL_SAMPLE=0)"
lim 40 $K --variants dma --n 524288 --w 1024 --mode decode --dma-z clustered --warmup 3 --repeats 10 \
    --out "$OUT/kernels-decode-clustered.json"
lim 40 env DMABENCH_DECODE_SEL_SAMPLE=0 $K --variants dma --n 65536,524288 --w 1024 --mode decode --warmup 3 --repeats 10 \
    --out "$OUT/kernels-decode-exact.json"
fi
