#!/bin/sh
# ncu-sass-ops.sh: a kernel's executed instructions by opcode, from Nsight Compute's
# source page in SASS (the instruction mix behind a kernel's speed: tensor-core
# instructions against the integer and address work around them).
#   ncu --set full -k regex:NAME --launch-count 1 -o rep command...
#   ncu --import rep.ncu-rep --page source --print-source sass --csv > rep-sass.csv
#   sh scripts/ncu-sass-ops.sh rep-sass.csv
# prints the total and, per opcode (predicates and modifiers dropped), the count,
# its share and its share of the warp-stall samples.
set -u
[ $# -eq 1 ] || { echo "usage: sh scripts/ncu-sass-ops.sh SASS.csv" >&2; exit 2; }
awk -F'","' '
    !hdr && /^"Address"/ { for (i = 1; i <= NF; i++) { h = $i; gsub(/"/, "", h); if (h == "Source") src = i;
        if (h == "Instructions Executed") ex = i; if (h == "Warp Stall Sampling (All Samples)") smp = i } hdr = 1; next }
    hdr && src && ex {
        s = $src; gsub(/^[ "]+/, "", s); n = split(s, w, / +/); op = w[1]; if (op ~ /^@/) op = w[2]
        sub(/\..*/, "", op); c = $ex; gsub(/[",]/, "", c); if (c !~ /^[0-9]+$/) next
        st = $smp; gsub(/[",]/, "", st); cnt[op] += c; tot += c; stl[op] += st + 0; stot += st + 0
    }
    END {
        printf "total %d\n", tot
        for (op in cnt) printf "%-10s %12d %5.1f%%  stall-samples %5.1f%%\n", op, cnt[op], 100 * cnt[op] / tot, stot ? 100 * stl[op] / stot : 0
    }' "$1" | { IFS= read -r l1; printf '%s\n' "$l1"; sort -k2,2 -n -r | head -40; }
