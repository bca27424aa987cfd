#!/bin/sh
# call 5: the committed code (the spans; the fused kernel as before): verify, the sweep's select_ms, decode timings, the model part
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv > $O/smi.txt
OLD=./gpupack/old/dmabench; NEW=./gpupack/new/dmabench
t start
(DMABENCH_GPU=1 DMABENCH=$NEW DMABENCH_TESTS=./gpupack/new/tests DMABENCH_GPU_PART=model DMABENCH_GPU_KEEP=$O/gpu-model timeout 330 sh tests/gpu.sh > $O/gpu-model.log 2>&1; echo $? > $O/gpu-model.rc) &
for dt in bf16 f16; do (OMP_NUM_THREADS=4 timeout 200 $NEW verify --backend cuda --dtype $dt --quiet --out $O/v-$dt.json > $O/v-$dt.log 2>&1; echo $? > $O/v-$dt.rc) & done
(DMABENCH_DECODE_FUSED=0 OMP_NUM_THREADS=4 timeout 200 $NEW verify --backend cuda --dtype bf16 --variants dma --quiet --out $O/v-f0.json > $O/v-f0.log 2>&1; echo $? > $O/v-f0.rc) &
sleep 1
timeout 100 $NEW kernels --backend cuda --variants mha,swa,dma --n 1024,4096 --w 256 --b 1 --hq 8 --hkv 2 --d 128 --dtype bf16 --mode fwd,fwdbwd,decode --warmup 1 --repeats 3 --out $O/k.json > $O/k.log 2>&1; echo "sweep rc=$? ok=$(grep -c '"status":[[:space:]]*"ok"' $O/k.json)"
ns=$(grep '"variant":"dma"' "$O/k.json.jsonl" | grep '"select_ms":{"median":' | grep -vc '"select_ms":{"median":0[,}]'); echo "dma cells with select_ms > 0: $ns"
wait
for n in v-bf16 v-f16 v-f0; do echo "$n rc=$(cat $O/$n.rc) $(grep '^verify:' $O/$n.log | tail -1)"; done
echo "gpu.sh model rc=$(cat $O/gpu-model.rc) ok=$(grep -c '^ok' $O/gpu-model.log) notok=$(grep -c '^not ok' $O/gpu-model.log)"; grep '^not ok' $O/gpu-model.log | cut -c1-300
t decode
dec() { # tag bin K z
  timeout 60 $2 kernels --backend cuda --b 1 --hq 32 --hkv 8 --d 128 --dtype bf16 --mode decode --w 1024 --warmup 5 --repeats 40 --variants dma --dma-z $4 --n $3 --out $O/d-$1.json > $O/d-$1.log 2>&1
  echo "$1 rc=$? $(grep -E '^\| dma' $O/d-$1.log | cut -d'|' -f2,6,11,12,14,16)"
}
for r in 1 2; do
  dec old-rand-$r $OLD 524288 random; dec new-rand-$r $NEW 524288 random
  dec old-rand65k-$r $OLD 65536 random; dec new-rand65k-$r $NEW 65536 random
done
dec new-clus $NEW 524288 clustered; dec new-rise $NEW 524288 rising
t done
tar czf $OUT/o.tgz -C $OUT o
