#!/bin/sh
# scripts.sh: the profile readers (scripts/ncu-src-lines.sh, scripts/ncu-sass-ops.sh)
# and scripts/kernels-ab.sh (at its end, on the cpu backend)
# on a real Nsight Compute profile kept in results/ (dma's query-tile backward on an
# H200: its source page in SASS, and with the CUDA lines). Their totals must equal
# sums taken here straight from the SASS page, a line whose source holds quotes
# (an asm statement) must be read whole, and bad usage must give one line on stderr
# and a non-zero exit.
P=results/gpu-h200/twentyeighth/call4/dmabwd
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
ok() { echo "ok - scripts/$1"; }
nok() { echo "not ok - scripts/$1: $2"; }

gzip -dc "$P-sass.csv.gz" >"$T/sass.csv" || { nok "profile" "cannot read $P-sass.csv.gz"; exit 0; }
# the SASS page's own sums: stall samples, instructions executed, and the HMMAs'
sums=$(awk -F'","' '/^"Address"/ { for (i = 1; i <= NF; i++) { h = $i; gsub(/"/, "", h);
        if (h == "Warp Stall Sampling (All Samples)") s = i; if (h == "Instructions Executed") e = i } next }
    s && e { n += $e; m += $s; if ($2 ~ /HMMA/) hm += $e } END { printf "%d %d %d", m, n, hm }' "$T/sass.csv")
samples=${sums%% *}
rest=${sums#* }
insts=${rest%% *}
hmma=${rest#* }

# ncu-src-lines.sh: the total counts each instruction once, the table its N lines
sh scripts/ncu-src-lines.sh "$P-src.csv.gz" 5 >"$T/lines" 2>"$T/lines.err"
rc=$?
if [ $rc -eq 0 ] && [ "$(head -1 "$T/lines")" = "total $samples stall samples" ]; then
    ok "src-lines total $samples = the SASS page's samples"
else nok "src-lines total" "exit $rc, '$(head -1 "$T/lines")' against $samples: $(head -c 200 "$T/lines.err")"; fi
n=$(($(wc -l <"$T/lines") - 1))
if [ "$n" -eq 5 ]; then ok "src-lines prints the 5 lines asked for"; else nok "src-lines count" "$n lines, not 5"; fi
# the mma.sync asm statement (quotes in its source, not doubled by ncu) read whole: its
# instructions hold all of the kernel's HMMAs (and the moves of its operands), and its
# text keeps its quotes
l=$(grep '^cuda_mma.cuh:39 ' "$T/lines")
n39=$(echo "$l" | awk '{ print $3 }')
if [ -n "$n39" ] && [ "$n39" -ge "$hmma" ] && echo "$l" | grep -q '"r"(a\[0\])'; then
    ok "src-lines reads the asm line whole ($n39 instructions, $hmma of them HMMAs)"
else nok "src-lines asm line" "'$l' (the SASS page has $hmma HMMAs)"; fi
# shares in falling order
if awk 'NR > 1 { v = $2; sub(/%/, "", v); if (NR > 2 && v + 0 > last + 0) bad = 1; last = v } END { exit bad }' "$T/lines"; then
    ok "src-lines sorted by share"
else nok "src-lines order" "$(tr '\n' '|' <"$T/lines")"; fi
# the same from the uncompressed page
gzip -dc "$P-src.csv.gz" >"$T/src.csv"
sh scripts/ncu-src-lines.sh "$T/src.csv" 5 >"$T/lines2" 2>&1
if cmp -s "$T/lines" "$T/lines2"; then ok "src-lines reads a plain CSV as its .gz"; else nok "src-lines plain" "differs"; fi

# bad usage: one line on stderr, exit 1 (input) or 2 (arguments)
bad() { # NAME WANT-RC args...
    name=$1 want=$2
    shift 2
    sh scripts/ncu-src-lines.sh "$@" >"$T/out" 2>"$T/err"
    rc=$?
    if [ $rc -eq "$want" ] && [ "$(wc -l <"$T/err")" -eq 1 ] && [ ! -s "$T/out" ]; then ok "src-lines $name: exit $rc, $(cat "$T/err")"
    else nok "src-lines $name" "exit $rc (want $want), stderr '$(head -c 200 "$T/err")', stdout $(wc -c <"$T/out") bytes"; fi
}
bad "missing file" 1 "$T/none.csv"
bad "N not a count" 2 "$P-src.csv.gz" x
bad "no arguments" 2
bad "not a source page" 1 README.md

# ncu-sass-ops.sh: its total is the page's instructions, the HMMA row their count
sh scripts/ncu-sass-ops.sh "$T/sass.csv" >"$T/ops" 2>&1
if [ "$(head -1 "$T/ops")" = "total $insts" ] && grep -q "^HMMA  *$hmma " "$T/ops"; then ok "sass-ops total $insts, HMMA $hmma"
else nok "sass-ops" "$(head -3 "$T/ops" | tr '\n' '|') against $insts and $hmma"; fi

# kernels-ab.sh on the cpu backend: two settings alternated over two rounds; every
# run's cells printed, the summary's medians over the rounds with the second
# setting's ratio to the first, taken from the runs' own tables
B=${DMABENCH:-./build/dmabench}
DMABENCH=$B OUT=$T/ab sh scripts/kernels-ab.sh 2 - DMABENCH_ISA=base -- --backend cpu --variants mha,swa --n 64 --w 32 \
    --b 1 --hq 2 --hkv 1 --d 16 --mode fwd --warmup 0 --repeats 3 --check-n 0 >"$T/ab.out" 2>"$T/ab.err"
rc=$?
nr=$(grep -c '^round [12], .* (exit 0): mha fwd N 64 D 16 w - f32 [0-9.]*, swa fwd N 64 D 16 w 32 f32 [0-9.]*$' "$T/ab.out")
if [ $rc -eq 0 ] && [ "$nr" -eq 4 ] && [ "$(wc -l <"$T/ab/ab-medians.txt")" -eq 8 ]; then ok "kernels-ab: 2 rounds x 2 settings x 2 cells"
else nok "kernels-ab runs" "exit $rc, $nr of 4 round lines: $(head -c 200 "$T/ab.err")"; fi
# the summary's mha cell against a median taken here from the runs' rows
want=$(awk -F'\t' '$1 ~ /^mha/ && $3 == 2 { v[++n] = $4 } END { if (v[1] > v[2]) { t = v[1]; v[1] = v[2]; v[2] = t }
    printf "%.4g", (v[1] + v[2]) / 2 }' "$T/ab/ab-medians.txt")
if grep -q "^| mha fwd N 64 D 16 w - f32 | [0-9.e+-]* | $want ([0-9.]*x) |\$" "$T/ab.out"; then ok "kernels-ab summary: median $want and its ratio"
else nok "kernels-ab summary" "no row with $want: $(grep '^| mha' "$T/ab.out")"; fi
# two builds as settings (DMABENCH=PATH, here the same binary twice, one with an
# environment setting beside it): every run's cells, the summary's two columns
DMABENCH=/nonexistent OUT=$T/abx sh scripts/kernels-ab.sh 1 DMABENCH=$B DMABENCH=$B+DMABENCH_ISA=base -- --backend cpu \
    --variants mha --n 64 --b 1 --hq 2 --hkv 1 --d 16 --mode fwd --warmup 0 --repeats 2 --check-n 0 >"$T/abx.out" 2>"$T/abx.err"
rc=$?
nr=$(grep -c '^round 1, DMABENCH=.* (exit 0): mha fwd N 64 D 16 w - f32 [0-9.]*$' "$T/abx.out")
if [ $rc -eq 0 ] && [ "$nr" -eq 2 ] && grep -q "^| mha fwd N 64 D 16 w - f32 | [0-9.e+-]* | [0-9.e+-]* ([0-9.]*x) |\$" "$T/abx.out"
then ok "kernels-ab: two binaries as settings"
else nok "kernels-ab binaries" "exit $rc, $nr of 2 round lines: $(head -c 200 "$T/abx.err")"; fi
# bad usage: one line on stderr, exit 2; a failing run: exit 1, said in its round line
for args in "x - -- --n 64" "2 foo -- --n 64" "2 - --n 64" "1 DMABENCH=/nonexistent/dmabench -- --n 64"; do
    # shellcheck disable=SC2086
    sh scripts/kernels-ab.sh $args >"$T/abb.out" 2>"$T/abb.err"
    rc=$?
    if [ $rc -eq 2 ] && [ "$(wc -l <"$T/abb.err")" -eq 1 ]; then ok "kernels-ab usage '$args': $(cat "$T/abb.err")"
    else nok "kernels-ab usage '$args'" "exit $rc, stderr '$(head -c 200 "$T/abb.err")'"; fi
done
DMABENCH=$B OUT=$T/abf sh scripts/kernels-ab.sh 1 - -- --backend cpu --variants nosuch >"$T/abf.out" 2>&1
rc=$?
if [ $rc -eq 1 ] && grep -q '^round 1, - (exit 2): no cells' "$T/abf.out"; then ok "kernels-ab: a failing run gives exit 1"
else nok "kernels-ab failing run" "exit $rc: $(head -2 "$T/abf.out" | tr '\n' ' ')"; fi
