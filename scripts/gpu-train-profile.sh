#!/bin/sh
# gpu-train-profile.sh: where a GPU training step's time goes. Runs a few steps of
# one of the throughput configs (model/configs/gpu-131m-*.json) under Nsight
# Compute, with only the kernel duration metric (clocks left as they are), and
# sums the kernels' durations by name, largest first, per step.
#   DMABENCH=./build/dmabench OUT=results/gpu-profile sh scripts/gpu-train-profile.sh [variant] [context] [batch]
set -u
B=${DMABENCH:-./build/dmabench}
OUT=${OUT:-results/gpu-profile}
V=${1:-mha} CTX=${2:-2048} BS=${3:-8} STEPS=${STEPS:-3}
mkdir -p "$OUT"
DATA=$OUT/bytes.txt
cat README.md docs/*.md >"$DATA"
command -v ncu >/dev/null 2>&1 || { echo "gpu-train-profile: ncu (Nsight Compute) not found" >&2; exit 1; }
ncu --clock-control none --metrics gpu__time_duration.sum --csv --page raw \
    "$B" train --config "model/configs/gpu-131m-$V.json" --data "$DATA" --out /tmp/gpu-profile-$V --backend cuda \
    --context "$CTX" --batch-size "$BS" --steps "$STEPS" --log-every 1 --force --quiet >"$OUT/ncu-$V-$CTX.csv" 2>"$OUT/ncu-$V-$CTX.log"
rm -f "$DATA"
# the CSV (after ncu's own ==PROF== lines): a header, a units row, then one row per
# launch with "Kernel Name" and "gpu__time_duration.sum" (ns)
awk -v steps="$STEPS" -F'","' '
    !kn && /^"ID"/ { for (i = 1; i <= NF; i++) { h = $i; gsub(/"/, "", h); if (h == "Kernel Name") kn = i; if (h == "gpu__time_duration.sum") td = i } next }
    kn && td && $td ~ /^[0-9.,]+"?$/ { t = $td; gsub(/[",]/, "", t); n = $kn; sub(/\(.*/, "", n); sum[n] += t; cnt[n]++; tot += t; nl++ }
    END {
        printf "total kernel time %.2f ms per step over %d steps (%d launches per step)\n", tot / 1e6 / steps, steps, nl / steps
        for (n in sum) printf "%10.3f ms %6.1f%% %6d  %s\n", sum[n] / 1e6 / steps, 100 * sum[n] / tot, cnt[n] / steps, n
    }' "$OUT/ncu-$V-$CTX.csv" | sort -k1,1 -g -r | head -40 | tee "$OUT/profile-$V-$CTX.txt"
