#!/bin/sh
# p32b (main at d5389a5, ov1 the default): the targets in one call: mha fwd at 8192 against PyTorch SDPA in the same call;
# swa, dma at 8192 and 65536; nsa at 8192 and 65536; decode at K 524288; swa, dma, nsa at 131072 and 262144
[ -d gpupack/p32b ] || tar xJf gpupack/p32b.tar.xz -C gpupack
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=4
T=./gpupack/p32b/dmabench
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader > $O/gpu.txt; cat $O/gpu.txt
K="kernels --backend cuda --dtype bf16 --warmup 2 --repeats 5 --check-n 0"
k() { env $4 timeout ${5:-100} $2 $K $3 --out $O/k-$1.json > $O/k-$1.log 2>&1; echo "$1 rc=$? $(grep -E '^\| (mha|dma|swa|nsa)' $O/k-$1.log | cut -d"|" -f2,3,4,6,9,11,12 | tr '\n' ' ')"; }
P="--b 1 --hq 32 --hkv 8 --d 128"
k mha $T "--mode fwd --variants mha --n 8192,16384 $P" X=0
k fb8k $T "--mode fwd,fwdbwd --variants swa,dma --n 8192 --w 1024 $P" X=0
k fb65 $T "--mode fwd,fwdbwd --variants swa,dma --n 65536 --w 1024 $P" X=0
k nsa8k $T "--mode fwd,fwdbwd --variants nsa --n 8192 --w 512 $P" X=0
k nsa65 $T "--mode fwd,fwdbwd --variants nsa --n 65536 --w 512 $P" X=0
k dec $T "--mode decode --variants mha,dma --n 524288 --w 1024 --warmup 5 --repeats 50 $P" X=0
t sdpa
tar czf $OUT/o.tgz -C $OUT o
timeout 120 python3 scripts/sdpa_anchor.py > $O/sdpa.json 2> $O/sdpa.log; echo "sdpa rc=$?"; head -6 $O/sdpa.log
tar czf $OUT/o.tgz -C $OUT o
t large
L="--warmup 1 --repeats 3"
k big-sd $T "--mode fwd,fwdbwd --variants swa,dma --n 131072,262144 --w 1024 $P $L" X=0 200
tar czf $OUT/o.tgz -C $OUT o
k big-nsa $T "--mode fwd,fwdbwd --variants nsa --n 131072,262144 --w 512 $P $L" X=0 150
t done
find $O -name '*.json' -size +300k -delete; find $O -name '*.jsonl' -delete
tar czf $OUT/o.tgz -C $OUT o
