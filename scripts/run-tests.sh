#!/bin/sh
# run-tests.sh: runs every test binary given as an argument and every tests/*.sh
# script, each of which prints "ok - NAME" or "not ok - NAME: WHY" lines; counts
# them, shows the failures, and ends with "N passed, N failed".
# A test program that exits non-zero without a "not ok" line counts as one failure.
pass=0
fail=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT
run_one() {
    name=$1
    shift
    start=$(date +%s)
    "$@" >"$log" 2>&1
    rc=$?
    p=$(grep -c '^ok - ' "$log")
    f=$(grep -c '^not ok - ' "$log")
    grep '^not ok - ' "$log"
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        echo "not ok - $name: exited with status $rc and no failed check; last lines:"
        tail -5 "$log" | sed 's/^/    /'
        f=1
    fi
    pass=$((pass + p))
    fail=$((fail + f))
    printf '%-40s %4d passed, %d failed (%ds)\n' "$name" "$p" "$f" $(($(date +%s) - start))
}
for t in "$@"; do
    run_one "$(basename "$t")" "$t"
done
for s in tests/*.sh; do
    [ -f "$s" ] || continue
    run_one "$(basename "$s")" sh "$s"
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
