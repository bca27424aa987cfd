#!/bin/sh
# call 5 (twenty-sixth set): whether the GPU/CPU loss agreement of nsa moved with the wide compression kernels:
# test_model_gpu_train three times on main (w3) and twice with DMABENCH_NSA_CMP_WIDE=0, five processes at once
for p in w3; do [ -d gpupack/$p ] || tar xJf gpupack/$p.tar.xz -C gpupack; done
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=3 DMABENCH_GPU=1
for r in a b c; do (timeout 400 ./gpupack/w3/tests/test_model_gpu_train > $O/agree-wide-$r.log 2>&1; echo $? > $O/agree-wide-$r.rc) & done
for r in a b; do (DMABENCH_NSA_CMP_WIDE=0 timeout 400 ./gpupack/w3/tests/test_model_gpu_train > $O/agree-old-$r.log 2>&1; echo $? > $O/agree-old-$r.rc) & done
wait
for f in $O/agree-*.log; do echo "$(basename $f .log) rc=$(cat ${f%.log}.rc) not-ok=$(grep -c '^not ok' $f) $(grep -h '^# .*gpu vs cpu' $f | grep -v checkpoint | tr '\n' ' ')"; done
t done
tar czf $OUT/o.tgz -C $OUT o
