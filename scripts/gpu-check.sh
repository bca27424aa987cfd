#!/bin/sh
# gpu-check.sh: the whole GPU check in one run, for a GPU machine (docs/gpu.md):
# provenance, the GPU tests (tests/gpu.sh: every CUDA kernel against the reference,
# bf16 and f16, forward and backward; compute-sanitizer), the speed
# profile at the DMA paper's shapes (B=1, Hq=32, Hkv=8, D=128, bf16, causal), and
# PyTorch's SDPA timed in the same run as the anchor. Reports go to $OUT.
#   OUT=results/gpu sh scripts/gpu-check.sh [tests|sanitize|bench]   (default: all)
# The test programs come from $DMABENCH_TESTS (default ./build/tests).
set -u
OUT=${OUT:-results/gpu-local}
B=${DMABENCH:-./build/dmabench}
mkdir -p "$OUT"
$B env >"$OUT/env.json"
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,clocks.mem,driver_version --format=csv >"$OUT/nvidia-smi.csv" 2>&1
cat "$OUT/nvidia-smi.csv"
# parts, so that each fits a time-limited run: tests (no sanitizers), sanitize
# (tests/gpu.sh with them), bench (timings and anchors); no argument: all
PART=${1:-all}
if [ "$PART" = tests ] || [ "$PART" = all ] || [ "$PART" = quick ]; then
    echo "== GPU tests (tests/gpu.sh without the sanitizers)"
    DMABENCH_GPU=1 DMABENCH_GPU_SANITIZE=0 DMABENCH=$B sh tests/gpu.sh | tee "$OUT/gpu-tests.log"
fi
if [ "$PART" = sanitize ] || [ "$PART" = all ]; then
    echo "== GPU tests with compute-sanitizer"
    DMABENCH_GPU=1 DMABENCH=$B sh tests/gpu.sh | tee "$OUT/gpu-tests-sanitize.log"
fi
[ "$PART" = bench ] || [ "$PART" = all ] || exit 0
echo "== kernels (B=1 Hq=32 Hkv=8 D=128 bf16 causal)"
$B kernels --backend cuda --variants mha --n 8192,16384 --b 1 --hq 32 --hkv 8 --d 128 --dtype bf16 \
    --mode fwd,fwdbwd --warmup 3 --repeats 15 --out "$OUT/kernels-mha.json" 2>/dev/null | tail -6
$B kernels --backend cuda --variants swa,dma --n 8192,65536 --w 1024 --b 1 --hq 32 --hkv 8 --d 128 --dtype bf16 \
    --mode fwdbwd --warmup 3 --repeats 10 --out "$OUT/kernels-sparse-bwd.json" 2>/dev/null | tail -6
$B kernels --backend cuda --variants swa,dma --n 8192-262144*2 --w 1024 --b 1 --hq 32 --hkv 8 --d 128 \
    --dtype bf16 --mode fwd --warmup 3 --repeats 15 --out "$OUT/kernels-sparse.json" 2>/dev/null | tail -14
$B kernels --backend cuda --variants dma --n 65536 --w 1024 --b 1 --hq 32 --hkv 8 --d 128 --dtype bf16 \
    --mode fwd --dma-z clustered,wdt --warmup 3 --repeats 15 --out "$OUT/kernels-dma-z.json" 2>/dev/null | tail -3
echo "== nsa forward and backward (l 32, d 16, l' 64, n 16, w 512)"
$B kernels --backend cuda --variants nsa --n 8192,65536 --w 512 --b 1 --hq 32 --hkv 8 --d 128 --dtype bf16 \
    --mode fwd --warmup 2 --repeats 5 --out "$OUT/kernels-nsa.json" 2>/dev/null | tail -4
$B kernels --backend cuda --variants nsa --n 8192 --w 512 --b 1 --hq 32 --hkv 8 --d 128 --dtype bf16 \
    --mode fwdbwd --warmup 1 --repeats 3 --out "$OUT/kernels-nsa-bwd.json" 2>/dev/null | tail -3
echo "== decode (Nq = 1, same shape)"
$B kernels --backend cuda --variants mha,dma --n 65536,524288 --w 1024 --b 1 --hq 32 --hkv 8 --d 128 --dtype bf16 \
    --mode decode --warmup 3 --repeats 15 --out "$OUT/kernels-decode.json" 2>/dev/null | tail -6
echo "== anchors (PyTorch SDPA, same card)"
python3 scripts/sdpa_anchor.py >"$OUT/anchors.json" 2>"$OUT/anchors.log"; tail -12 "$OUT/anchors.log"
