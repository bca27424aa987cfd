#!/bin/sh
# call 4: dma decode with the candidates' rows prefetched during the select, against the previous build; tests/gpu.sh's verify part
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv > $O/smi.txt
OLD=./gpupack/old/dmabench; NEW=./gpupack/new/dmabench
dec() { # tag bin K z variant [env]
  tag=$1 b=$2 k=$3 z=$4 v=$5; shift 5
  env "$@" timeout 60 $b kernels --backend cuda --b 1 --hq 32 --hkv 8 --d 128 --dtype bf16 --mode decode --w 1024 --warmup 5 --repeats 40 --variants $v --dma-z $z --n $k --out $O/d-$tag.json > $O/d-$tag.log 2>&1
  echo "$tag rc=$? $(grep -E '^\| (dma|mha|swa)' $O/d-$tag.log | cut -d'|' -f2,6,11,12,14,16)"
}
t decode
for r in 1 2; do
  dec old-rand-$r $OLD 524288 random dma
  dec new-rand-$r $NEW 524288 random dma
  dec old-clus-$r $OLD 524288 clustered dma
  dec new-clus-$r $NEW 524288 clustered dma
  dec old-rise-$r $OLD 524288 rising dma
  dec new-rise-$r $NEW 524288 rising dma
  dec new-rand65k-$r $NEW 65536 random dma
done
t verify
DMABENCH_GPU=1 DMABENCH=$NEW DMABENCH_GPU_PART=verify DMABENCH_GPU_JOBS=10 DMABENCH_GPU_KEEP=$O/gpu-verify timeout 400 sh tests/gpu.sh > $O/gpu-verify.log 2>&1; echo "gpu.sh verify rc=$?"
grep -c '^ok' $O/gpu-verify.log; grep '^not ok' $O/gpu-verify.log | cut -c1-300
t done
tar czf $OUT/o.tgz -C $OUT o
