#!/bin/sh
# call 8 (sixteenth set): main with b8: the mha training step at 2048, cuBLASLt's first heuristic answer (default) against DMABENCH_GEMM_TUNE=1, three times alternating
O=$OUT/o; mkdir -p $O
NEW=./gpupack/b8/dmabench
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader > $O/gpu.txt
cat README.md docs/*.md > /tmp/bytes.txt
for r in 1 2 3; do for m in def:X=0 tune:DMABENCH_GEMM_TUNE=1; do n=${m%%:*}
  env ${m#*:} timeout 120 $NEW train --config model/configs/gpu-131m-mha.json --data /tmp/bytes.txt --out /tmp/tr-$n --backend cuda --context 2048 --batch-size 8 --steps 40 --log-every 5 --force --quiet > $O/train-$n-$r.log 2>&1
  cp /tmp/tr-$n/train_log.jsonl $O/train-$n-$r.jsonl
  echo "$n $r rc=$? $(grep -v event $O/train-$n-$r.jsonl | grep -o '"tokens_per_s":[0-9]*' | cut -d: -f2 | tr '\n' ' ')"
done; done
tar czf $OUT/o.tgz -C $OUT o
