#!/bin/sh
# call 4 (twenty-fifth set): copy_cols by 16 bytes (cc) against main before it (n49): tests/gpu.sh's model part on
# cc, the training bench alternated twice; an experiment binary (xrem: main with XSKIPREM=1 leaving out the fused
# qkv's 2 remainder columns, so wrong gates: what fixing those GEMMs could gain at most) with and without it; mha's
# training and both variants' kernels per step under Nsight Compute; mha and nsa fwd+bwd at the model's shape
for p in n49 cc xrem; do [ -d gpupack/$p ] || tar xJf gpupack/$p.tar.xz -C gpupack; done
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=2
M=./gpupack/n49/dmabench B=./gpupack/cc/dmabench X=./gpupack/xrem/dmabench
(OMP_NUM_THREADS=6 DMABENCH_GPU=1 DMABENCH_GPU_PART=model DMABENCH=$B DMABENCH_TESTS=./gpupack/cc/tests DMABENCH_GPU_KEEP=$O/model-keep timeout 300 sh tests/gpu.sh > $O/gpu-model.log 2>&1; echo $? > $O/gpu-model.rc; t "model part done: $(grep -c '^ok' $O/gpu-model.log) ok, $(grep -c '^not ok' $O/gpu-model.log) not ok") &
wait
grep '^not ok' $O/gpu-model.log
t kernels
K="kernels --backend cuda --dtype bf16 --warmup 2 --repeats 5 --check-n 0"
k() { env $3 timeout 100 $2 $K $4 --out $O/k-$1.json > $O/k-$1.log 2>&1; echo "$1 rc=$? $(grep -E '^\| (mha|dma|swa|nsa)' $O/k-$1.log | cut -d"|" -f2,4,6,9,11,12 | tr '\n' ' ')"; }
k mha-nt $B X=0 "--mode fwd,fwdbwd --variants mha --n 8192 --b 2 --hq 6 --hkv 3 --d 128"
k nsa-nt $B X=0 "--mode fwd,fwdbwd --variants nsa --n 8192 --w 512 --b 2 --hq 6 --hkv 3 --d 128"
tar czf $OUT/o.tgz -C $OUT o
t train
export OMP_NUM_THREADS=8
trn() { env $4 RUNS="$2" DMABENCH=$3 OUT=$O/train-$1 sh scripts/gpu-train-bench.sh 2>&1 | grep -v '^{' | grep -v H200 | sed "s/^/$1 /"; rm -f $O/train-$1/bytes.txt; tar czf $OUT/o.tgz -C $OUT o; }
trn main "nsa:8192:2" $M X=0; trn cc "nsa:8192:2" $B X=0; trn main-2 "nsa:8192:2" $M X=0; trn cc-2 "nsa:8192:2" $B X=0
trn xrem0 "nsa:8192:2" $X X=0; trn xrem1 "nsa:8192:2" $X XSKIPREM=1; trn mha "mha:8192:2" $B X=0
for x in xrem0 xrem1; do echo "$x losses: $(grep -o "\"loss\":[^,]*" $O/train-$x/*.jsonl | tail -3 | tr "\n" " ")"; done
t profile
DMABENCH=$B OUT=$O/prof timeout 150 sh scripts/gpu-train-profile.sh mha 8192 2 2>&1 | head -30
DMABENCH=$B OUT=$O/prof timeout 150 sh scripts/gpu-train-profile.sh nsa 8192 2 > /dev/null 2>&1
t done
rm -f $O/prof/ncu-*.csv; find $O -name '*.json' -size +300k -delete; find $O -name '*.jsonl' -delete; find $O -name '*.bin' -delete; find $O -name '*.safetensors' -delete
tar czf $OUT/o.tgz -C $OUT o
