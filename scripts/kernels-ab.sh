#!/bin/sh
# kernels-ab.sh: kernel versions chosen in the environment, timed against each other
# in alternation (R rounds of A, B, ... over the same `dmabench kernels` cells, each
# run its own process, so that a drift of the card's clocks falls on all of them).
# Prints every run's medians, then per cell the median over the rounds of each
# setting and its ratio to the first setting's. Each run's report goes to
# $OUT/ab-R-S.json (round R, setting S, from 1).
#   DMABENCH=./build/dmabench OUT=DIR sh scripts/kernels-ab.sh ROUNDS SETTING... -- KERNELS-ARGS...
# A SETTING is "-" (the environment as it is) or VAR=VALUE, several joined by "+":
#   sh scripts/kernels-ab.sh 2 - DMABENCH_CUDA_FWD_WS=1 DMABENCH_CUDA_BWD_WG_REDUCER=0 -- --backend cuda \
#       --variants dma --n 8192 --w 1024 --b 1 --hq 32 --hkv 8 --d 128 --mode fwd,fwdbwd --check-n 0
# DMABENCH=PATH in a setting runs that binary for it instead of $DMABENCH's, so that
# two builds are timed against each other the same way:
#   sh scripts/kernels-ab.sh 3 DMABENCH=old/dmabench DMABENCH=new/dmabench -- --backend cuda ...
set -u
B=${DMABENCH:-./build/dmabench}
OUT=${OUT:-results/kernels-ab}
usage() { echo "usage: [DMABENCH=...] [OUT=DIR] sh scripts/kernels-ab.sh ROUNDS SETTING... -- KERNELS-ARGS..." >&2; exit 2; }
[ $# -ge 3 ] || usage
R=$1
shift
case $R in '' | *[!0-9]*) echo "kernels-ab: ROUNDS must be a count, not '$R'" >&2; exit 2 ;; esac
[ "$R" -ge 1 ] || { echo "kernels-ab: ROUNDS must be at least 1" >&2; exit 2; }
SETS=""
NS=0
while [ $# -gt 0 ] && [ "$1" != -- ]; do
    case $1 in
    -) ;;
    *=*)
        for kv in $(echo "$1" | tr '+' ' '); do
            case $kv in
            DMABENCH=*)
                [ -x "${kv#DMABENCH=}" ] && [ -f "${kv#DMABENCH=}" ] ||
                    { echo "kernels-ab: setting '$1': no executable '${kv#DMABENCH=}'" >&2; exit 2; } ;;
            esac
        done ;;
    *) echo "kernels-ab: setting '$1' is neither '-' nor VAR=VALUE[+VAR=VALUE...]" >&2; exit 2 ;;
    esac
    SETS="$SETS $1"
    NS=$((NS + 1))
    shift
done
[ $# -gt 0 ] || { echo "kernels-ab: no '--' before the kernels arguments" >&2; exit 2; }
shift
[ "$NS" -ge 1 ] || usage
mkdir -p "$OUT" || exit 1
TAB=$OUT/ab-medians.txt
: >"$TAB"
rc=0
r=1
while [ $r -le "$R" ]; do
    s=1
    for set in $SETS; do
        envs="" bin=$B
        if [ "$set" != - ]; then
            for kv in $(echo "$set" | tr '+' ' '); do
                case $kv in DMABENCH=*) bin=${kv#DMABENCH=} ;; *) envs="$envs $kv" ;; esac
            done
        fi
        # shellcheck disable=SC2086
        env $envs "$bin" kernels "$@" --out "$OUT/ab-$r-$s.json" >"$OUT/ab-$r-$s.log" 2>&1
        k=$?
        [ $k -eq 0 ] || rc=1
        # the table's rows: variant | backend | mode | B | N | Hq/Hkv | D | w | dtype | median ms | ...
        cells=$(grep -E '^\| [a-z]+ \| ' "$OUT/ab-$r-$s.log" | grep -v '^| variant ' |
            awk -F'|' -v r=$r -v s=$s -v f="$TAB" '{
                for (i = 2; i <= 11; i++) gsub(/^ +| +$/, "", $i)
                c = $2 " " $4 " N " $6 " D " $8 " w " $9 " " $10
                printf "%s\t%d\t%d\t%s\n", c, r, s, $11 >> f
                printf "%s%s %s", (n++ ? ", " : ""), c, $11 }')
        echo "round $r, $set (exit $k): ${cells:-no cells: see $OUT/ab-$r-$s.log}"
        s=$((s + 1))
    done
    r=$((r + 1))
done
echo
awk -F'\t' -v sets="$SETS" '
    BEGIN { ns = split(sets, name, " ") }
    { key[$1] = 1; if (!($1 in first)) { first[$1] = ++nc; order[nc] = $1 }
      n = ++cnt[$1, $3]; v[$1, $3, n] = $4 }
    function med(c, s,    n, i, j, t, a) {
        n = cnt[c, s]; if (!n) return ""
        for (i = 1; i <= n; i++) a[i] = v[c, s, i] + 0
        for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
        return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
    END {
        printf "| cell |"; for (s = 1; s <= ns; s++) printf " %s |", name[s]; printf "\n|---|"
        for (s = 1; s <= ns; s++) printf "---|"; printf "\n"
        for (k = 1; k <= nc; k++) {
            c = order[k]; base = med(c, 1); printf "| %s |", c
            for (s = 1; s <= ns; s++) {
                m = med(c, s)
                if (m == "") printf " - |"
                else if (s == 1 || base + 0 <= 0) printf " %.4g |", m
                else printf " %.4g (%.3fx) |", m, m / base
            }
            printf "\n"
        } }' "$TAB"
exit $rc
