#!/bin/sh
# gpu-kernel-profile.sh: one kernel launch under Nsight Compute's full set, with
# per-instruction counts and stall samples: what limits that kernel, as against
# gpu-profile.sh's durations of every launch. Skips SKIP launches of the kernels
# whose names match REGEX, profiles the next one, and writes to $OUT:
#   NAME-details.txt  the report's details page (duration, occupancy, pipes, stalls)
#   NAME-ops.txt      the executed instructions by opcode (scripts/ncu-sass-ops.sh)
#   NAME-lines.txt    the stall samples by CUDA source line (scripts/ncu-src-lines.sh)
#   NAME-sass.csv.gz  the source page in SASS, one row per instruction
#   NAME-src.csv.gz   the same with the CUDA source lines, where ncu prints them
# and prints the top of NAME-ops.txt and the details' main lines. Clocks are left
# as they are (--clock-control none), as in the timed runs.
#   OUT=DIR sh scripts/gpu-kernel-profile.sh NAME REGEX SKIP command [args...]
# e.g. the backward at the model's shape:
#   OUT=prof sh scripts/gpu-kernel-profile.sh bwd bwd_main_kernel 1 ./build/dmabench kernels \
#       --backend cuda --variants mha --n 2048 --b 8 --hq 6 --hkv 3 --d 128 --mode fwdbwd \
#       --warmup 1 --repeats 1 --check-n 0
set -u
[ $# -ge 4 ] || { echo "usage: OUT=DIR sh scripts/gpu-kernel-profile.sh NAME REGEX SKIP command [args...]" >&2; exit 2; }
command -v ncu >/dev/null 2>&1 || { echo "gpu-kernel-profile: ncu (Nsight Compute) not found" >&2; exit 1; }
OUT=${OUT:-results/gpu-profile}
NAME=$1 REGEX=$2 SKIP=$3
shift 3
case $SKIP in *[!0-9]* | '') echo "gpu-kernel-profile: SKIP must be a count of launches, not '$SKIP'" >&2; exit 2 ;; esac
mkdir -p "$OUT"
REP=$OUT/$NAME
ncu --clock-control none --set full --import-source yes -k "regex:$REGEX" --launch-skip "$SKIP" --launch-count 1 \
    -o "$REP" "$@" >"$OUT/ncu-$NAME.log" 2>&1
rc=$?
if [ ! -f "$REP.ncu-rep" ]; then
    echo "gpu-kernel-profile: no report (ncu exit $rc; no launch of '$REGEX' after $SKIP skipped?): see $OUT/ncu-$NAME.log" >&2
    exit 1
fi
ncu --import "$REP.ncu-rep" --page source --print-source sass --csv >"$REP-sass.csv" 2>/dev/null
# the same page with each instruction's CUDA source line (the build's -lineinfo), where
# this ncu prints it; an empty file (an older ncu) is removed
ncu --import "$REP.ncu-rep" --page source --print-source cuda,sass --csv >"$REP-src.csv" 2>/dev/null || true
if [ -s "$REP-src.csv" ]; then
    sh scripts/ncu-src-lines.sh "$REP-src.csv" 40 >"$REP-lines.txt" 2>&1
    gzip -f "$REP-src.csv"
else rm -f "$REP-src.csv"; fi
ncu --import "$REP.ncu-rep" --page details >"$REP-details.txt" 2>/dev/null
sh scripts/ncu-sass-ops.sh "$REP-sass.csv" >"$REP-ops.txt" 2>&1
echo "$NAME ($REGEX, launch $((SKIP + 1))): ncu exit $rc"
head -16 "$REP-ops.txt"
grep -E 'Duration|Registers Per Thread|Achieved Occupancy|Issue Slots Busy|Warp Cycles Per Issued|Executed Ipc Active' \
    "$REP-details.txt" | head -6
gzip -f "$REP-sass.csv"
rm -f "$REP.ncu-rep" # large; the three files above hold what the reading needs
exit $rc
