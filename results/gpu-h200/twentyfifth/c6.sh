#!/bin/sh
# call 6 (twenty-fifth set): main (n51) profiled inside nsa's training step at 8192 (batch 2, the second step's
# first layer): the selection, the pairs' backward and forward and the combine, each one launch under Nsight
# Compute's full set (details, SASS with stall samples, the opcode mix)
[ -d gpupack/n51 ] || tar xJf gpupack/n51.tar.xz -C gpupack
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=8
B=./gpupack/n51/dmabench
cat README.md docs/*.md > /tmp/bytes.txt
TR="train --config model/configs/gpu-131m-nsa.json --data /tmp/bytes.txt --out /tmp/prof-run --backend cuda --context 8192 --batch-size 2 --steps 2 --log-every 1 --force --quiet"
p() { OUT=$O timeout $1 sh scripts/gpu-kernel-profile.sh $2 $3 $4 $B $TR > $O/kp-$2.log 2>&1; echo "[$(( $(date +%s)-S0 ))s] $2 rc=$?"; head -24 $O/kp-$2.log; tar czf $OUT/o.tgz -C $OUT o; }
p 110 select nsa_select_tc_kernel 12
p 110 pairbwd nsa_slc_pair_bwd_sub_kernel 12
p 110 pairfwd nsa_slc_pair_sub_kernel 12
p 110 combine nsa_slc_pair_combine_kernel 12
echo "[$(( $(date +%s)-S0 ))s] done"
tar czf $OUT/o.tgz -C $OUT o
