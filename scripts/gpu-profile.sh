#!/bin/sh
# gpu-profile.sh: where a command's GPU time goes. Runs the command under Nsight
# Compute with only the kernel-duration metric (clocks left as they are) and sums
# the kernels' durations by name, largest first, divided by PER (default 1: e.g.
# the number of training steps or timed calls the command ran).
#   OUT=results/gpu-profile PER=3 sh scripts/gpu-profile.sh NAME command [args...]
# writes $OUT/ncu-NAME.csv (every launch) and $OUT/profile-NAME.txt (the sums).
set -u
[ $# -ge 2 ] || { echo "usage: OUT=DIR [PER=N] sh scripts/gpu-profile.sh NAME command [args...]" >&2; exit 2; }
OUT=${OUT:-results/gpu-profile}
PER=${PER:-1}
NAME=$1
shift
command -v ncu >/dev/null 2>&1 || { echo "gpu-profile: ncu (Nsight Compute) not found" >&2; exit 1; }
mkdir -p "$OUT"
ncu --clock-control none --metrics gpu__time_duration.sum --csv --page raw "$@" >"$OUT/ncu-$NAME.csv" 2>"$OUT/ncu-$NAME.log"
rc=$?
# the CSV (after ncu's own ==PROF== lines and the command's output): a header, a
# units row, then one row per launch with "Kernel Name" and "gpu__time_duration.sum" (ns)
awk -v per="$PER" -v cmd="$*" -F'","' '
    !kn && /^"ID"/ { for (i = 1; i <= NF; i++) { h = $i; gsub(/"/, "", h); if (h == "Kernel Name") kn = i; if (h == "gpu__time_duration.sum") td = i } next }
    kn && td && $td ~ /^[0-9.,]+"?$/ { t = $td; gsub(/[",]/, "", t); n = $kn; sub(/\(.*/, "", n); sum[n] += t; cnt[n]++; tot += t; nl++ }
    END {
        printf "%s\nkernel time %.3f ms in %d launches, per 1/%d of the run\n", cmd, tot / 1e6 / per, nl / per, per
        for (n in sum) printf "%10.4f ms %6.1f%% %7.1f  %s\n", sum[n] / 1e6 / per, 100 * sum[n] / tot, cnt[n] / per, n
    }' "$OUT/ncu-$NAME.csv" | { IFS= read -r l1; IFS= read -r l2; printf '%s\n%s\n' "$l1" "$l2"; sort -k1,1 -g -r | head -40; } |
    tee "$OUT/profile-$NAME.txt"
exit $rc
