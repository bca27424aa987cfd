import torch, torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
B, H, N, D = 8, 6, 2048, 128
q, k, v = (torch.randn(B, H, N, D, device="cuda", dtype=torch.bfloat16, requires_grad=True) for _ in range(3))
with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
    for _ in range(3):
        o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        o.backward(torch.randn_like(o))
    torch.cuda.synchronize()
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    do = torch.randn_like(o); ts = []
    for _ in range(10):
        o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        torch.cuda.synchronize(); s.record(); o.backward(do); e.record(); e.synchronize(); ts.append(s.elapsed_time(e))
    ts.sort(); print("sdpa flash bwd B8 H6 N2048 D128 causal: %.4f ms (median of 10)" % ts[5])
