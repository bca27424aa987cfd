#!/bin/sh
# call 3 (twenty-third set): on merged main (n35-n40 in, 0e47fa4, with the test programs): tests/gpu.sh's model part,
# and at the same time the four racechecks of the sanitize-optin list that the twenty-second set cut at 345 s
[ -d gpupack/merged ] || tar xJf gpupack/merged.tar.xz -C gpupack
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=4
B=./gpupack/merged/dmabench
for o in DMABENCH_DECODE_SEL_SAMPLE=0:dma DMABENCH_CUDA_WGMMA=1:mha,dma DMABENCH_CUDA_WGMMA_BWD=1+DMABENCH_CUDA_BWD_KEYPAR=0:mha,dma DMABENCH_DECODE_FUSED=1:dma; do
  sw=${o%%:*} vs=${o#*:} n=$(echo "${o%%:*}" | tr '=+' '-_')
  (env $(echo "$sw" | tr '+' ' ') timeout 540 compute-sanitizer --tool racecheck --error-exitcode 9 $B verify --backend cuda --variants "$vs" --quiet --out $O/r-$n.json > $O/r-$n.log 2>&1; echo $? > $O/r-$n.rc; t "$n done") &
done
(OMP_NUM_THREADS=8 DMABENCH_GPU=1 DMABENCH_GPU_PART=model DMABENCH=$B DMABENCH_TESTS=./gpupack/merged/tests DMABENCH_GPU_KEEP=$O/model-keep timeout 540 sh tests/gpu.sh > $O/gpu-model.log 2>&1; echo $? > $O/gpu-model.rc; t "model part done: $(grep -c '^ok' $O/gpu-model.log) ok, $(grep -c '^not ok' $O/gpu-model.log) not ok"; tar czf $OUT/o.tgz -C $OUT o) &
wait
for f in $O/r-*.rc; do n=${f%.rc}; echo "$(basename $n): rc=$(cat $f) $(grep 'RACECHECK SUMMARY' $n.log) $(grep '^verify:' $n.log | tail -1)"; done
grep '^not ok' $O/gpu-model.log
grep -E 'agree|gap|within' $O/gpu-model.log | head -20
find $O -name '*.json' -delete; find $O -name '*.jsonl' -delete; find $O -name '*.bin' -delete; find $O -name '*.safetensors' -delete
tar czf $OUT/o.tgz -C $OUT o
