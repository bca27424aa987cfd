#!/bin/sh
# call 2 (l1 now main's code): the paper-shape kernels (mha, dma 8192; dma, swa 65536; nsa 65536) and PyTorch SDPA; then tests/gpu.sh's model and sanitize parts
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv > $O/smi.txt
NEW=./gpupack/new/dmabench
K="kernels --backend cuda --b 1 --hq 32 --hkv 8 --d 128 --dtype bf16 --warmup 2 --repeats 5"
t kernels
timeout 100 $NEW $K --variants mha,dma --n 8192 --mode fwd,fwdbwd --w 1024 --out $O/k-8192.json > $O/k-8192.log 2>&1; echo "rc=$?"; grep -E '^\| (mha|dma)' $O/k-8192.log | cut -d'|' -f2,4,6,9,11,12
timeout 100 $NEW $K --variants dma,swa --n 65536 --mode fwd,fwdbwd --w 1024 --out $O/k-65536.json > $O/k-65536.log 2>&1; echo "rc=$?"; grep -E '^\| (dma|swa)' $O/k-65536.log | cut -d'|' -f2,4,6,9,11,12
timeout 100 $NEW kernels --backend cuda --variants nsa --n 65536 --b 1 --hq 32 --hkv 8 --d 128 --w 512 --dtype bf16 --mode fwd,fwdbwd --check-n 0 --warmup 1 --repeats 3 --out $O/k-nsa-65536.json > $O/k-nsa-65536.log 2>&1; echo "rc=$?"; grep -E '^\| nsa' $O/k-nsa-65536.log | cut -d'|' -f2,4,6,9,11,12
timeout 60 $NEW $K --variants mha --n 16384 --mode fwd --out $O/k-mha16k.json > $O/k-mha16k.log 2>&1; echo "rc=$?"; grep -E '^\| mha' $O/k-mha16k.log | cut -d'|' -f2,4,6,9,11,12
t sdpa
timeout 120 python3 scripts/sdpa_anchor.py > $O/sdpa.json 2> $O/sdpa.log; echo "sdpa rc=$?"; tail -12 $O/sdpa.log
t checks
(DMABENCH_GPU=1 DMABENCH=$NEW DMABENCH_TESTS=./gpupack/new/tests DMABENCH_GPU_PART=model DMABENCH_GPU_JOBS=6 DMABENCH_GPU_KEEP=$O/gpu-model timeout 330 sh tests/gpu.sh > $O/gpu-model.log 2>&1; echo $? > $O/gpu-model.rc) &
(DMABENCH_GPU=1 DMABENCH=$NEW DMABENCH_TESTS=./gpupack/new/tests DMABENCH_GPU_PART=sanitize DMABENCH_GPU_JOBS=6 DMABENCH_GPU_KEEP=$O/gpu-san timeout 330 sh tests/gpu.sh > $O/gpu-san.log 2>&1; echo $? > $O/gpu-san.rc) &
wait
for p in model san; do echo "gpu.sh $p rc=$(cat $O/gpu-$p.rc) ok=$(grep -c '^ok' $O/gpu-$p.log) notok=$(grep -c '^not ok' $O/gpu-$p.log)"; grep '^not ok' $O/gpu-$p.log | head -5; tail -2 $O/gpu-$p.log; done
t done
find $O -name '*.json' -size +300k -delete 2>/dev/null
tar czf $OUT/o.tgz -C $OUT o
