#!/bin/sh
# gpu-train-bench.sh: GPU training throughput of the model of the anchor
# (../shared/ANCHORS.md): Doge with 12 layers, hidden 768, 6 heads, 3 kv heads,
# head dim 128, vocab 32768, tied (131M parameters; model/configs/gpu-131m-*.json),
# bf16 compute, AdamW. mha at context 2048 (batch 8), and mha, dma and nsa at
# context 8192 (batch 2, the same tokens per step). Prints, per run, the
# tokens/s of the last logged steps (the set-up excluded), model TFLOP/s and MFU
# against 989 TFLOP/s (dense bf16, H100/H200), the same for the median of the
# logged intervals after the first (which holds the set-up and the GEMMs' tuning;
# single intervals vary by a few percent), and the train log's end line; the
# same lines go to $OUT/summary.txt.
#   DMABENCH=./build/dmabench OUT=results/gpu-train sh scripts/gpu-train-bench.sh
#   RUNS="nsa:8192:2 mha:8192:2" ... (variant:context:batch) runs only those.
set -u
B=${DMABENCH:-./build/dmabench}
OUT=${OUT:-results/gpu-train}
STEPS=${STEPS:-30}
mkdir -p "$OUT"
DATA=$OUT/bytes.txt
cat README.md docs/*.md >"$DATA"
mfu() { # label tokens/s flops/token: the line of one throughput
    awk -v l="$1" -v t="$2" -v f="$3" 'BEGIN {
        printf "%s: %.0f tokens/s, %.1f model TFLOP/s, MFU %.1f%%\n", l, t, t * f / 1e12, 100 * t * f / 989e12 }'
}
run() { # variant context batch
    v=$1 ctx=$2 bs=$3 d=/tmp/gpu-train-$1-$2
    timeout 300 "$B" train --config "model/configs/gpu-131m-$v.json" --data "$DATA" --out "$d" --backend cuda \
        --context "$ctx" --batch-size "$bs" --steps "$STEPS" --log-every 5 --force --quiet >"$OUT/train-$v-$ctx.log" 2>&1
    rc=$?
    cp "$d/train_log.jsonl" "$OUT/train-$v-$ctx.jsonl" 2>/dev/null
    last=$(grep '"tokens_per_s"' "$d/train_log.jsonl" 2>/dev/null | grep -v '"event"' | tail -1)
    tps=$(echo "$last" | sed -n 's/.*"tokens_per_s":\([0-9.e+-]*\).*/\1/p')
    fpt=$(grep '"event":"end"' "$d/train_log.jsonl" 2>/dev/null | sed -n 's/.*"model_flops_per_token":\([0-9.e+-]*\).*/\1/p')
    if [ $rc -ne 0 ] || [ -z "$tps" ] || [ -z "$fpt" ]; then
        echo "$v context $ctx batch $bs: exit $rc: $(tail -2 "$OUT/train-$v-$ctx.log" | tr '\n' ' ')"
        return
    fi
    mfu "$v context $ctx batch $bs" "$tps" "$fpt"
    med=$(grep '"tokens_per_s"' "$d/train_log.jsonl" | grep -v '"event"' | sed -n '2,$s/.*"tokens_per_s":\([0-9.e+-]*\).*/\1/p' |
        sort -g | awk '{a[NR] = $1} END {if (NR) print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}')
    [ -n "$med" ] && mfu "  median of the logged intervals after the first" "$med" "$fpt"
    grep '"event":"end"' "$d/train_log.jsonl" | tail -1
}
# everything printed also goes to $OUT/summary.txt, beside the runs' logs
{
    nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv,noheader
    # RUNS: which runs, as variant:context:batch (default: the four above)
    for r in ${RUNS:-mha:2048:8 mha:8192:2 dma:8192:2 nsa:8192:2}; do
        v=${r%%:*} rest=${r#*:}
        run "$v" "${rest%%:*}" "${rest#*:}"
    done
} 2>&1 | tee "$OUT/summary.txt"
