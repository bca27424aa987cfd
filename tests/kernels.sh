#!/bin/sh
# kernels.sh: `dmabench kernels` end to end on the reference backend at tiny sizes:
# records, statuses and timings in the report; md/csv/jsonl/json outputs well
# formed; --resume skipping done cells (and dropping a torn last line);
# unsupported, oom and not-built cells recorded without stopping the sweep; bad
# usage giving exit 2, one line on stderr and no output file. Checks use
# grep/awk only.
B=${DMABENCH:-./build/dmabench}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
ok() { echo "ok - kernels/$1"; }
nok() { echo "not ok - kernels/$1: $2"; }

# expect_fail NAME PATTERN CMD...: exit 2, one line on stderr matching PATTERN,
# and neither $T/out nor $T/out.jsonl created
expect_fail() {
    name=$1 pat=$2
    shift 2
    rm -f "$T/out" "$T/out.jsonl"
    "$@" >"$T/stdout" 2>"$T/stderr"
    rc=$?
    lines=$(grep -c . "$T/stderr")
    if [ "$rc" -ne 2 ]; then nok "$name" "exit status $rc, expected 2"
    elif [ -e "$T/out" ] || [ -e "$T/out.jsonl" ]; then nok "$name" "left an output file"
    elif ! grep -q -- "$pat" "$T/stderr"; then nok "$name" "stderr '$(head -c 200 "$T/stderr")' lacks '$pat'"
    elif [ "$lines" -ne 1 ]; then nok "$name" "$lines lines on stderr"
    else ok "$name"; fi
}

# count PATTERN FILE: lines matching (grep -c, 0 when none)
count() {
    c=$(grep -c -- "$1" "$2" 2>/dev/null)
    echo "${c:-0}"
}
# occurrences PATTERN FILE: matches, several per line counted
occurrences() { grep -o -- "$1" "$2" 2>/dev/null | wc -l | tr -d ' '; }

$B kernels --help | grep -q -- --variants && ok help || nok help "no option list"
$B help | grep -q kernels && ok listed || nok listed "not in 'dmabench help'"

# ---- a tiny sweep: 4 variants x 2 sizes x 2 modes = 16 cells ----
SWEEP="kernels --backend ref --variants mha,swa,dma,nsa --n 64,96 --hq 2 --hkv 1 --d 16 --w 16
       --nsa-l 8 --nsa-d 4 --nsa-ls 8 --nsa-n 3 --mode fwd,fwdbwd --repeats 2 --warmup 0"
# shellcheck disable=SC2086
$B $SWEEP --out "$T/k.json" >"$T/k.md" 2>"$T/k.err"
rc=$?
[ "$rc" -eq 0 ] && ok sweep_exit || nok sweep_exit "exit $rc: $(tail -2 "$T/k.err")"
n=$(occurrences '"kind":' "$T/k.json")
[ "$n" -eq 16 ] && ok sweep_records || nok sweep_records "$n records, expected 16"
n=$(occurrences '"status":[[:space:]]*"ok"' "$T/k.json")
[ "$n" -eq 16 ] && ok sweep_status_ok || nok sweep_status_ok "$n records ok, expected 16"
n=$(occurrences '"time_ms":' "$T/k.json")
m=$(occurrences '"median":' "$T/k.json")
[ "$n" -eq 16 ] && [ "$m" -eq 16 ] && ok sweep_time_ms || nok sweep_time_ms "$n time_ms, $m medians"
missing=""
for f in gflops_dense gflops_effective gbps peak_mem_bytes rss_peak_bytes max_abs_err max_rel_err flops_dense \
    flops_effective bytes tensor_bytes threads dma_z check_shape samples p5 p95; do
    [ "$(occurrences "\"$f\":" "$T/k.json")" -ge 1 ] || missing="$missing $f"
done
[ -z "$missing" ] && ok sweep_fields || nok sweep_fields "missing:$missing"
n=$(occurrences '"check":[[:space:]]*"pass"' "$T/k.json")
[ "$n" -eq 16 ] && ok sweep_checks_pass || nok sweep_checks_pass "$n checks passed, expected 16"
n=$(occurrences '"schema_version"' "$T/k.json")
[ "$n" -eq 1 ] && grep -q '"git_commit"' "$T/k.json" && ok sweep_provenance || nok sweep_provenance "no schema/provenance"
# progress lines on stderr: [k/n] ... : X ms
n=$(count '^\[[0-9]*/16\] .* : [0-9.]* ms' "$T/k.err")
[ "$n" -eq 16 ] && ok sweep_progress || nok sweep_progress "$n progress lines, expected 16"
# the streamed JSONL: one record per line
n=$(count . "$T/k.json.jsonl")
[ "$n" -eq 16 ] && ok sweep_jsonl_stream || nok sweep_jsonl_stream "$n lines in OUT.jsonl, expected 16"
# md: header, rule and 16 rows, every line a table row with the same number of cells
n=$(count '^|' "$T/k.md")
bad=$(awk -F'|' 'NF != 17' "$T/k.md" | wc -l | tr -d ' ')
[ "$n" -eq 18 ] && [ "$bad" -eq 0 ] && ok md_table || nok md_table "$n table lines ($bad malformed)"

# ---- --resume: the same sweep again times nothing and prints every format ----
# shellcheck disable=SC2086
$B $SWEEP --out "$T/k.json" --resume --format csv >"$T/k.csv" 2>"$T/r.err"
rc=$?
if [ "$rc" -eq 0 ] && grep -q 'resumed 16 cells' "$T/r.err" && grep -q 'timed 0,' "$T/r.err" &&
    [ "$(count ' ms' "$T/r.err")" -eq 0 ]; then ok resume_skips_all
else nok resume_skips_all "exit $rc: $(grep -E 'resumed|timed' "$T/r.err" | head -2)"; fi
n=$(occurrences '"kind":' "$T/k.json")
[ "$n" -eq 16 ] && ok resume_report_records || nok resume_report_records "$n records after resume, expected 16"
n=$(count . "$T/k.json.jsonl")
[ "$n" -eq 16 ] && ok resume_jsonl_kept || nok resume_jsonl_kept "$n lines in OUT.jsonl, expected 16"
# csv: header + 16 rows, the same number of fields on every line
n=$(count . "$T/k.csv")
nf=$(awk -F, '{print NF}' "$T/k.csv" | sort -u | wc -l | tr -d ' ')
if [ "$n" -eq 17 ] && [ "$nf" -eq 1 ] && head -1 "$T/k.csv" | grep -q '^variant,backend,mode,'; then ok csv_well_formed
else nok csv_well_formed "$n lines, $nf distinct field counts"; fi
# jsonl on stdout: 16 lines, each one object with balanced braces and quotes
# shellcheck disable=SC2086
$B $SWEEP --out "$T/k.json" --resume --format jsonl >"$T/k.jsonl" 2>/dev/null
n=$(count . "$T/k.jsonl")
bad=$(awk '!/^\{"kind":"kernel".*\}$/ { b++; next }
           { o = gsub(/\{/, "{"); c = gsub(/\}/, "}"); q = gsub(/"/, "\""); if (o != c || q % 2) b++ }
           END { print b + 0 }' "$T/k.jsonl")
[ "$n" -eq 16 ] && [ "$bad" -eq 0 ] && ok jsonl_well_formed || nok jsonl_well_formed "$n lines, $bad malformed"
# json on stdout: the whole report
# shellcheck disable=SC2086
$B $SWEEP --out "$T/k.json" --resume --format json >"$T/k.stdout.json" 2>/dev/null
n=$(occurrences '"kind":' "$T/k.stdout.json")
if [ "$n" -eq 16 ] && head -1 "$T/k.stdout.json" | grep -q '^{' && tail -1 "$T/k.stdout.json" | grep -q '^}'; then
    ok json_stdout; else nok json_stdout "$n records"; fi
# a torn last line (an interrupted run) is dropped and that cell is run again
head -n 15 "$T/k.json.jsonl" >"$T/torn" 2>/dev/null
tail -n 1 "$T/k.json.jsonl" 2>/dev/null | head -c 50 >>"$T/torn"
cp "$T/torn" "$T/k.json.jsonl"
# shellcheck disable=SC2086
$B $SWEEP --out "$T/k.json" --resume >/dev/null 2>"$T/t.err"
if grep -q 'resumed 15 cells' "$T/t.err" && grep -q 'timed 1,' "$T/t.err" &&
    [ "$(count . "$T/k.json.jsonl")" -eq 16 ] && [ "$(occurrences '"kind":' "$T/k.json")" -eq 16 ]; then
    ok resume_torn_line
else nok resume_torn_line "$(grep -E 'resumed|timed|dropped' "$T/t.err" | tr '\n' ' ')"; fi

# ---- Hq % Hkv != 0 is recorded as unsupported and the sweep goes on ----
$B kernels --backend ref --variants mha --n 32 --hq 3,4 --hkv 2 --d 8 --repeats 1 --warmup 0 \
    --out "$T/u.json" --format jsonl >"$T/u.jsonl" 2>"$T/u.err"
rc=$?
l1=$(sed -n 1p "$T/u.jsonl")
l2=$(sed -n 2p "$T/u.jsonl")
case "$rc|$l1|$l2" in
0*'"status":"unsupported"'*'not a multiple'*'|'*'"Hq":4'*'"status":"ok"'*) ok unsupported_recorded ;;
*) nok unsupported_recorded "exit $rc: $(head -c 300 "$T/u.jsonl")" ;;
esac

# ---- a cell over --max-mem-gb is recorded as oom without allocating; with no
# cell measured at all the sweep exits 1 with a one-line summary, report written ----
$B kernels --backend ref --variants mha --n 64 --hq 2 --hkv 1 --d 8 --max-mem-gb 0.00001 --repeats 1 \
    --format jsonl --out "$T/o.json" >"$T/o.jsonl" 2>"$T/o.err"
rc=$?
[ "$rc" -eq 1 ] && grep -q '"status":"oom"' "$T/o.jsonl" && grep -q 'max-mem-gb' "$T/o.jsonl" && ok oom_recorded ||
    nok oom_recorded "exit $rc: $(head -c 200 "$T/o.jsonl")"
if [ "$(count '^dmabench kernels: no cell was measured (0 unsupported, 1 oom, 0 error)$' "$T/o.err")" -eq 1 ] &&
    [ "$(count '^dmabench' "$T/o.err")" -eq 1 ] && grep -q '"status":[[:space:]]*"oom"' "$T/o.json"; then ok none_measured_exit1
else nok none_measured_exit1 "$(cat "$T/o.err" | tr '\n' ' ')"; fi
# one cell ok among oom cells: exit 0
$B kernels --backend ref --variants mha --n 8,64 --hq 2 --hkv 1 --d 8 --max-mem-gb 0.000008 --repeats 1 \
    --format jsonl >"$T/o2.jsonl" 2>/dev/null
rc=$?
[ "$rc" -eq 0 ] && [ "$(count '"status":"oom"' "$T/o2.jsonl")" -eq 1 ] && [ "$(count '"status":"ok"' "$T/o2.jsonl")" -eq 1 ] &&
    ok some_measured_exit0 || nok some_measured_exit0 "exit $rc: $(head -c 300 "$T/o2.jsonl")"

# ---- --quiet: only the summary line; --threads 0 means every core ----
$B kernels --backend ref --variants mha --n 16 --hq 2 --hkv 1 --d 8 --repeats 1 --warmup 0 --threads 0 --quiet \
    --out "$T/q.json" >"$T/q.out" 2>"$T/q.err"
rc=$?
if [ "$rc" -eq 0 ] && [ ! -s "$T/q.out" ] && [ "$(count . "$T/q.err")" -eq 1 ] &&
    grep -q '^kernels: 1 cell: 1 ok' "$T/q.err" && grep -q '"threads":[[:space:]]*[1-9]' "$T/q.json"; then ok quiet_threads0
else nok quiet_threads0 "exit $rc: $(head -c 200 "$T/q.out") / $(tr '\n' ' ' <"$T/q.err")"; fi

# ---- bwd and decode modes, dma with z from w_dt, clustered and rising z ----
$B kernels --backend ref --variants dma --mode bwd,decode --dma-z wdt,clustered,rising --n 40 --hq 2 --hkv 1 --d 8 --w 8 \
    --repeats 1 --warmup 0 --format jsonl >"$T/m.jsonl" 2>"$T/m.err"
rc=$?
if [ "$rc" -eq 0 ] && [ "$(count '"status":"ok"' "$T/m.jsonl")" -eq 6 ] &&
    [ "$(count '"mode":"decode".*"Nq":1,"Nk":40' "$T/m.jsonl")" -eq 3 ] &&
    [ "$(count '"dma_z":"wdt"' "$T/m.jsonl")" -eq 2 ] && [ "$(count '"dma_z":"rising"' "$T/m.jsonl")" -eq 2 ]; then ok modes_bwd_decode
else nok modes_bwd_decode "exit $rc: $(tail -2 "$T/m.err")"; fi

# ---- the default backend (cpu): cells it lacks are "unsupported", never a crash ----
$B kernels --n 64 --repeats 1 --warmup 0 --check-n 32 --out "$T/c.json" >/dev/null 2>"$T/c.err"
rc=$?
n=$(count . "$T/c.json.jsonl")
bad=$(grep -v '"status":"ok"' "$T/c.json.jsonl" 2>/dev/null | grep -v -c '"status":"unsupported".*"error":"backend cpu of [a-z]* is not built into this binary"')
if [ "$rc" -eq 0 ] && [ "$n" -eq 4 ] && [ "$bad" -eq 0 ] && grep -q '"backend":"cpu"' "$T/c.json.jsonl"; then
    ok default_cpu_backend
else nok default_cpu_backend "exit $rc, $n records, $bad unexpected: $(tail -1 "$T/c.err")"; fi

# ---- bad usage: exit 2, one line, no output file ----
expect_fail bad_variant "unknown variant 'foo'" $B kernels --variants mha,foo --out "$T/out"
expect_fail bad_n_list "--n: bad list item" $B kernels --n 64-x --out "$T/out"
expect_fail bad_n_zero "--n values must be" $B kernels --n 0 --out "$T/out"
expect_fail bad_format "unknown format 'xml'" $B kernels --format xml --out "$T/out"
expect_fail bad_backend "unknown backend 'gpu'" $B kernels --backend gpu --out "$T/out"
expect_fail bad_mode "unknown mode 'train'" $B kernels --mode train --out "$T/out"
expect_fail bad_dtype "unknown dtype" $B kernels --dtype f64 --out "$T/out"
expect_fail bad_causal "--causal values must be" $B kernels --causal 2 --out "$T/out"
expect_fail bad_option "unknown option --frob" $B kernels --frob 1 --out "$T/out"
expect_fail resume_needs_out "--resume needs --out" $B kernels --resume
expect_fail bad_heads "--hq 2 is not a multiple of --hkv 4" $B kernels --hq 2 --hkv 4 --out "$T/out"
expect_fail bad_heads_lists "no --hq value is a multiple" $B kernels --hq 2,3 --hkv 4,5 --out "$T/out"
expect_fail bad_d_range "--d values must be in 1..256, got 512" $B kernels --d 512 --out "$T/out"
expect_fail unknown_last_flag "unknown option --quiett (did you mean --quiet?)" $B kernels --out "$T/out" --quiett
expect_fail variant_alias_bad "unknown variant 'foo'" $B kernels --variant foo --out "$T/out"
# an output that cannot be written: exit 1 (not a usage error), one line, nothing left
$B kernels --backend ref --variants mha --n 8 --hq 1 --hkv 1 --d 8 --out "$T/nodir/out" >/dev/null 2>"$T/nd.err"
rc=$?
if [ "$rc" -eq 1 ] && [ "$(count . "$T/nd.err")" -eq 1 ] && grep -q "cannot write '$T/nodir/out.jsonl'" "$T/nd.err" &&
    [ ! -e "$T/nodir" ]; then ok bad_out_dir
else nok bad_out_dir "exit $rc: $(head -c 200 "$T/nd.err")"; fi
