#!/bin/sh
# call B: nsa-saved's verify in f16/f32 and without the area (longer limits, in
# parallel); decode at 524288, SDPA's anchors and mha's forward; mha 2048 training on
# main's binary (against call A's branch: t7+t8); then the paper suite until PAPER_END
B=./gpubuild/dmabench; O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv > $O/nvidia-smi.csv
mkdir -p /tmp/m && tar xzf gpupack/gb.tgz -C /tmp/m
t verify
(OMP_NUM_THREADS=5 timeout 200 $B verify --backend cuda --variants nsa,dma --dtype f16 --quiet --out $O/v-sparse-f16.json > $O/v-sparse-f16.log 2>&1; echo $? > $O/v-sparse-f16.rc) &
(OMP_NUM_THREADS=5 timeout 200 $B verify --backend cuda --variants nsa,dma --dtype f32 --quiet --out $O/v-sparse-f32.json > $O/v-sparse-f32.log 2>&1; echo $? > $O/v-sparse-f32.rc) &
(OMP_NUM_THREADS=5 DMABENCH_NSA_SAVED=0 DMABENCH_DMA_SAVED=0 timeout 200 $B verify --backend cuda --variants nsa,dma --dtype bf16 --quiet --out $O/v-nosaved.json > $O/v-nosaved.log 2>&1; echo $? > $O/v-nosaved.rc) &
wait
for n in v-sparse-f16 v-sparse-f32 v-nosaved; do echo "$n rc=$(cat $O/$n.rc) $(grep '^verify:' $O/$n.log | tail -1)"; done
K="$B kernels --backend cuda --b 1 --hq 32 --hkv 8 --d 128 --dtype bf16"
t decode; timeout 40 $K --variants mha,dma --n 524288 --w 1024 --mode decode --warmup 3 --repeats 10 --out $O/k-decode.json > $O/k-decode.log 2>&1; echo rc=$?; grep -E '^\| (mha|dma)' $O/k-decode.log | cut -c1-150
t sdpa; timeout 90 python3 scripts/sdpa_anchor.py > $O/anchors.json 2> $O/anchors.log; echo rc=$?; tail -8 $O/anchors.log
t mha; timeout 40 $K --variants mha --n 8192,16384 --mode fwd --warmup 3 --repeats 10 --out $O/k-mha.json > $O/k-mha.log 2>&1; echo rc=$?; grep -E '^\| mha' $O/k-mha.log | cut -c1-150
cat README.md docs/*.md > /tmp/bytes.txt; mkdir -p $O/train
for b in /tmp/m/gpubuild/dmabench $B; do n=$(echo $b | tr '/' '_'); t "train mha 2048 $b"; timeout 40 $b train --config model/configs/gpu-131m-mha.json --data /tmp/bytes.txt --out /tmp/trm --backend cuda --context 2048 --batch-size 8 --steps 30 --log-every 5 --force --quiet > $O/train/train-mha-2048$n.log 2>&1; echo rc=$?; cp /tmp/trm/train_log.jsonl $O/train/train-mha-2048$n.jsonl; grep '"tokens_per_s"' /tmp/trm/train_log.jsonl | grep -v event | tail -1 | cut -c1-160; done
t paper; P=$OUT/paper; mkdir -p $P; cp -r gpupack/paper/. $P/
DEADLINE=$(( S0 + ${PAPER_END:-550} )) DMABENCH=$B sh scripts/run-gpus.sh suites/paper.json $P 0 > $O/paper.log 2>&1; echo rc=$?; tail -8 $O/paper.log
t done
tar czf $OUT/o.tgz -C $OUT o paper
