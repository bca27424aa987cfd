#!/bin/sh
# call 5 (twenty-fifth set): n51 (the fused qkv(g) weight padded to 8 rows, its three GEMMs whole) against main
# (cc): tests/gpu.sh's model part on n51; the training bench for nsa alternated twice, mha and dma once. Then the
# targets re-timed on n51 (the kernels are main's): mha fwd against SDPA in the same call; swa and dma at 8192 and
# 65536; nsa at 8192 and 65536; decode at K 524288
for p in cc n51; do [ -d gpupack/$p ] || tar xJf gpupack/$p.tar.xz -C gpupack; done
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=2
M=./gpupack/cc/dmabench B=./gpupack/n51/dmabench
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader > $O/gpu.txt; cat $O/gpu.txt
(OMP_NUM_THREADS=6 DMABENCH_GPU=1 DMABENCH_GPU_PART=model DMABENCH=$B DMABENCH_TESTS=./gpupack/n51/tests DMABENCH_GPU_KEEP=$O/model-keep timeout 300 sh tests/gpu.sh > $O/gpu-model.log 2>&1; echo $? > $O/gpu-model.rc; t "model part done: $(grep -c '^ok' $O/gpu-model.log) ok, $(grep -c '^not ok' $O/gpu-model.log) not ok") &
wait
grep '^not ok' $O/gpu-model.log; grep -h "^# .*gpu vs cpu" $O/model-keep/test_model_gpu_train.log
t train
export OMP_NUM_THREADS=8
trn() { RUNS="$2" DMABENCH=$3 OUT=$O/train-$1 sh scripts/gpu-train-bench.sh 2>&1 | grep -v '^{' | grep -v H200 | sed "s/^/$1 /"; rm -f $O/train-$1/bytes.txt; tar czf $OUT/o.tgz -C $OUT o; }
trn main "nsa:8192:2" $M; trn n51 "nsa:8192:2" $B; trn main-2 "nsa:8192:2" $M; trn n51-2 "nsa:8192:2" $B
trn mha "mha:8192:2" $B; trn dma "dma:8192:2" $B
t kernels
export OMP_NUM_THREADS=4
K="kernels --backend cuda --dtype bf16 --warmup 2 --repeats 5 --check-n 0"
k() { env $2 timeout 120 $B $K $3 --out $O/k-$1.json > $O/k-$1.log 2>&1; echo "$1 rc=$? $(grep -E '^\| (mha|dma|swa|nsa)' $O/k-$1.log | cut -d"|" -f2,3,4,6,9,11,12 | tr '\n' ' ')"; }
P="--b 1 --hq 32 --hkv 8 --d 128"
k mha X=0 "--mode fwd --variants mha --n 8192 $P"
k fb8k X=0 "--mode fwd,fwdbwd --variants swa,dma --n 8192 --w 1024 $P"
k fb65 X=0 "--mode fwd,fwdbwd --variants swa,dma --n 65536 --w 1024 $P"
k nsa8k X=0 "--mode fwd,fwdbwd --variants nsa --n 8192 --w 512 $P"
k nsa65 X=0 "--mode fwd,fwdbwd --variants nsa --n 65536 --w 512 $P"
k dec X=0 "--mode decode --variants mha,dma --n 524288 --w 1024 --warmup 5 --repeats 50 $P"
tar czf $OUT/o.tgz -C $OUT o
t sdpa
timeout 100 python3 scripts/sdpa_anchor.py > $O/sdpa.json 2> $O/sdpa.log; echo "sdpa rc=$?"; head -4 $O/sdpa.log
t done
find $O -name '*.json' -size +300k -delete; find $O -name '*.jsonl' -delete; find $O -name '*.bin' -delete; find $O -name '*.safetensors' -delete
tar czf $OUT/o.tgz -C $OUT o
