#!/bin/sh
# call 3 (twenty-fourth set): the training bench, 131M model at 8192, batch 2, on the merge candidate: mha; nsa with
# the one-batch pairs' forward (FWD_SUB=1, main's) and the default (8 batches a CTA), twice alternated; dma with and
# without the 16-warp backward. Then one launch each under Nsight Compute's full set: the pairs' backward on 4 and on
# 8 warps at the model's shape, dma's query-tile backward on 8 and 16 warps at the paper shape at 8192
[ -d gpupack/n25 ] || tar xJf gpupack/n25.tar.xz -C gpupack
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=8
B=./gpupack/n25/dmabench
trn() { env $3 RUNS="$2" DMABENCH=$B OUT=$O/train-$1 sh scripts/gpu-train-bench.sh 2>&1 | grep -v '^{' | grep -v H200 | sed "s/^/$1 /"; rm -f $O/train-$1/bytes.txt; tar czf $OUT/o.tgz -C $OUT o; }
t train
trn mha "mha:8192:2" X=0
trn sub1 "nsa:8192:2" DMABENCH_NSA_PAIR_FWD_SUB=1
trn sub8 "nsa:8192:2" X=0
trn dma "dma:8192:2" X=0
trn dmaw16 "dma:8192:2" DMABENCH_CUDA_BWD_W16=1
trn sub1b "nsa:8192:2" DMABENCH_NSA_PAIR_FWD_SUB=1
trn sub8b "nsa:8192:2" X=0
t profiles
pr() { n=$1 re=$2; shift 2; env $1 OUT=$O/prof timeout 120 sh scripts/gpu-kernel-profile.sh $n $re 0 $B kernels --backend cuda --dtype bf16 --mode fwdbwd --warmup 0 --repeats 1 --check-n 0 $2 2>&1 | tail -8; tar czf $OUT/o.tgz -C $OUT o; }
NT="--variants nsa --n 8192 --w 512 --b 2 --hq 6 --hkv 3 --d 128"
DP="--variants dma --n 8192 --w 1024 --b 1 --hq 32 --hkv 8 --d 128"
pr pairbwd4 nsa_slc_pair_bwd_sub_kernel X=0 "$NT"
pr pairbwd8 nsa_slc_pair_bwd_w8_kernel DMABENCH_NSA_PAIR_BWD_W8=1 "$NT"
pr dmabwd8 bwd_main_kernel X=0 "$DP"
pr dmabwd16 bwd_main_kernel DMABENCH_CUDA_BWD_W16=1 "$DP"
t done
find $O -name '*.jsonl' -delete
tar czf $OUT/o.tgz -C $OUT o
