#!/bin/sh
# run.sh: `dmabench run` end to end on a tiny suite (tests/run/tiny.json, a few
# seconds): the files it writes, resume after an interruption giving the same
# tables byte for byte, suite validation errors (one line, exit 2), paper.json
# refusing to run on the CPU, and the embedded default matching suites/quick.json.
B=${DMABENCH:-./build/dmabench}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
ok() { echo "ok - run/$1"; }
nok() { echo "not ok - run/$1: $2"; }
SUITE=tests/run/tiny.json

# expect_fail NAME PATTERN CMD...: exit 2, one line on stderr matching PATTERN
expect_fail() {
    name=$1 pat=$2
    shift 2
    "$@" >"$T/stdout" 2>"$T/stderr"
    rc=$?
    lines=$(grep -c . "$T/stderr")
    if [ "$rc" -ne 2 ]; then nok "$name" "exit status $rc (want 2): $(head -c 200 "$T/stderr")"
    elif ! grep -q -- "$pat" "$T/stderr"; then nok "$name" "stderr '$(head -c 200 "$T/stderr")' lacks '$pat'"
    elif [ "$lines" -ne 1 ]; then nok "$name" "$lines lines on stderr"
    else ok "$name"; fi
}

# 1. an uninterrupted run
$B run $SUITE --out "$T/full" --quiet >"$T/full.out" 2>"$T/full.err"
rc=$?
if [ $rc -ne 0 ]; then nok full_run "exit $rc: $(tail -3 "$T/full.err")"; else ok full_run; fi
for f in records.jsonl report.json tables.md suite.json; do
    [ -s "$T/full/$f" ] && ok "writes_$f" || nok "writes_$f" "missing or empty"
done
n=$(grep -c . "$T/full/records.jsonl")
# mqar 2 pairs x 2 variants x 2 seeds = 8; niah 4 cells x (2 lengths x 2 depths) = 16; ppl 4 cells x 4 evals = 16
[ "$n" -eq 40 ] && ok records_count || nok records_count "$n records, want 40"
cmp -s "$T/full.out" "$T/full/tables.md" && ok tables_on_stdout || nok tables_on_stdout "stdout differs from tables.md"
for t in "MQAR accuracy" "Needle in a haystack" "Perplexity"; do
    grep -q "^## $t" "$T/full/tables.md" && ok "table_$(echo $t | cut -c1-4)" || nok "table_$t" "no '$t' table"
done
grep -q '| num_kv_pairs | mha (%) | dma (%) |' "$T/full/tables.md" && ok mqar_columns || nok mqar_columns "variants are not the columns"
grep -q '± ' "$T/full/tables.md" && ok intervals || nok intervals "no interval over seeds"
grep -q '"schema_version":[[:space:]]*1' "$T/full/report.json" && ok report_schema || nok report_schema "no schema_version"
# the report works with the report commands
$B table "$T/full/report.json" --task niah >/dev/null 2>&1 && ok table_reads_report || nok table_reads_report "dmabench table failed"
$B plot "$T/full/report.json" --kind niah --out "$T/niah.svg" 2>/dev/null && ok plot_niah || nok plot_niah "dmabench plot failed"
$B plot "$T/full/report.json" --kind ppl --metric bits_per_byte --out "$T/ppl.svg" 2>/dev/null && ok plot_ppl || nok plot_ppl "dmabench plot failed"

# 2. interrupted after 5 cells (--max-cells), then resumed: same tables
$B run $SUITE --out "$T/part" --quiet --max-cells 5 >/dev/null 2>"$T/part.err"
rc=$?
[ $rc -eq 0 ] && [ ! -e "$T/part/tables.md" ] && ok stop_after_cells || nok stop_after_cells "exit $rc or tables written"
grep -q -- "--resume $T/part" "$T/part.err" && ok says_how_to_resume || nok says_how_to_resume "$(tail -1 "$T/part.err")"
$B run --resume "$T/part" --quiet >/dev/null 2>"$T/part2.err"
rc=$?
[ $rc -eq 0 ] && ok resume_run || nok resume_run "exit $rc: $(tail -2 "$T/part2.err")"
grep -q "5 cells already done" "$T/part2.err" && ok resume_skips || nok resume_skips "$(grep resuming "$T/part2.err")"
cmp -s "$T/full/tables.md" "$T/part/tables.md" && ok resume_same_tables || nok resume_same_tables "tables.md differs"

# 2a. --variants trains only those variants' cells
$B run $SUITE --out "$T/var" --quiet --only mqar --variants dma >/dev/null 2>"$T/var.err"
rc=$?
nv=$(grep -c '"task":"mqar"' "$T/var/records.jsonl" 2>/dev/null)
nd=$(grep '"task":"mqar"' "$T/var/records.jsonl" 2>/dev/null | grep -c '"variant":"dma"')
[ $rc -eq 0 ] && [ "$nv" = 4 ] && [ "$nd" = 4 ] && ok variants_run || nok variants_run "exit $rc, $nv mqar records, $nd of dma (want 4 and 4): $(tail -1 "$T/var.err")"

# 2b. --only on a finished folder runs nothing new and keeps every part in the report
cp -r "$T/full" "$T/only"
$B run --resume "$T/only" --only mqar --quiet >/dev/null 2>"$T/only.err"
rc=$?
[ $rc -eq 0 ] && cmp -s "$T/full/tables.md" "$T/only/tables.md" &&
    [ "$(grep -c '"cell"' "$T/only/report.json")" -eq "$(grep -c '"cell"' "$T/full/report.json")" ] &&
    ok only_keeps_whole_report || nok only_keeps_whole_report "exit $rc; tables or report lost parts"

# 2b'. --deadline: a cell that the folder's pace says would end late is not
# started (exit 130, a line saying so); each cell's records carry its cell_s
$B run $SUITE --out "$T/dl" --quiet --only mqar --variants dma --max-cells 1 >/dev/null 2>"$T/dl.err"
n1=$(grep -c '"cell_s":' "$T/dl/records.jsonl" 2>/dev/null)
$B run --resume "$T/dl" --only mqar --variants dma --deadline 0.001s --quiet >/dev/null 2>"$T/dl2.err"
rc=$?
n2=$(grep -c . "$T/dl/records.jsonl" 2>/dev/null)
[ "$n1" = 1 ] && [ $rc -eq 130 ] && [ "$n2" = 1 ] && grep -q "deadline: .* not started" "$T/dl2.err" &&
    grep -q "stopped at the deadline after 0 new cells" "$T/dl2.err" && ok deadline_not_started ||
    nok deadline_not_started "cell_s in $n1 records, exit $rc, $n2 records (want 1, 130, 1): $(head -1 "$T/dl2.err")"
$B run --resume "$T/dl" --only mqar --variants dma --deadline 10m --quiet >/dev/null 2>"$T/dl3.err"
rc=$?
n3=$(grep -c '"cell_s":' "$T/dl/records.jsonl" 2>/dev/null)
[ $rc -eq 0 ] && [ "$n3" = 4 ] && grep -q "the timed 4 cells took" "$T/dl3.err" && ok deadline_far ||
    nok deadline_far "exit $rc, $n3 records with cell_s (want 0, 4): $(tail -1 "$T/dl3.err")"
expect_fail deadline_bad "deadline takes" $B run $SUITE --out "$T/dlbad" --deadline 12

# 2c. --report: the report and tables of a partial folder, running nothing
mkdir "$T/rep" && cp "$T/full/suite.json" "$T/rep/"
head -n 8 "$T/full/records.jsonl" >"$T/rep/records.jsonl"   # the 8 mqar cells, a record each
$B run --resume "$T/rep" --report >/dev/null 2>"$T/rep.err"
rc=$?
nrec=$(grep -c . "$T/rep/records.jsonl")
ncell=$(grep -c '"cell"' "$T/rep/report.json" 2>/dev/null)
[ $rc -eq 0 ] && [ "$nrec" -eq 8 ] && [ "$ncell" -eq 8 ] && [ -s "$T/rep/tables.md" ] &&
    grep -q "runs the rest" "$T/rep.err" && ok report_only ||
    nok report_only "exit $rc, $nrec lines in records.jsonl, $ncell records in the report (want 8 and 8): $(tail -1 "$T/rep.err")"
expect_fail report_needs_resume "use it with --resume" $B run $SUITE --out "$T/rep" --report
# every task record names the device it ran on, and the tables show it
grep '"kind":"task"' "$T/full/records.jsonl" | grep -qv '"card":"' && nok records_card "a task record without card" ||
    ok records_card

# two_runs DIR: mha's and dma's cells run at once into DIR (stderr in DIR.mha.err
# and DIR.dma.err); their exit statuses in r1 and r2
two_runs() {
    $B run $SUITE --out "$1" --quiet --variants mha >/dev/null 2>"$1.mha.err" &
    p1=$!
    $B run $SUITE --out "$1" --quiet --variants dma >/dev/null 2>"$1.dma.err" &
    p2=$!
    wait $p1; r1=$?
    wait $p2; r2=$?
}

# 2d. two runs at once into one folder (one per GPU, say: --variants splits the
# cells), then --report: every cell, the same tables as one run
two_runs "$T/two"
$B run --resume "$T/two" --report >/dev/null 2>"$T/two3.err"
r3=$?
n=$(grep -c . "$T/two/records.jsonl")
[ $r1 -eq 0 ] && [ $r2 -eq 0 ] && [ $r3 -eq 0 ] && [ "$n" -eq 40 ] && cmp -s "$T/full/tables.md" "$T/two/tables.md" &&
    ok concurrent_runs_one_folder ||
    nok concurrent_runs_one_folder "exits $r1 $r2 $r3, $n records (want 40), tables $(cmp -s "$T/full/tables.md" "$T/two/tables.md" && echo same || echo differ)"

# 2d'. the same with a torn last line in the folder: the first run to take the
# file's lock drops it and rewrites the file; the other reads the rewritten one
mkdir "$T/two2" && cp "$T/full/suite.json" "$T/two2/"
head -n 12 "$T/full/records.jsonl" >"$T/two2/records.jsonl"
tail -n 1 "$T/full/records.jsonl" | head -c 40 >>"$T/two2/records.jsonl"
two_runs "$T/two2"
$B run --resume "$T/two2" --report >/dev/null 2>&1
n=$(grep -c . "$T/two2/records.jsonl")
nd=$(cat "$T/two2.mha.err" "$T/two2.dma.err" | grep -c 'line dropped')
[ $r1 -eq 0 ] && [ $r2 -eq 0 ] && [ "$n" -eq 40 ] && [ "$nd" -eq 1 ] && cmp -s "$T/full/tables.md" "$T/two2/tables.md" &&
    ok concurrent_runs_torn_line ||
    nok concurrent_runs_torn_line "exits $r1 $r2, $n records (want 40), $nd runs dropped the torn line (want 1)"

# 2e. scripts/run-gpus.sh: the suite's parts over two workers (the GPU numbers only
# name the workers of a CPU suite), one folder, the same tables as one run
DMABENCH=$B sh scripts/run-gpus.sh $SUITE "$T/gpus" 0,1 >"$T/gpus.out" 2>"$T/gpus.err"
rc=$?
n=$(grep -c . "$T/gpus/records.jsonl" 2>/dev/null)
# 2 variants x 3 tasks x 2 shards (as many as workers) = 12 parts
[ $rc -eq 0 ] && [ "$n" = 40 ] && cmp -s "$T/full/tables.md" "$T/gpus/tables.md" && [ "$(grep -c ': exit 0' "$T/gpus.err")" = 12 ] &&
    ok run_gpus_script || nok run_gpus_script "exit $rc, $n records (want 40): $(tail -2 "$T/gpus.err")"
# --shard K/N: every N-th cell from the K-th; the shards cover the suite once
s0=$($B run $SUITE --validate --shard 0/3 | sed -n 's/.*valid\. \([0-9]*\) training cells.*/\1/p')
s1=$($B run $SUITE --validate --shard 1/3 | sed -n 's/.*valid\. \([0-9]*\) training cells.*/\1/p')
s2=$($B run $SUITE --validate --shard 2/3 | sed -n 's/.*valid\. \([0-9]*\) training cells.*/\1/p')
[ "$s0" = 6 ] && [ "$s1" = 5 ] && [ "$s2" = 5 ] && ok shard_counts || nok shard_counts "shards of 16 cells: $s0 $s1 $s2 (want 6 5 5)"
expect_fail shard_bad "takes K/N" $B run $SUITE --validate --shard 3/3

# 3. a torn last line (killed mid-write) and a partial cell: dropped, rerun, same tables
cp -r "$T/full" "$T/torn"
rm "$T/torn/tables.md" "$T/torn/report.json"
head -n 30 "$T/full/records.jsonl" >"$T/torn/records.jsonl"      # ends inside a ppl cell
tail -n 1 "$T/full/records.jsonl" | head -c 50 >>"$T/torn/records.jsonl"   # and a torn line
$B run $SUITE --out "$T/torn" --quiet >/dev/null 2>"$T/torn.err"
rc=$?
[ $rc -eq 0 ] && ok rerun_same_out || nok rerun_same_out "exit $rc: $(tail -2 "$T/torn.err")"
grep -q "dropped" "$T/torn.err" && ok drops_torn_lines || nok drops_torn_lines "$(grep resuming "$T/torn.err")"
cmp -s "$T/full/tables.md" "$T/torn/tables.md" && ok torn_same_tables || nok torn_same_tables "tables.md differs"
n=$(grep -c . "$T/torn/records.jsonl")
[ "$n" -eq 40 ] && ok torn_records_count || nok torn_records_count "$n records, want 40"

# 3b. the needle's depth x length matrix per variant, from the records (seeds pooled):
# one cell's count edited in records.jsonl shows up in the rebuilt tables
for v in mha dma; do
    grep -q "^## Needle in a haystack: depth x length matrix, $v\$" "$T/full/tables.md" && ok "niah_matrix_$v" ||
        nok "niah_matrix_$v" "no matrix for $v"
done
grep -q '^| depth \\ context | 96 | 192 |$' "$T/full/tables.md" && ok niah_matrix_columns ||
    nok niah_matrix_columns "no 'depth \\ context | 96 | 192' header"
n=$(grep -c '^| 100% | ' "$T/full/tables.md")
[ "$n" -eq 2 ] && ok niah_matrix_rows || nok niah_matrix_rows "$n rows of depth 100%, want 2 (one per variant)"
mkdir "$T/mat" && cp "$T/full/suite.json" "$T/mat/"
awk '!done && /"variant":"mha"/ && /"seed":1,/ && /"context_len":96,"depth":0,/ { sub(/"correct":0/, "\"correct\":2"); done = 1 } { print }' \
    "$T/full/records.jsonl" >"$T/mat/records.jsonl"
$B run $SUITE --out "$T/mat" --quiet --only mqar,niah,ppl >"$T/mat.out" 2>"$T/mat.err"
# mha: 2 of the 4 pooled samples at (depth 0, 96) found; dma unchanged
sed -n '/matrix, mha$/,/^## /p' "$T/mat/tables.md" | grep -q '^| 0% | 50 | 0 |$' && ok niah_matrix_pools_seeds ||
    nok niah_matrix_pools_seeds "$(sed -n '/matrix, mha$/,/^## /p' "$T/mat/tables.md" | grep '^| 0%')"
sed -n '/matrix, dma$/,/^## /p' "$T/mat/tables.md" | grep -q '^| 0% | 0 | 0 |$' && ok niah_matrix_per_variant ||
    nok niah_matrix_per_variant "dma's matrix changed"

# 3c. MQAR learning-rate sweep with early stop (tests/run/mqar_sweep.json: lrs 1e-5 and
# 1e-2, early_stop 0.3 every 25 steps of 400): the best lr by validation accuracy is
# kept, dma's 1e-2 run stops early, and the records say so
$B run tests/run/mqar_sweep.json --out "$T/sweep" --quiet >/dev/null 2>"$T/sweep.err"
rc=$?
[ $rc -eq 0 ] && ok sweep_run || nok sweep_run "exit $rc: $(tail -2 "$T/sweep.err")"
n=$(grep -c '"metrics":{[^}]*"lr":0.01,"steps_taken":[0-9]*,"val_accuracy"' "$T/sweep/records.jsonl")
[ "$n" -eq 2 ] && ok sweep_keeps_best_lr || nok sweep_keeps_best_lr "$n records chose lr 0.01, want 2"
# every early-stopped run stopped at an evaluation (a multiple of 25), before the
# budget, at or above 30% validation accuracy; at least one did (dma's, here)
grep -o '{"lr":[^}]*"early_stopped":true[^}]*}' "$T/sweep/records.jsonl" | awk -F'[:,]' '
    { s = $4; a = $6; n++; if (s % 25 || s >= 400 || a < 0.3) bad++ }
    END { exit !(n >= 1 && !bad) }' && ok sweep_early_stop ||
    nok sweep_early_stop "$(grep -o '{"lr":[^}]*"early_stopped":true[^}]*}' "$T/sweep/records.jsonl" | head -2)"
grep -o '{"lr":[^}]*"early_stopped":false[^}]*}' "$T/sweep/records.jsonl" | grep -qv '"steps_taken":400,' &&
    nok sweep_no_stop_full_budget "a run that did not stop early trained less than 400 steps" || ok sweep_no_stop_full_budget
grep -q '"lr":1e-05,"steps_taken":400,' "$T/sweep/records.jsonl" &&
    ok sweep_full_budget_without_stop || nok sweep_full_budget_without_stop "the 1e-5 run did not train 400 steps"
grep -c '"train":{"steps":400,[^}]*"lr":0.01,.*"steps_taken":[0-9]*}' "$T/sweep/records.jsonl" | grep -qx 2 &&
    ok sweep_train_block || nok sweep_train_block "train block lacks the chosen lr or steps_taken"
grep -q '^| mha (%) | dma (%) |$' "$T/sweep/tables.md" && ok sweep_one_row ||
    nok sweep_one_row "the chosen lr split the table's rows"
# no sweep asked: the records carry none of it
grep -q 'lr_sweep\|steps_taken\|val_accuracy' "$T/full/records.jsonl" && nok no_sweep_by_default "sweep keys in tiny's records" ||
    ok no_sweep_by_default

# 3d. RULER-style needles (tests/run/niah_multi.json: 3 keys, 2 values)
$B run tests/run/niah_multi.json --out "$T/multi" --quiet >/dev/null 2>"$T/multi.err"
rc=$?
[ $rc -eq 0 ] && ok multi_needle_run || nok multi_needle_run "exit $rc: $(tail -2 "$T/multi.err")"
n=$(grep -c '"n_keys":3,"n_values":2}' "$T/multi/records.jsonl")
[ "$n" -eq 3 ] && ok multi_needle_records || nok multi_needle_records "$n records with n_keys 3 and n_values 2, want 3"
grep -q 'n_keys=3, n_values=2' "$T/multi/tables.md" && ok multi_needle_caption || nok multi_needle_caption "not in the table caption"
# with several values, each cell also carries RULER's recall (the fraction of values
# found), a number in [0, 1] at least the exact-match accuracy, inside its interval
awk '/"n_values":2/ {
        if (!match($0, /"accuracy":[-0-9.e]+/)) { bad = 1; next } a = substr($0, RSTART + 11, RLENGTH - 11) + 0
        if (!match($0, /"recall":[-0-9.e]+/)) { bad = 1; next } r = substr($0, RSTART + 9, RLENGTH - 9) + 0
        if (!match($0, /"recall_ci95":\[[-0-9.e]+,[-0-9.e]+\]/)) { bad = 1; next }
        split(substr($0, RSTART + 15, RLENGTH - 16), ci, ",")
        if (r < a - 1e-12 || r < 0 || r > 1 || ci[1] > r + 1e-12 || ci[2] < r - 1e-12) bad = 1; n++ }
     END { exit bad || n != 3 }' "$T/multi/records.jsonl" && ok multi_needle_recall ||
    nok multi_needle_recall "recall missing or inconsistent: $(grep -o '"recall[^]]*]' "$T/multi/records.jsonl" | head -2 | tr '\n' ' ')"
$B table "$T/multi/report.json" --task niah --metric recall >"$T/recall.md" 2>&1 && grep -q 'niah: recall (%)' "$T/recall.md" &&
    ok multi_needle_recall_table || nok multi_needle_recall_table "$(head -2 "$T/recall.md")"
grep -q 'n_keys\|n_values' "$T/full/records.jsonl" && nok single_needle_records_unchanged "n_keys in tiny's records" ||
    ok single_needle_records_unchanged
# the longer prompt is checked against every context length
printf '{"tasks": {"niah": {"train_context_len": 256, "context_len": [120], "n_keys": 3, "n_values": 2}}}' >"$T/m1.json"
expect_fail multi_needle_too_short "context_len 120 is below the shortest prompt (240)" $B run "$T/m1.json" --out "$T/om1"
printf '{"tasks": {"niah": {"train_context_len": 256, "context_len": [256], "n_keys": 17}}}' >"$T/m2.json"
expect_fail multi_needle_too_many_keys "n_keys must be an integer in \[1, 16\]" $B run "$T/m2.json" --out "$T/om2"
printf '{"tasks": {"mqar": {"seq_len": 64, "num_kv_pairs": 4, "vocab_size": 96, "lrs": [0.01, 0.01]}}}' >"$T/m3.json"
expect_fail sweep_lr_twice "lrs lists 0.01 twice" $B run "$T/m3.json" --out "$T/om3"
printf '{"tasks": {"mqar": {"seq_len": 64, "num_kv_pairs": 4, "vocab_size": 96, "eval_every": 10}}}' >"$T/m4.json"
expect_fail sweep_eval_every_alone "need lrs or early_stop" $B run "$T/m4.json" --out "$T/om4"
printf '{"tasks": {"mqar": {"seq_len": 64, "num_kv_pairs": 4, "vocab_size": 96, "early_stop": 1.5}}}' >"$T/m5.json"
expect_fail sweep_bad_early_stop "early_stop must be a number in \[0, 1\]" $B run "$T/m5.json" --out "$T/om5"

# 4. suite validation: one line, exit 2
printf '{"tasks": {"mqar": {"seq_len": [63], "num_kv_pairs": 4}}}' >"$T/s1.json"
expect_fail bad_seq_len "seq_len 63" $B run "$T/s1.json" --out "$T/o1"
printf '{"tasks": {"mqar": {"seq_len": 64, "num_kv_pairs": 4, "stepz": 3}}}' >"$T/s2.json"
expect_fail unknown_key "unknown key 'tasks.mqar.stepz'" $B run "$T/s2.json" --out "$T/o2"
printf '{"variants": ["mha", "flash"], "tasks": {"ppl": {"train_context": 64}}}' >"$T/s3.json"
expect_fail bad_variant "unknown variant 'flash'" $B run "$T/s3.json" --out "$T/o3"
printf '{"tasks": {"niah": {"train_context_len": 256}' >"$T/s4.json"
expect_fail bad_json "not valid JSON" $B run "$T/s4.json" --out "$T/o4"
printf '{}' >"$T/s5.json"
expect_fail empty_suite "nothing to run" $B run "$T/s5.json" --out "$T/o5"
printf '{"tasks": {"ppl": {"train_context": 64, "modes": ["sliding"]}}}' >"$T/s6.json"
expect_fail bad_mode "modes" $B run "$T/s6.json" --out "$T/o6"
printf '{"tasks": {"ppl": {"train_context": 64}}, "kernels": {"n": [1024], "flavour": 2}}' >"$T/s7.json"
expect_fail bad_kernel_key "unknown key 'kernels.flavour'" $B run "$T/s7.json" --out "$T/o7"
printf '{"model": {"d_model": 30}, "tasks": {"ppl": {"train_context": 64}}}' >"$T/s8.json"
expect_fail bad_d_model "d_model 30" $B run "$T/s8.json" --out "$T/o8"
printf '{"model": {"nsa_cmp": "max"}, "tasks": {"ppl": {"train_context": 64}}}' >"$T/s8b.json"
expect_fail bad_nsa_cmp 'model.nsa_cmp must be "linear" or "mean"' $B run "$T/s8b.json" --out "$T/o8b"
# nsa_cmp reaches the model: the mean compression has no compression weights
for c in linear mean; do
    printf '{"variants": ["nsa"], "model": {"nsa_cmp": "%s", "window": 16}, "tasks": {"mqar": {"seq_len": 64, "num_kv_pairs": 4, "vocab_size": 96, "steps": 3, "n_test": 8}}}' $c >"$T/cmp-$c.json"
    $B run "$T/cmp-$c.json" --out "$T/cmp-$c" --quiet >/dev/null 2>&1
done
pl=$(sed -n 's/.*"params":\([0-9]*\).*/\1/p' "$T/cmp-linear/records.jsonl" 2>/dev/null)
pm=$(sed -n 's/.*"params":\([0-9]*\).*/\1/p' "$T/cmp-mean/records.jsonl" 2>/dev/null)
if [ -n "$pl" ] && [ -n "$pm" ] && [ "$pm" -lt "$pl" ] && grep -q '"nsa_cmp":"mean"' "$T/cmp-mean/records.jsonl" &&
    ! grep -q '"nsa_cmp"' "$T/cmp-linear/records.jsonl"; then ok nsa_cmp_mean
else nok nsa_cmp_mean "params linear '$pl' mean '$pm'; the mean record names nsa_cmp: $(grep -c nsa_cmp "$T/cmp-mean/records.jsonl" 2>/dev/null)"; fi
# nsa_gates: a bad value fails validation; fixed gates reach the model (no g_proj:
# 3 x 4 heads x 64 fewer parameters per layer) and the record names them
printf '{"model": {"nsa_gates": [0, 1]}, "tasks": {"ppl": {"train_context": 64}}}' >"$T/s8c.json"
expect_fail bad_nsa_gates 'model.nsa_gates must be null (learned gates) or 3 numbers in 0..1' $B run "$T/s8c.json" --out "$T/o8c"
printf '{"variants": ["nsa"], "model": {"nsa_gates": [0, 0, 1], "window": 16}, "tasks": {"mqar": {"seq_len": 64, "num_kv_pairs": 4, "vocab_size": 96, "steps": 3, "n_test": 8}}}' >"$T/gates.json"
$B run "$T/gates.json" --out "$T/gates" --quiet >/dev/null 2>&1
pg=$(sed -n 's/.*"params":\([0-9]*\).*/\1/p' "$T/gates/records.jsonl" 2>/dev/null)
if [ -n "$pl" ] && [ -n "$pg" ] && [ "$pg" -eq $((pl - 2 * 12 * 64)) ] && grep -q '"nsa_gates":\[0,0,1\]' "$T/gates/records.jsonl" &&
    ! grep -q '"nsa_gates"' "$T/cmp-linear/records.jsonl"; then ok nsa_gates_fixed
else nok nsa_gates_fixed "params learned '$pl' fixed '$pg'; the record names nsa_gates: $(grep -c nsa_gates "$T/gates/records.jsonl" 2>/dev/null)"; fi
expect_fail missing_suite "cannot read suite" $B run "$T/nope.json" --out "$T/o9"
expect_fail resume_not_run_dir "not a run folder" $B run --resume "$T"
expect_fail bad_only "unknown part" $B run $SUITE --only mqar,foo
expect_fail fresh_needs_out "needs --out" $B run $SUITE --fresh
[ ! -e "$T/o1" ] && [ ! -e "$T/o4" ] && ok no_output_on_error || nok no_output_on_error "an output folder was created"
# another suite into a used folder
printf '{"tasks": {"ppl": {"train_context": 64}}}' >"$T/s9.json"
expect_fail other_suite_same_out "another suite" $B run "$T/s9.json" --out "$T/full"

# 5. the shipped suites validate; paper.json refuses to train on the CPU
$B run --validate >/dev/null 2>&1 && ok quick_validates || nok quick_validates "$($B run --validate 2>&1 | tail -1)"
$B run suites/paper.json --validate >"$T/pv" 2>&1 && ok paper_validates || nok paper_validates "$(tail -1 "$T/pv")"
# a ppl corpus read many times over is named (the license corpus: about 214 k
# tokens, here read by 200 steps of 32 x 1024); the shipped suites read theirs
# at most 4 times
printf '{"backend": "cpu", "tasks": {"ppl": {"corpus": "licenses", "train_context": 1024, "contexts": [1024], "steps": 200, "batch_size": 32}}}' >"$T/lic.json"
$B run "$T/lic.json" --validate >"$T/lic" 2>&1
grep -q '^warning: ppl: .* passes over the [0-9]*-token train split of licenses' "$T/lic" && ok ppl_passes_warning ||
    nok ppl_passes_warning "no warning about the passes over the license corpus: $(cat "$T/lic")"
for f in "" suites/paper.json suites/paper-probe.json; do
    $B run $f --validate 2>&1 | grep -q 'passes over' && nok "ppl_passes_quiet${f:+_$(basename "$f" .json)}" "it warned" ||
        ok "ppl_passes_quiet${f:+_$(basename "$f" .json)}"
done
grep -q "^training on cuda" "$T/pv" && ok paper_says_cuda || nok paper_says_cuda "$(cat "$T/pv")"
expect_fail paper_needs_gpu "cannot run here" $B run suites/paper.json --out "$T/paper"
# every shipped cuda suite's head dims are ones the CUDA attention takes; a suite
# with one it does not take is named in --validate's warning
$B run suites/paper-calibrate.json --validate >/dev/null 2>&1 && ok calibrate_validates || nok calibrate_validates \
    "$($B run suites/paper-calibrate.json --validate 2>&1 | tail -1)"
for f in suites/paper.json suites/paper-probe.json suites/paper-calibrate.json; do
    $B run "$f" --validate 2>&1 | grep -q '^warning: .*head dim' && nok "cuda_head_dims_$(basename "$f" .json)" \
        "$($B run "$f" --validate 2>&1 | grep '^warning')" || ok "cuda_head_dims_$(basename "$f" .json)"
done
printf '{"backend": "cuda", "model": {"n_heads": 4, "n_kv_heads": 2}, "tasks": {"mqar": {"d_model": [32, 64], "seq_len": [64], "num_kv_pairs": [4], "steps": 5}}}' >"$T/hd.json"
$B run "$T/hd.json" --validate >"$T/hd" 2>&1
grep -q '^warning: 4 cells .*mqar d_model 32 (head dim 8)' "$T/hd" && ! grep -q 'd_model 64' "$T/hd" &&
    ok cuda_head_dim_warning || nok cuda_head_dim_warning "$(cat "$T/hd")"
# --variants keeps one variant's cells; a name the suite lacks is refused
$B run "$T/hd.json" --validate --variants dma >"$T/vv" 2>&1
grep -q '^suite .*: valid. 2 training cells (mqar 2), 4 variants (training dma)' "$T/vv" &&
    ok variants_filter || nok variants_filter "$(head -1 "$T/vv")"
expect_fail variants_unknown "'gqa' is not one of the suite's variants" $B run "$T/hd.json" --validate --variants dma,gqa

# 6. the embedded default is suites/quick.json (regenerate with sh suites/embed.sh)
$B run --print-suite | cmp -s - suites/quick.json && ok embedded_quick_in_sync ||
    nok embedded_quick_in_sync "harness/run_quick.c differs from suites/quick.json: run sh suites/embed.sh"
