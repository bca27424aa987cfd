#!/bin/sh
# call 4 (twenty-sixth set): final main (w3). verify with the engine's query-tile backward for the branches that take
# the caller's Dsum (DMABENCH_CUDA_BWD_KEYPAR=0: mha, swa, nsa) and with KPSPLIT=0; dma's fwd+bwd at 131072 and
# 262144 (call 3 cut them); mha's training at 2048 (batch 8)
for p in w3; do [ -d gpupack/$p ] || tar xJf gpupack/$p.tar.xz -C gpupack; done
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=4
B=./gpupack/w3/dmabench
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader > $O/gpu.txt; cat $O/gpu.txt
v() { (env $2 timeout 200 $B verify --backend cuda --variants $3 --dtype $4 --quiet --out $O/v-$1.json > $O/v-$1.log 2>&1; echo $? > $O/v-$1.rc) & }
v kp0 DMABENCH_CUDA_BWD_KEYPAR=0 mha,swa,nsa bf16; v kps0 DMABENCH_CUDA_BWD_KPSPLIT=0 mha,swa,nsa f16
wait
for x in kp0 kps0; do echo "verify $x rc=$(cat $O/v-$x.rc) $(grep '^verify:' $O/v-$x.log | tail -1)"; grep FAIL $O/v-$x.log | head -3; done
tar czf $OUT/o.tgz -C $OUT o
t train
export OMP_NUM_THREADS=8
trn() { RUNS="$2" DMABENCH=$3 OUT=$O/train-$1 sh scripts/gpu-train-bench.sh 2>&1 | grep -v '^{' | grep -v H200 | sed "s/^/$1 /"; rm -f $O/train-$1/bytes.txt; tar czf $OUT/o.tgz -C $OUT o; }
trn mha2k "mha:2048:8" $B
t large
export OMP_NUM_THREADS=16
P="--b 1 --hq 32 --hkv 8 --d 128"
for n in 131072 262144; do
  timeout 200 $B kernels --backend cuda --dtype bf16 --warmup 1 --repeats 3 --check-n 0 --mode fwdbwd --variants dma --n $n --w 1024 $P --out $O/k-big-dma-$n.json > $O/k-big-dma-$n.log 2>&1
  echo "dma $n rc=$? $(grep -E '^\| dma' $O/k-big-dma-$n.log | cut -d"|" -f2,3,4,6,9,11,12 | tr '\n' ' ')"; t "dma $n"
  tar czf $OUT/o.tgz -C $OUT o
done
t done
rm -f $O/v-*.json; find $O -name '*.json' -size +300k -delete; find $O -name '*.jsonl' -delete
tar czf $OUT/o.tgz -C $OUT o
