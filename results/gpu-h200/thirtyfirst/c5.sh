#!/bin/sh
# p33d (rw1 the default on mbarriers; fw1 back to c3's producer): verify of the default in every dtype and of
# ov1 (WG_REDUCER=0), then the targets re-timed: mha fwd 8192/16384, swa and dma at 8192 and 65536,
# nsa at 65536, decode at K 524288, swa and dma fwd+bwd at 131072 and 262144.
[ -d gpupack/p33d ] || tar xJf gpupack/p33d.tar.xz -C gpupack
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=4
B=./gpupack/p33d/dmabench
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader > $O/gpu.txt; cat $O/gpu.txt
v() { n=$1; e=$2; shift 2; env $e timeout 200 $B verify --backend cuda --quiet "$@" --out $O/v-$n.json > $O/v-$n.log 2>&1; echo "$?" > $O/v-$n.rc; }
v def-bf16 X=0 --dtype bf16 & v def-f16 X=0 --dtype f16 & v def-f32 X=0 --dtype f32 &
v ov1-bf16 "DMABENCH_CUDA_BWD_WG_REDUCER=0 DMABENCH_CUDA_BWD_KEYPAR=0" --dtype bf16 --variants mha,swa,dma,nsa &
v ws-bf16 DMABENCH_CUDA_FWD_WS=1 --dtype bf16 --variants mha,swa,dma,nsa &
wait; t verified
for f in $O/v-*.log; do n=$(basename $f .log); echo "$n rc=$(cat $O/$n.rc): $(tail -1 $f)"; done
tar czf $OUT/o.tgz -C $OUT o
K="kernels --backend cuda --dtype bf16 --warmup 2 --repeats 5 --check-n 0"
k() { timeout ${3:-100} $B $K $2 --out $O/k-$1.json > $O/k-$1.log 2>&1; echo "$1 rc=$? $(grep -E '^\| (mha|dma|swa|nsa)' $O/k-$1.log | cut -d"|" -f2,3,4,6,9,11,12 | tr '\n' ' ')"; }
P="--b 1 --hq 32 --hkv 8 --d 128"
k mha "--mode fwd --variants mha --n 8192,16384 $P"
k fb8k "--mode fwd,fwdbwd --variants swa,dma --n 8192 --w 1024 $P"
k fb65 "--mode fwd,fwdbwd --variants swa,dma --n 65536 --w 1024 $P"
k nsa65 "--mode fwd,fwdbwd --variants nsa --n 65536 --w 512 $P"
k dec "--mode decode --variants mha,dma --n 524288 --w 1024 --warmup 5 --repeats 50 $P"
t large
tar czf $OUT/o.tgz -C $OUT o
k big-sd "--mode fwd,fwdbwd --variants swa,dma --n 131072,262144 --w 1024 $P --warmup 1 --repeats 3" 170
t done
find $O -name '*.json' -size +300k -delete; find $O -name '*.jsonl' -delete
tar czf $OUT/o.tgz -C $OUT o
