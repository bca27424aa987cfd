#!/bin/sh
# call 7: timings at the paper shape after g1/g4 (8-wide convert, nsa combine and gate dout) and t9; training
B=./gpubuild/dmabench; O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv > $O/nvidia-smi.csv
K="$B kernels --backend cuda --b 1 --hq 32 --hkv 8 --d 128 --dtype bf16 --warmup 2 --repeats 5"
t kernels
timeout 100 $K --variants mha,dma --n 8192 --mode fwd,fwdbwd --w 1024 --out $O/k-8192.json > $O/k-8192.log 2>&1; echo rc=$?; grep -E '^\| (mha|dma|nsa)' $O/k-8192.log | cut -d'|' -f2,4,6,9,11,12
timeout 100 $K --variants dma --n 65536 --mode fwd,fwdbwd --w 1024 --out $O/k-dma-65536.json > $O/k-dma-65536.log 2>&1; echo rc=$?; grep -E '^\| dma' $O/k-dma-65536.log | cut -d'|' -f2,4,6,9,11,12
timeout 150 $K --variants nsa --n 8192,65536 --mode fwd,fwdbwd --w 512 --nsa-n 16 --out $O/k-nsa.json > $O/k-nsa.log 2>&1; echo rc=$?; grep -E '^\| nsa' $O/k-nsa.log | cut -d'|' -f2,4,6,9,11,12
t train
cat README.md docs/*.md > /tmp/bytes.txt; mkdir -p $O/train
tr() { timeout 100 $B train --config model/configs/gpu-131m-$1.json --data /tmp/bytes.txt --out /tmp/tr-$1 --backend cuda --context $2 --batch-size $3 --steps 30 --log-every 5 --force --quiet > $O/train/train-$1-$2.log 2>&1; echo "$1 $2 rc=$?"; cp /tmp/tr-$1/train_log.jsonl $O/train/train-$1-$2.jsonl; grep '"tokens_per_s"' /tmp/tr-$1/train_log.jsonl | grep -v event | tail -1 | cut -c1-170; }
tr mha 2048 8; tr dma 8192 2
t done
tar czf $OUT/o.tgz -C $OUT o
