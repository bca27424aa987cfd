#!/bin/sh
# p37g (main 889af5f: fw1's producer as merged). racecheck of dma with DMABENCH_CUDA_FWD_WS=1 in 3 shards at once, and
# verify of WS=1 in bf16 beside them.
[ -d gpupack/p37g ] || tar xJf gpupack/p37g.tar.xz -C gpupack
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
B=./gpupack/p37g/dmabench
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > $O/gpu.txt; cat $O/gpu.txt
r() { DMABENCH_CUDA_FWD_WS=1 timeout 185 compute-sanitizer --tool racecheck --error-exitcode 9 $B verify --backend cuda --variants dma --quiet --shard $1/3 --out $O/r$1.json > $O/r$1.log 2>&1; echo "racecheck shard $1/3 rc=$? $(grep -E 'RACECHECK SUMMARY|passed' $O/r$1.log | tail -2 | tr '\n' ' ')"; }
r 1 > $O/s1.txt & r 2 > $O/s2.txt & r 3 > $O/s3.txt &
DMABENCH_CUDA_FWD_WS=1 timeout 120 $B verify --backend cuda --quiet --dtype bf16 --out $O/v-ws1.json > $O/v-ws1.log 2>&1; echo "verify ws1 rc=$? $(grep passed $O/v-ws1.log | tail -1)"
wait; cat $O/s1.txt $O/s2.txt $O/s3.txt; echo "[$(( $(date +%s)-S0 ))s] done"
find $O -name '*.json' -size +100k -delete; find $O -name '*.jsonl' -delete
tar czf $OUT/o.tgz -C $OUT o
