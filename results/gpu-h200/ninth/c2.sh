#!/bin/sh
# call 2: nsa at 65536 under Nsight Compute (fwd+bwd, one call), then the paper
# suite on one GPU until the deadline (resumable: the folder comes back)
B=./gpubuild/dmabench; O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive
t profile-65536; OUT=$O/prof timeout 120 sh scripts/gpu-profile.sh nsa-fwdbwd-65536 $B kernels --backend cuda --variants nsa --n 65536 --b 1 --hq 32 --hkv 8 --d 128 --w 512 --dtype bf16 --mode fwdbwd --check-n 0 --warmup 0 --repeats 1 > $O/prof.log 2>&1; echo rc=$?; head -30 $O/prof/profile-nsa-fwdbwd-65536.txt
rm -f $O/prof/ncu-*.csv
P=$OUT/paper; mkdir -p $P; [ -d gpupack/paper ] && cp -r gpupack/paper/. $P/
t paper; DEADLINE=$(( S0 + ${PAPER_S:-520} )) DMABENCH=$B sh scripts/run-gpus.sh suites/paper.json $P 0 > $O/paper.log 2>&1; echo rc=$?; tail -25 $O/paper.log
t done
tar czf $OUT/o.tgz -C $OUT o paper
rm -rf $O $P
