#!/bin/sh
# call 2: the spans (stats without a wait inside the timed call) against the previous build; paper-shape timings; SDPA
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv > $O/smi.txt
OLD=./gpupack/old/dmabench; NEW=./gpupack/new/dmabench
dec() { # tag bin K z variant
  timeout 60 $2 kernels --backend cuda --b 1 --hq 32 --hkv 8 --d 128 --dtype bf16 --mode decode --w 1024 --warmup 5 --repeats 40 --variants $5 --dma-z $4 --n $3 --out $O/d-$1.json > $O/d-$1.log 2>&1
  echo "$1 rc=$? $(grep -E '^\| (dma|mha)' $O/d-$1.log | cut -d'|' -f2,6,11,12,14,16)"
}
t decode
for r in 1 2; do
  for b in old new; do
    B=$OLD; [ $b = new ] && B=$NEW
    dec $b-rand-$r $B 524288 random dma
    dec $b-clus-$r $B 524288 clustered dma
    dec $b-rise-$r $B 524288 rising dma
    dec $b-rand65k-$r $B 65536 random dma
  done
done
dec new-mha $NEW 524288 random mha
t kernels
K="kernels --backend cuda --b 1 --hq 32 --hkv 8 --d 128 --dtype bf16 --warmup 2 --repeats 5"
for b in old new; do
  B=$OLD; [ $b = new ] && B=$NEW
  timeout 100 $B $K --variants mha,dma --n 8192 --mode fwd,fwdbwd --w 1024 --out $O/k-$b-8192.json > $O/k-$b-8192.log 2>&1; echo "$b rc=$?"; grep -E '^\| (mha|dma)' $O/k-$b-8192.log | cut -d'|' -f2,4,6,9,11,12
  timeout 100 $B $K --variants dma,swa --n 65536 --mode fwd,fwdbwd --w 1024 --out $O/k-$b-65536.json > $O/k-$b-65536.log 2>&1; echo "$b rc=$?"; grep -E '^\| (dma|swa)' $O/k-$b-65536.log | cut -d'|' -f2,4,6,9,11,12
  timeout 100 $B $K --variants nsa --n 8192 --mode fwd,fwdbwd --w 512 --nsa-n 16 --out $O/k-$b-nsa.json > $O/k-$b-nsa.log 2>&1; echo "$b rc=$?"; grep -E '^\| nsa' $O/k-$b-nsa.log | cut -d'|' -f2,4,6,9,11,12
done
t sdpa
timeout 120 python3 scripts/sdpa_anchor.py > $O/sdpa.json 2> $O/sdpa.log; echo "sdpa rc=$?"; cat $O/sdpa.log | tail -12
t done
tar czf $OUT/o.tgz -C $OUT o
