#!/bin/sh
# call 3 (twenty-second set): main at n34: the targets' timings with nothing else on the GPU (mha fwd against
# SDPA in the same call; dma and swa at 8192 and 65536; decode at K 524288; swa, dma, nsa at 131072 and
# 262144), the training bench (mha at 2048 and 8192), then the verify part's two last steps (cut by call 2's limit)
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=4
B=./gpupack/main/dmabench
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader > $O/gpu.txt; cat $O/gpu.txt
okc() { grep -c '"status":[[:space:]]*"ok"' $1; }
t kernels
K="kernels --backend cuda --dtype bf16 --warmup 2 --repeats 5 --check-n 0"
k() { env $2 timeout 150 $B $K $3 --out $O/k-$1.json > $O/k-$1.log 2>&1; echo "$1 rc=$? $(grep -E '^\| (mha|dma|swa|nsa)' $O/k-$1.log | cut -d"|" -f2,3,4,6,9,11,12 | tr '\n' ' ')"; }
P="--b 1 --hq 32 --hkv 8 --d 128"
k mha-1 X=0 "--mode fwd --variants mha --n 8192,16384 $P"
k fb8k X=0 "--mode fwd,fwdbwd --variants swa,dma --n 8192 --w 1024 $P"
k fb65 X=0 "--mode fwd,fwdbwd --variants swa,dma --n 65536 --w 1024 $P"
k dec X=0 "--mode decode --variants mha,dma --n 524288 --w 1024 --warmup 5 --repeats 50 $P"
k long X=0 "--mode fwd,fwdbwd --variants swa,dma,nsa --n 131072,262144 --w 1024 $P"
k mha-2 X=0 "--mode fwd --variants mha --n 8192,16384 $P"
k fb8k-2 X=0 "--mode fwd,fwdbwd --variants dma --n 8192 --w 1024 $P"
tar czf $OUT/o.tgz -C $OUT o
t sdpa
timeout 100 python3 scripts/sdpa_anchor.py > $O/sdpa.json 2> $O/sdpa.log; echo "sdpa rc=$?"; head -4 $O/sdpa.log
t train
export OMP_NUM_THREADS=8
tr() { env $3 RUNS="$2" DMABENCH=$B OUT=$O/train-$1 sh scripts/gpu-train-bench.sh 2>&1 | grep -v '^{' | grep -v H200 | sed "s/^/$1 /"; rm -f $O/train-$1/bytes.txt; }
tr m2k "mha:2048:8" X=0
tr m8k "mha:8192:2" X=0
tr n8k "nsa:8192:2" X=0
tar czf $OUT/o.tgz -C $OUT o
t checks
$B kernels --backend cuda --variants dma --n 70000,131072 --w 1024,4096 --b 1 --hq 8 --hkv 2 --d 128 --dtype bf16 \
    --mode decode --dma-z clustered,rising --check-n 131072 --warmup 1 --repeats 3 --out $O/kz.json > $O/kz.log 2>&1
echo "bunched z decode rc=$? cells ok $(okc $O/kz.json) of 8"
$B kernels --backend cuda --variants dma --n 2048 --w 1024 --b 1 --hq 8 --hkv 2 --d 128 --dtype bf16 \
    --mode fwd,fwdbwd --dma-z rising --check-n 2048 --warmup 1 --repeats 3 --out $O/kr.json > $O/kr.log 2>&1
echo "rising z fwd/fwdbwd rc=$? cells ok $(okc $O/kr.json) of 2"
t done
find $O -name '*.json' -size +300k -delete; find $O -name '*.jsonl' -delete
tar czf $OUT/o.tgz -C $OUT o
