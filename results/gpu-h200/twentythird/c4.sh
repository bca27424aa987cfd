#!/bin/sh
# call 4 (twenty-third set): main with n35-n40 merged (3ce2ba6): the targets' timings with nothing else on the GPU
# (mha fwd against SDPA in the same call; swa and dma at 8192 and 65536; nsa at 65536; decode at K 524288; mha
# training at 2048), then the three racechecks of the sanitize-optin list that no call has finished, each over
# 4 shards of its verify grid (verify --shard), 12 processes at once, unbuffered so that a cut run shows its cells
[ -d gpupack/merged ] || tar xJf gpupack/merged.tar.xz -C gpupack
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=4
B=./gpupack/merged/dmabench
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader > $O/gpu.txt; cat $O/gpu.txt
t kernels
K="kernels --backend cuda --dtype bf16 --warmup 2 --repeats 5 --check-n 0"
k() { env $2 timeout 100 $B $K $3 --out $O/k-$1.json > $O/k-$1.log 2>&1; echo "$1 rc=$? $(grep -E '^\| (mha|dma|swa|nsa)' $O/k-$1.log | cut -d"|" -f2,3,4,6,9,11,12 | tr '\n' ' ')"; }
P="--b 1 --hq 32 --hkv 8 --d 128"
k mha X=0 "--mode fwd --variants mha --n 8192,16384 $P"
k fb8k X=0 "--mode fwd,fwdbwd --variants swa,dma --n 8192 --w 1024 $P"
k fb65 X=0 "--mode fwd,fwdbwd --variants swa,dma --n 65536 --w 1024 $P"
k nsa65 X=0 "--mode fwd,fwdbwd --variants nsa --n 65536 --w 512 $P"
k dec X=0 "--mode decode --variants mha,dma --n 524288 --w 1024 --warmup 5 --repeats 50 $P"
tar czf $OUT/o.tgz -C $OUT o
t sdpa
timeout 100 python3 scripts/sdpa_anchor.py > $O/sdpa.json 2> $O/sdpa.log; echo "sdpa rc=$?"; head -4 $O/sdpa.log
t train
OMP_NUM_THREADS=8 RUNS="mha:2048:8" DMABENCH=$B OUT=$O/train-m2k sh scripts/gpu-train-bench.sh 2>&1 | grep -v '^{' | grep -v H200
rm -f $O/train-m2k/bytes.txt
tar czf $OUT/o.tgz -C $OUT o
SB=""; command -v stdbuf >/dev/null && SB="stdbuf -oL"
L=$(( 530 - ($(date +%s)-S0) ))
t "racecheck, $L s each"
for o in DMABENCH_DECODE_SEL_SAMPLE=0:dma DMABENCH_CUDA_WGMMA=1:mha,dma DMABENCH_CUDA_WGMMA_BWD=1+DMABENCH_CUDA_BWD_KEYPAR=0:mha,dma; do
  for s in 1 2 3 4; do
    sw=${o%%:*} vs=${o#*:} n=$(echo "${o%%:*}" | tr '=+' '-_')-s$s
    (env $(echo "$sw" | tr '+' ' ') timeout $L $SB compute-sanitizer --tool racecheck --error-exitcode 9 $B verify --backend cuda --variants "$vs" --shard $s/4 --out $O/r-$n.json > $O/r-$n.log 2>&1; echo $? > $O/r-$n.rc) &
  done
done
wait
t "racecheck done"
for f in $O/r-*.rc; do n=${f%.rc}; echo "$(basename $n): rc=$(cat $f) cells $(grep -c '^| ' $n.log) $(grep 'RACECHECK SUMMARY' $n.log) $(grep '^verify:' $n.log | tail -1) $(grep -c -i hazard $n.log) hazard lines"; done
find $O -name '*.json' -size +300k -delete; find $O -name '*.jsonl' -delete
tar czf $OUT/o.tgz -C $OUT o
