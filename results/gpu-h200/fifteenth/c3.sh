#!/bin/sh
# call 3: w2 (the wgmma forward with V read N-major, three stages, S_j's product issued with O += P_{j-1} V_{j-1} and the softmax between; DMABENCH_CUDA_WGMMA=1) against the mma.sync default and w1 (old build); quick correctness first
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=8
NEW=./gpupack/new/dmabench; OLD=./gpupack/old/dmabench
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader > $O/gpu.txt
for vs in 0 1; do env DMABENCH_CUDA_WGMMA=1 DMABENCH_WGMMA_VSWAP=$vs timeout 60 $NEW kernels --backend cuda --variants mha --n 300,2048 --b 1 --hq 4 --hkv 2 --d 128,64 --dtype bf16 --mode fwd --warmup 0 --repeats 1 --out $O/q-$vs.json > $O/q-$vs.log 2>&1; echo "quick vswap=$vs rc=$? ok=$(grep -c '"status":[[:space:]]*"ok"' $O/q-$vs.json) of 4"; done
K="kernels --backend cuda --b 1 --hq 32 --hkv 8 --d 128 --dtype bf16 --mode fwd --warmup 3 --repeats 10 --check-n 0"
k() { env $3 timeout 60 $2 $K $4 --out $O/k-$1.json > $O/k-$1.log 2>&1; echo "$1 rc=$? $(grep -E '^\| (mha|dma|swa)' $O/k-$1.log | cut -d'|' -f2,4,6,9,11,12 | tr '\n' ' ')"; }
for r in 1 2; do
  k def-$r $NEW X=0 "--variants mha --n 8192,16384"
  k w2-$r $NEW DMABENCH_CUDA_WGMMA=1 "--variants mha --n 8192,16384"
done
k w1 $OLD DMABENCH_CUDA_WGMMA=1 "--variants mha --n 8192,16384"
k def-65k $NEW X=0 "--variants swa,dma --n 65536 --w 1024"
k w2-65k $NEW DMABENCH_CUDA_WGMMA=1 "--variants swa,dma --n 65536 --w 1024"
k def-model $NEW X=0 "--variants mha --n 2048 --b 8 --hq 6 --hkv 3"
k w2-model $NEW DMABENCH_CUDA_WGMMA=1 "--variants mha --n 2048 --b 8 --hq 6 --hkv 3"
t sdpa
timeout 120 python3 scripts/sdpa_anchor.py > $O/sdpa.json 2> $O/sdpa.log; echo "sdpa rc=$?"; head -4 $O/sdpa.log
t verify
for dt in bf16 f16; do (env DMABENCH_CUDA_WGMMA=1 timeout 200 $NEW verify --backend cuda --dtype $dt --quiet --out $O/v-$dt.json > $O/v-$dt.log 2>&1; echo $? > $O/v-$dt.rc) & done
wait
for dt in bf16 f16; do echo "verify w2 $dt rc=$(cat $O/v-$dt.rc) $(grep '^verify:' $O/v-$dt.log | tail -1)"; grep -i 'fail' $O/v-$dt.log | head -3; done
t done
rm -f $O/v-*.json
tar czf $OUT/o.tgz -C $OUT o
