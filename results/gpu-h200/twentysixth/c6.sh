#!/bin/sh
# call 6 (twenty-sixth set): one launch each under Nsight Compute's full set inside nsa's training step on main (w3),
# with the source page by CUDA line (scripts/gpu-kernel-profile.sh): the pairs' backward and forward (where the
# rows' gather stretch maps to source lines) and the compression's rows backward in wide tiles
for p in w3; do [ -d gpupack/$p ] || tar xJf gpupack/$p.tar.xz -C gpupack; done
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=8
B=./gpupack/w3/dmabench
cat README.md docs/*.md > /tmp/bytes.txt
TR="train --config model/configs/gpu-131m-nsa.json --data /tmp/bytes.txt --out /tmp/prof-run --backend cuda --context 8192 --batch-size 2 --steps 2 --log-every 1 --force --quiet"
p() { OUT=$O timeout $1 sh scripts/gpu-kernel-profile.sh $2 $3 $4 $B $TR > $O/kp-$2.log 2>&1; echo "[$(( $(date +%s)-S0 ))s] $2 rc=$?"; head -24 $O/kp-$2.log; tar czf $OUT/o.tgz -C $OUT o; }
p 110 pairbwd nsa_slc_pair_bwd_sub_kernel 12
p 110 pairfwd nsa_slc_pair_sub_kernel 12
p 90 cmprows nsa_cmp_bwd_rows_wide_kernel 24
ls -la $O
echo "[$(( $(date +%s)-S0 ))s] done"
tar czf $OUT/o.tgz -C $OUT o
