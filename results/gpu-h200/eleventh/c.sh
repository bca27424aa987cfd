#!/bin/sh
B=./gpubuild/dmabench; O=$OUT/o; mkdir -p $O; S0=$(date +%s)
export OMP_WAIT_POLICY=passive
P=$OUT/paper; mkdir -p $P; cp -r gpupack/paper/. $P/
DEADLINE=$(( S0 + ${PAPER_END:-560} )) DMABENCH=$B sh scripts/run-gpus.sh suites/paper.json $P 0 > $O/paper.log 2>&1; echo rc=$?; tail -8 $O/paper.log
tar czf $OUT/o.tgz -C $OUT o paper
