#!/bin/sh
# call 7 (twenty-first set): tests/test_model_gpu_train.c with dma's checkpoint checks on its runs without
# selection (main at 3b83679 plus the test's change), three times
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
for n in 1 2 3; do
  DMABENCH_GPU=1 timeout 100 ./gpupack/tm/test_model_gpu_train > $O/tmgt-$n.log 2>&1
  echo "[$(( $(date +%s)-S0 ))s] run $n rc=$? ok $(grep -c '^ok' $O/tmgt-$n.log) notok $(grep -c '^not ok' $O/tmgt-$n.log) | $(grep -E '^# [a-z ()]* checkpoint' $O/tmgt-$n.log | tr '\n' ' ')"
  grep '^not ok' $O/tmgt-$n.log | head -3
done
tar czf $OUT/o.tgz -C $OUT o
