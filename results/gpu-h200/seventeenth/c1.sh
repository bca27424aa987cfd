#!/bin/sh
# call 1 (seventeenth set): o1 (the forward's lazy rescale and folded scale) against main: mha fwd at 8192/16384 and the model's shape,
# swa/dma fwd at 65536; SDPA anchors; Nsight Compute of main's, o1's and SDPA flash's forward at 8192; o1's checks
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=8
MAIN=./gpupack/main/dmabench O1=./gpupack/o1/dmabench
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader > $O/gpu.txt; cat $O/gpu.txt
okc() { grep -c '"status":[[:space:]]*"ok"' $1; }
timeout 60 $O1 kernels --backend cuda --variants mha,swa,dma,nsa --n 300,2048 --w 256 --b 2 --hq 4 --hkv 2 --d 128,64 --dtype bf16 --mode fwd --warmup 0 --repeats 1 --out $O/q-o1.json > $O/q-o1.log 2>&1; echo "quick o1 rc=$? ok=$(okc $O/q-o1.json) of 16"
K="kernels --backend cuda --dtype bf16 --warmup 2 --repeats 7 --check-n 0"
k() { env $3 timeout 120 $2 $K $4 --out $O/k-$1.json > $O/k-$1.log 2>&1; echo "$1 rc=$? $(grep -E '^\| (mha|dma|swa|nsa)' $O/k-$1.log | cut -d'|' -f2,4,6,9,11,12 | tr '\n' ' ')"; }
t kernels
for r in 1 2 3; do
  for x in main:$MAIN o1:$O1; do n=${x%%:*}; bin=${x#*:}
    k $n-8192-$r $bin X=0 "--mode fwd --variants mha --n 8192,16384 --b 1 --hq 32 --hkv 8 --d 128"
    k $n-model-$r $bin X=0 "--mode fwd --variants mha --n 2048 --b 8 --hq 6 --hkv 3 --d 128"
  done
done
for x in main:$MAIN o1:$O1; do n=${x%%:*}; bin=${x#*:}
  k $n-65k $bin X=0 "--mode fwd --variants swa,dma --n 65536 --w 1024 --b 1 --hq 32 --hkv 8 --d 128"
  k $n-dma8k $bin X=0 "--mode fwd,fwdbwd --variants dma --n 8192 --w 1024 --b 1 --hq 32 --hkv 8 --d 128"
done
t sdpa
timeout 150 python3 scripts/sdpa_anchor.py > $O/sdpa.json 2> $O/sdpa.log; echo "sdpa rc=$?"; head -8 $O/sdpa.log
cat > $O/fa2fwd.py <<'PY'
import torch, torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
q = torch.randn(1, 32, 8192, 128, device="cuda", dtype=torch.bfloat16)
k, v = (torch.randn(1, 8, 8192, 128, device="cuda", dtype=torch.bfloat16) for _ in range(2))
with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
    for _ in range(3): o = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
torch.cuda.synchronize()
PY
t profile
PR="kernels --backend cuda --variants mha --n 8192 --b 1 --hq 32 --hkv 8 --d 128 --dtype bf16 --mode fwd --warmup 1 --repeats 1 --check-n 0"
OUT=$O/prof timeout 120 sh scripts/gpu-kernel-profile.sh main attn_fwd_kernel 1 $MAIN $PR 2>&1 | tail -8
OUT=$O/prof timeout 120 sh scripts/gpu-kernel-profile.sh o1 attn_fwd_kernel 1 $O1 $PR 2>&1 | tail -8
OUT=$O/prof timeout 120 sh scripts/gpu-kernel-profile.sh fa2 flash_fwd 1 python3 $O/fa2fwd.py 2>&1 | tail -8
t checks
for dt in bf16 f16; do (timeout 200 $O1 verify --backend cuda --dtype $dt --quiet --out $O/v-$dt.json > $O/v-$dt.log 2>&1; echo $? > $O/v-$dt.rc) & done
(timeout 200 compute-sanitizer --tool memcheck --error-exitcode 9 $O1 verify --backend cuda --variants mha,dma --quiet > $O/san-mem.log 2>&1; echo $? > $O/san-mem.rc) &
(timeout 200 compute-sanitizer --tool racecheck --error-exitcode 9 $O1 verify --backend cuda --variants mha --quiet > $O/san-race.log 2>&1; echo $? > $O/san-race.rc) &
wait
for v in bf16 f16; do echo "verify o1 $v rc=$(cat $O/v-$v.rc) $(grep '^verify:' $O/v-$v.log | tail -1)"; grep FAIL $O/v-$v.log | head -3; done
echo "memcheck rc=$(cat $O/san-mem.rc) $(grep 'ERROR SUMMARY' $O/san-mem.log)"; echo "racecheck rc=$(cat $O/san-race.rc) $(grep 'RACECHECK SUMMARY' $O/san-race.log)"
t done
rm -f $O/v-*.json; find $O -name '*.json' -size +300k -delete; find $O -name '*.jsonl' -delete
tar czf $OUT/o.tgz -C $OUT o
