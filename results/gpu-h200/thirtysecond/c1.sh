#!/bin/sh
# p34a: DMABENCH_CUDA_BWD_RW_CLUSTER=2|4 (the reducer warpgroups of a GQA group's heads sum their dK/dV partials
# through distributed shared memory, one global add for the cluster) and DMABENCH_CUDA_BWD_DQ_LATE=1, first run:
# verify (query tiles forced for mha/swa), dma fwd+bwd A/B at 8192 (3 rounds) and 65536 (1 round) against the
# default, then memcheck and racecheck of CL 4 over verify's dma grid.
[ -d gpupack/p34a ] || tar xJf gpupack/p34a.tar.xz -C gpupack
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=4
B=./gpupack/p34a/dmabench
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader > $O/gpu.txt; cat $O/gpu.txt
v() { n=$1; e=$2; shift 2; env $e timeout 240 $B verify --backend cuda --quiet "$@" --out $O/v-$n.json > $O/v-$n.log 2>&1; echo "$?" > $O/v-$n.rc; }
v c4-bf16 "DMABENCH_CUDA_BWD_RW_CLUSTER=4 DMABENCH_CUDA_BWD_KEYPAR=0" --dtype bf16 --variants mha,swa,dma,nsa &
v c4-f16 "DMABENCH_CUDA_BWD_RW_CLUSTER=4 DMABENCH_CUDA_BWD_KEYPAR=0" --dtype f16 --variants mha,swa,dma,nsa &
v c2-bf16 "DMABENCH_CUDA_BWD_RW_CLUSTER=2 DMABENCH_CUDA_BWD_KEYPAR=0" --dtype bf16 --variants mha,swa,dma,nsa &
v dql-bf16 "DMABENCH_CUDA_BWD_DQ_LATE=1 DMABENCH_CUDA_BWD_KEYPAR=0" --dtype bf16 --variants mha,swa,dma,nsa &
wait; t verified
for f in $O/v-*.log; do n=$(basename $f .log); echo "$n rc=$(cat $O/$n.rc): $(tail -1 $f)"; done
tar czf $OUT/o.tgz -C $OUT o
AB="--backend cuda --dtype bf16 --warmup 2 --repeats 5 --check-n 0 --w 1024 --b 1 --hq 32 --hkv 8 --d 128 --mode fwdbwd --variants dma"
DMABENCH=$B OUT=$O/ab8k timeout 200 sh scripts/kernels-ab.sh 3 - DMABENCH_CUDA_BWD_RW_CLUSTER=2 DMABENCH_CUDA_BWD_RW_CLUSTER=4 DMABENCH_CUDA_BWD_DQ_LATE=1 -- $AB --n 8192 > $O/ab8k.txt 2>&1
t ab8k; tail -4 $O/ab8k.txt
tar czf $OUT/o.tgz -C $OUT o
DMABENCH=$B OUT=$O/ab65 timeout 90 sh scripts/kernels-ab.sh 1 - DMABENCH_CUDA_BWD_RW_CLUSTER=4 -- $AB --n 65536 --repeats 3 > $O/ab65.txt 2>&1
t ab65; tail -3 $O/ab65.txt
tar czf $OUT/o.tgz -C $OUT o
s() { n=$1; e=$2; shift 2; env $e timeout 200 compute-sanitizer --tool $n --error-exitcode 9 $B verify --backend cuda --variants dma --quiet --out $O/s-$n.json > $O/s-$n.log 2>&1; echo "s-$n rc=$? $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY|passed' $O/s-$n.log | tail -2 | tr '\n' ' ')"; }
s memcheck DMABENCH_CUDA_BWD_RW_CLUSTER=4 & s racecheck DMABENCH_CUDA_BWD_RW_CLUSTER=4 & wait
t done
find $O -name '*.json' -size +100k -delete; find $O -name '*.jsonl' -delete
tar czf $OUT/o.tgz -C $OUT o
