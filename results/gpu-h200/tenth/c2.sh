#!/bin/sh
# training throughput (mha 2048; mha, dma, nsa 8192), mha 2048's kernel profile and
# phases, then the paper suite until the deadline (PAPER_END seconds after start)
B=./gpubuild/dmabench; O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv > $O/nvidia-smi.csv
t bench; DMABENCH=$B OUT=$O/train timeout 200 sh scripts/gpu-train-bench.sh 2>&1 | grep -v event
t phases; cat README.md docs/*.md > /tmp/bytes.txt; DMABENCH_GPU_PHASES=1 timeout 60 $B train --config model/configs/gpu-131m-mha.json --data /tmp/bytes.txt --out /tmp/ph --backend cuda --context 2048 --batch-size 8 --steps 10 --log-every 5 --force --quiet > $O/phases-mha-2048.txt 2>&1; echo rc=$?; tail -6 $O/phases-mha-2048.txt | cut -c1-200
t profile; DMABENCH=$B OUT=$O/prof STEPS=2 timeout 120 sh scripts/gpu-train-profile.sh mha 2048 8 > $O/prof.log 2>&1; echo rc=$?; sed -n 2,30p $O/prof/profile-train-mha-2048.txt | cut -c1-150
rm -f $O/prof/ncu-*.csv
t paper; P=$OUT/paper; mkdir -p $P; [ -d gpupack/paper ] && cp -r gpupack/paper/. $P/
DEADLINE=$(( S0 + ${PAPER_END:-560} )) DMABENCH=$B sh scripts/run-gpus.sh suites/paper.json $P 0 > $O/paper.log 2>&1; echo rc=$?; tail -8 $O/paper.log
t done
tar czf $OUT/o.tgz -C $OUT o paper
rm -rf $O $P
