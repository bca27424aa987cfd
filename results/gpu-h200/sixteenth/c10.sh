#!/bin/sh
# call 10 (sixteenth set): where dma's fwd+bwd at 8192 and nsa's at 65536 spend their kernel time (paper shape; scripts/gpu-profile.sh, one warm-up and one timed call, PER=2)
O=$OUT/o; mkdir -p $O
NEW=./gpupack/fin/dmabench
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader > $O/gpu.txt
K="kernels --backend cuda --b 1 --hq 32 --hkv 8 --d 128 --dtype bf16 --mode fwdbwd --warmup 1 --repeats 1 --check-n 0"
OUT=$O PER=2 timeout 150 sh scripts/gpu-profile.sh dma-8192 $NEW $K --variants dma --n 8192 --w 1024 > /dev/null 2>&1; echo "dma rc=$?"; head -24 $O/profile-dma-8192.txt
OUT=$O PER=2 timeout 200 sh scripts/gpu-profile.sh nsa-65536 $NEW $K --variants nsa --n 65536 --w 512 > /dev/null 2>&1; echo "nsa rc=$?"; head -24 $O/profile-nsa-65536.txt
gzip $O/*.csv
tar czf $OUT/o.tgz -C $OUT o
