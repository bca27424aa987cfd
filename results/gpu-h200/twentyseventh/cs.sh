#!/bin/sh
# the paper suite over the host's GPUs until a deadline, resuming the folder a previous call left (gpupack/paper)
[ -d gpupack/p29a ] || tar xJf gpupack/p29a.tar.xz -C gpupack
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
LIM=${LIM:-552}
nvidia-smi --query-gpu=index,name,clocks.sm,clocks.max.sm,driver_version --format=csv > $O/nvidia-smi.csv 2>&1
nproc >> $O/nvidia-smi.csv
[ -d gpupack/paper ] && cp -r gpupack/paper $O/paper
B=./gpupack/p29a/dmabench
echo "start $(date -u +%H:%M:%S); cells done before: $(grep -c . $O/paper/records.jsonl 2>/dev/null) records"
DMABENCH=$B DEADLINE=$((S0 + LIM)) sh scripts/run-gpus.sh suites/paper.json $O/paper > $O/run-gpus.log 2>&1
echo "run-gpus rc=$? after $(( $(date +%s) - S0 ))s"
cat $O/run-gpus.log
$B run --resume $O/paper --report > /dev/null 2>&1
python3 - $O/paper/records.jsonl <<'PY'
import json,sys,collections
seen={}; 
for l in open(sys.argv[1]):
    try: r=json.loads(l)
    except Exception: continue
    c=r.get('cell'); 
    if c in seen: continue
    seen[c]=(r['task'],r['variant'],r.get('cell_s'))
t=collections.Counter(); n=collections.Counter()
for c,(task,v,s) in seen.items():
    n[task]+=1
    if s: t[task]+=s; t['all']+=s
print("cells done:", dict(n), "total", len(seen), "of 96; cell_s sums (min):", {k: round(x/60,2) for k,x in t.items()})
PY
tar czf $OUT/o.tgz -C $OUT o
echo "end after $(( $(date +%s) - S0 ))s"
