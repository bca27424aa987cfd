"""sdpa_anchor.py: times PyTorch's SDPA (flash and cuDNN backends) at the DMA paper's
kernel shapes on the GPU that runs dmabench's own profile, so that speed ratios
come from one run on one card. A measuring aid for GPU machines that have PyTorch;
dmabench itself does not use Python. Prints JSON to stdout, a table to stderr."""
import json
import sys

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel


def median_ms(fn, warmup=3, reps=15):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        a = torch.cuda.Event(enable_timing=True)
        b = torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    times.sort()
    return times[len(times) // 2]


def main():
    rows = []
    B, Hq, Hkv, D = 1, 32, 8, 128
    for N in (8192, 16384, 32768, 65536):
        q = torch.randn(B, Hq, N, D, device="cuda", dtype=torch.bfloat16)
        k = torch.randn(B, Hkv, N, D, device="cuda", dtype=torch.bfloat16)
        v = torch.randn(B, Hkv, N, D, device="cuda", dtype=torch.bfloat16)
        for name, be in (("flash", SDPBackend.FLASH_ATTENTION), ("cudnn", SDPBackend.CUDNN_ATTENTION)):
            try:
                with sdpa_kernel(be):
                    ms = median_ms(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True))
            except Exception as e:  # backend unavailable for this shape
                print(f"{name} N={N}: {e}", file=sys.stderr)
                continue
            tflops = 4 * B * Hq * N * N * D / 2 / ms / 1e9
            rows.append({"backend": name, "N": N, "fwd_ms": ms, "tflops_dense": tflops})
            print(f"sdpa {name:5s} N={N:6d} fwd {ms:8.3f} ms {tflops:6.1f} TFLOP/s", file=sys.stderr)
        del q, k, v
        torch.cuda.empty_cache()
    print(json.dumps({"device": torch.cuda.get_device_name(), "torch": torch.__version__, "shape": [B, Hq, Hkv, D],
                      "records": rows}, indent=1))


if __name__ == "__main__":
    main()
