#!/bin/sh
# call 6 (main's code): Nsight Compute's full set with per-instruction stall samples for the attention backward at the model's shape (B 8, Hq 6, Hkv 3, N 2048, D 128, bf16, causal): ours (bwd_main_kernel, 128-row query tiles) and PyTorch SDPA's flash backward (K and V repeated to 6 heads)
O=$OUT/o; mkdir -p $O
NEW=./gpupack/new/dmabench
prof() { # name regex skip command...
  n=$1 k=$2 sk=$3; shift 3
  timeout 200 ncu --clock-control none --set full --import-source yes -k regex:$k --launch-skip $sk --launch-count 1 -o $O/$n "$@" > $O/ncu-$n.log 2>&1
  echo "$n rc=$?"
  ncu --import $O/$n.ncu-rep --page source --print-source sass --csv > $O/$n-sass.csv 2>/dev/null
  ncu --import $O/$n.ncu-rep --page details > $O/$n-details.txt 2>/dev/null
  sh scripts/ncu-sass-ops.sh $O/$n-sass.csv > $O/$n-ops.txt 2>&1; head -16 $O/$n-ops.txt
  grep -E 'Duration|Registers Per|Achieved Occupancy|Issue Slots Busy|Executed Ipc A' $O/$n-details.txt | head -6
  gzip $O/$n-sass.csv; rm -f $O/$n.ncu-rep
}
prof ours bwd_main_kernel 1 $NEW kernels --backend cuda --variants mha --n 2048 --b 8 --hq 6 --hkv 3 --d 128 --dtype bf16 --mode fwdbwd --warmup 1 --repeats 1 --check-n 0
cat > $O/fa2bwd.py <<'PY'
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
PY
python3 $O/fa2bwd.py 2>&1 | tail -2
prof fa2 flash_bwd_dq_dk_dv 1 python3 $O/fa2bwd.py
tar czf $OUT/o.tgz -C $OUT o
