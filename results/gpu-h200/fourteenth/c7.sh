#!/bin/sh
# call 7 (the command line as run, on call 6's warm machine): the verify part's last step, which call 6's time limit cut off
./gpupack/new/dmabench kernels --backend cuda --variants dma --n 2048 --w 1024 --b 1 --hq 8 --hkv 2 --d 128 --dtype bf16 --mode fwd,fwdbwd --dma-z rising --check-n 2048 --warmup 1 --repeats 3 --out $OUT/kr.json > $OUT/kr.log 2>&1; echo rc=$? ok=$(grep -c '"status":[[:space:]]*"ok"' $OUT/kr.json); tail -3 $OUT/kr.log
