#!/bin/sh
# ncu-src-lines.sh: where a kernel's warps wait, by CUDA source line, from Nsight
# Compute's source page with the source beside the SASS (the build's -lineinfo):
#   ncu --import rep.ncu-rep --page source --print-source cuda,sass --csv > rep-src.csv
#   sh scripts/ncu-src-lines.sh rep-src.csv[.gz] [N]
# prints the total of warp-stall samples and the N (default 30) source lines with
# the most: file:line, their share of the samples, the instructions executed
# there, the two stall reasons with the most samples, and the line's text. The
# total counts each instruction once, but an inlined function's instruction sits
# both under its own line and under the line that calls it, so shares of a
# caller and its callee overlap.
# scripts/gpu-kernel-profile.sh writes the CSV (NAME-src.csv.gz) and this table.
set -u
if [ $# -lt 1 ] || [ $# -gt 2 ]; then echo "usage: sh scripts/ncu-src-lines.sh SRC.csv[.gz] [N]" >&2; exit 2; fi
[ -r "$1" ] || { echo "ncu-src-lines: cannot read $1" >&2; exit 1; }
N=${2:-30}
case $N in *[!0-9]* | '') echo "ncu-src-lines: N must be a count of lines, not '$N'" >&2; exit 2 ;; esac
case $1 in *.gz) cat_in() { gzip -dc "$1"; } ;; *) cat_in() { cat "$1"; } ;; esac
cat_in "$1" | awk -v top="$N" '
    # the fields of one record: ncu quotes every field and writes a quote inside
    # one as it is (the source of an asm statement), so fields are split at ","
    function split_csv(line, f,    n) {
        n = split(line, f, /","/)
        sub(/^"/, "", f[1]); sub(/"$/, "", f[n])
        return n
    }
    {
        n = split_csv($0, f)
        if (f[1] == "File Path") { file = f[2]; sub(/.*\//, "", file); next }
        if (f[1] == "Line No") { # the header (one per file): where the counts and each stall reason are
            nr = 0
            for (i = 1; i <= n; i++) {
                if (f[i] == "Warp Stall Sampling (All Samples)" && !smp) smp = i
                if (f[i] == "Instructions Executed" && !ex) ex = i
                if (f[i] ~ /^stall_[a-z_]+$/) { nr++; rcol[nr] = i; rname[nr] = substr(f[i], 7) }
            }
            next
        }
        if (!smp) next
        # a SASS row (no line number, its address): the total counts each address once,
        # since an instruction of inlined code can sit under a line in more than one file
        if (f[1] == "" && f[3] != "-") { if (!(f[3] in seen)) { seen[f[3]] = 1; total += f[smp] + 0 } next }
        # a source line: its number, its text, then "-" where a SASS row has its address
        if (f[1] !~ /^[0-9]+$/ || f[3] != "-") next
        k = file ":" f[1]
        samples[k] += f[smp] + 0; ins[k] += f[ex] + 0
        if (!(k in text)) { t = f[2]; gsub(/^[ \t]+/, "", t); text[k] = substr(t, 1, 60) }
        for (r = 1; r <= nr; r++) why[k, r] += f[rcol[r]] + 0
    }
    END {
        if (!smp) { print "ncu-src-lines: no source page with stall samples in the input" > "/dev/stderr"; exit 1 }
        printf "total %d stall samples\n", total
        for (k in samples) {
            a = 0; b = 0
            for (r = 1; r <= nr; r++) {
                if (why[k, r] > why[k, a]) { b = a; a = r } else if (why[k, r] > why[k, b]) b = r
            }
            rs = a ? rname[a] : "-"; if (b) rs = rs "," rname[b]
            printf "%d\t%-26s %5.1f%% %11d  %-22s %s\n", samples[k], k, total ? 100 * samples[k] / total : 0, ins[k], rs, text[k]
        }
    }' | { IFS= read -r l1 || exit 1; printf '%s\n' "$l1"; sort -t "$(printf '\t')" -k1,1 -n -r | head -"$N" | cut -f2-; }
