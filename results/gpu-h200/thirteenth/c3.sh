#!/bin/sh
# call 3: the timing hold (DMABENCH_TIME_HOLD) with the spans, against no hold and the previous build
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
  dec hold-rand-$r $NEW 524288 random dma
  dec nohold-rand-$r $NEW 524288 random dma DMABENCH_TIME_HOLD=0
  dec hold-rand65k-$r $NEW 65536 random dma
  dec nohold-rand65k-$r $NEW 65536 random dma DMABENCH_TIME_HOLD=0
done
dec hold-clus $NEW 524288 clustered dma
dec hold-rise $NEW 524288 rising dma
dec hold-f0 $NEW 524288 random dma DMABENCH_DECODE_FUSED=0
dec hold-mha $NEW 524288 random mha
dec nohold-mha $NEW 524288 random mha DMABENCH_TIME_HOLD=0
dec hold-mha65k $NEW 65536 random mha
dec hold-swa $NEW 524288 random swa
t kernels
K="kernels --backend cuda --b 1 --hq 32 --hkv 8 --d 128 --dtype bf16 --warmup 2 --repeats 5"
for m in hold nohold; do
  E=X=0; [ $m = nohold ] && E=DMABENCH_TIME_HOLD=0
  env $E timeout 100 $NEW $K --variants mha,dma,swa --n 8192 --mode fwd,fwdbwd --w 1024 --out $O/k-$m-8192.json > $O/k-$m-8192.log 2>&1; echo "$m rc=$?"; grep -E '^\| (mha|dma|swa)' $O/k-$m-8192.log | cut -d'|' -f2,4,6,9,11,12
  env $E timeout 100 $NEW $K --variants nsa --n 8192 --mode fwd,fwdbwd --w 512 --nsa-n 16 --out $O/k-$m-nsa.json > $O/k-$m-nsa.log 2>&1; echo "$m rc=$?"; grep -E '^\| nsa' $O/k-$m-nsa.log | cut -d'|' -f2,4,6,9,11,12
done
timeout 100 $NEW $K --variants dma,swa --n 65536 --mode fwd,fwdbwd --w 1024 --out $O/k-hold-65536.json > $O/k-hold-65536.log 2>&1; echo "hold rc=$?"; grep -E '^\| (dma|swa)' $O/k-hold-65536.log | cut -d'|' -f2,4,6,9,11,12
t done
tar czf $OUT/o.tgz -C $OUT o
