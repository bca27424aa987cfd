#!/bin/sh
# reports.sh: `dmabench table` and `plot` on the fixed reports in tests/golden/
# (kernels.json: a kernel sweep with unsupported and oom cells; tasks.json: MQAR,
# needle and perplexity records with seeds). Every output is compared byte for
# byte with its golden file, every SVG must be well-formed XML (xmllint), the
# same input must give the same bytes twice, and bad usage must give exit 2, one
# line on stderr and no output file (an output that cannot be written: exit 1).
#
# After an intended change of the output, regenerate the golden files with
#   UPDATE_GOLDEN=1 sh tests/reports.sh
# and review the diff (git diff tests/golden/) before committing it.
B=${DMABENCH:-./build/dmabench}
G=tests/golden
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
ok() { echo "ok - reports/$1"; }
nok() { echo "not ok - reports/$1: $2"; }

# golden NAME FILE: FILE equals $G/NAME (or becomes it with UPDATE_GOLDEN=1)
golden() {
    if [ -n "$UPDATE_GOLDEN" ]; then
        cp "$2" "$G/$1" && ok "golden_$1 (updated)"
    elif [ ! -f "$G/$1" ]; then
        nok "golden_$1" "no golden file $G/$1 (run UPDATE_GOLDEN=1 sh tests/reports.sh)"
    elif cmp -s "$2" "$G/$1"; then
        ok "golden_$1"
    else
        nok "golden_$1" "differs from $G/$1: $(diff "$G/$1" "$2" | head -4 | tr '\n' ' ')"
    fi
}

# table NAME ARGS...: stdout of `dmabench table ARGS` against the golden NAME
table() {
    name=$1
    shift
    if "$B" table "$@" >"$T/$name" 2>"$T/$name.err"; then
        golden "$name" "$T/$name"
    else
        nok "golden_$name" "exit $?: $(head -c 300 "$T/$name.err")"
    fi
}

# plot NAME ARGS...: the SVG written by `dmabench plot ARGS --out`, checked with
# xmllint and against the golden NAME
plot() {
    name=$1
    shift
    if "$B" plot "$@" --out "$T/$name" 2>"$T/$name.err"; then
        if xmllint --noout "$T/$name" 2>"$T/$name.xml"; then ok "svg_wellformed_$name"
        else nok "svg_wellformed_$name" "$(head -3 "$T/$name.xml" | tr '\n' ' ')"; fi
        golden "$name" "$T/$name"
    else
        nok "golden_$name" "exit $?: $(head -c 300 "$T/$name.err")"
    fi
}

K=$G/kernels.json
TK=$G/tasks.json

"$B" table --help | grep -q -- --baseline && ok table_help || nok table_help "no option list"
"$B" plot --help | grep -q -- --kind && ok plot_help || nok plot_help "no option list"

# ---- tables ----
table table_kernels.md "$K"
table table_kernels_baseline.tex "$K" --format latex --baseline mha
table table_kernels.csv "$K" --format csv
table table_kernels_gflops.md "$K" --metric gflops_effective,peak_mem_bytes --no-spread --where mode=fwd
table table_kernels_cols.md "$K" --rows variant,N --cols mode --where variant=mha,dma
table table_tasks.md "$TK"
table table_tasks.tex "$TK" --format latex
table table_ppl.csv "$TK" --task ppl --metric bits_per_byte,nll --format csv
table table_niah_by_length.md "$TK" --task niah --rows context_len --baseline mha

# best per row is bold: in the fwd N=256 row, swa is the fastest
row=$(grep '^| fwd | 256 |' "$T/table_kernels.md")
case $row in *"**0.0323**"*) ok table_best_bold ;; *) nok table_best_bold "row: $row" ;; esac
# the oom and unsupported cells are named, not left blank
grep -q 'oom' "$T/table_kernels.md" && grep -q 'unsupported' "$T/table_kernels.md" && ok table_status_cells ||
    nok table_status_cells "no oom/unsupported cell"
# latex: booktabs rules and bold
grep -q '\\toprule' "$T/table_kernels_baseline.tex" && grep -q '\\textbf{' "$T/table_kernels_baseline.tex" &&
    grep -q '\\bottomrule' "$T/table_kernels_baseline.tex" && ok table_latex_booktabs || nok table_latex_booktabs "no rules"
# csv: every line of a table has the same number of fields (quoted fields have no commas here)
awk -F, 'NF && !/^#/ { if (n && NF != n) bad = 1; n = NF } /^$/ { n = 0 } END { exit bad }' "$T/table_kernels.csv" &&
    ok table_csv_rectangular || nok table_csv_rectangular "ragged lines"
# the LaTeX compiles, with no error and no overfull box, where pdflatex is installed
# (texlive-latex-base and texlive-latex-recommended); not counted without it
if command -v pdflatex >/dev/null 2>&1; then
    { printf '\\documentclass{article}\n\\usepackage{booktabs}\n\\usepackage{graphicx}\n\\usepackage[margin=1cm]{geometry}\n\\begin{document}\n'
      cat "$T/table_kernels_baseline.tex" "$T/table_tasks.tex"; printf '\\end{document}\n'; } >"$T/doc.tex"
    if (cd "$T" && pdflatex -interaction=nonstopmode -halt-on-error doc.tex >latex.log 2>&1) &&
        ! grep -q -E '^!|Overfull' "$T/latex.log"; then ok table_latex_compiles
    else nok table_latex_compiles "$(grep -m2 -E '^!|Overfull' "$T/latex.log")"; fi
fi
# a row where every variant ties (every needle found, or none) has nothing bold;
# the other row keeps its bold best
cat >"$T/ties.json" <<'EOF2'
{"schema_version": 1, "provenance": {"machine": {"cpu": "Test CPU 9000"}}, "records": [
{"kind": "task", "task": "niah", "variant": "mha", "backend": "cpu", "seed": 1, "settings": {"context_len": 256, "depth": 0.0}, "status": "ok", "metrics": {"accuracy": 0.0, "n": 10}},
{"kind": "task", "task": "niah", "variant": "dma", "backend": "cpu", "seed": 1, "settings": {"context_len": 256, "depth": 0.0}, "status": "ok", "metrics": {"accuracy": 0.0, "n": 10}},
{"kind": "task", "task": "niah", "variant": "mha", "backend": "cpu", "seed": 1, "settings": {"context_len": 256, "depth": 1.0}, "status": "ok", "metrics": {"accuracy": 0.5, "n": 10}},
{"kind": "task", "task": "niah", "variant": "dma", "backend": "cpu", "seed": 1, "settings": {"context_len": 256, "depth": 1.0}, "status": "ok", "metrics": {"accuracy": 0.9, "n": 10}}]}
EOF2
"$B" table "$T/ties.json" --task niah --rows depth >"$T/ties.md" 2>"$T/ties.err"
if grep -q '^| 0 | 0 \[' "$T/ties.md" && ! grep '^| 0 |' "$T/ties.md" | grep -q '\*\*' &&
    grep '^| 1 |' "$T/ties.md" | grep -q '\*\*90'; then ok table_all_tied_not_bold
else nok table_all_tied_not_bold "$(grep '^| [01] |' "$T/ties.md" | tr '\n' ' ') $(head -c 200 "$T/ties.err")"; fi
# the same input gives the same bytes
"$B" table "$TK" --format latex >"$T/again.tex" 2>/dev/null
cmp -s "$T/again.tex" "$T/table_tasks.tex" && ok table_deterministic || nok table_deterministic "two runs differ"
# --out writes the same text atomically, leaving no temporary file
"$B" table "$K" --out "$T/out.md" 2>/dev/null
cmp -s "$T/out.md" "$T/table_kernels.md" && [ -z "$(ls "$T" | grep '\.tmp\.')" ] && ok table_out_file ||
    nok table_out_file "differs or left a temporary file"

# ---- plots ----
plot plot_speed.svg "$K" --kind speed
plot plot_speed_tflops.svg "$K" --kind speed --metric tflops_effective --where mode=fwd
plot plot_memory.svg "$K" --kind memory
plot plot_niah.svg "$TK" --kind niah
plot plot_mqar.svg "$TK" --kind mqar
plot plot_ppl.svg "$TK" --kind ppl
# the same colour for a variant in every plot
c=0
for f in plot_speed.svg plot_memory.svg plot_mqar.svg plot_ppl.svg; do
    grep -q 'stroke="#D55E00"' "$T/$f" && grep -q 'stroke="#0072B2"' "$T/$f" && c=$((c + 1))
done
[ "$c" -eq 4 ] && grep -q 'fill="#D55E00"' "$T/plot_niah.svg" && ok plot_fixed_colours ||
    nok plot_fixed_colours "dma/mha colours missing in some plot"
# axes carry tick labels and titles; a legend names every variant
grep -q '>sequence length N (keys)<' "$T/plot_speed.svg" && grep -q '>time (ms)<' "$T/plot_speed.svg" &&
    grep -q '>1K<' "$T/plot_speed.svg" && grep -q '>nsa<' "$T/plot_speed.svg" && ok plot_axes_legend ||
    nok plot_axes_legend "missing axis titles, ticks or legend"
"$B" plot "$TK" --kind mqar --out "$T/again.svg" 2>/dev/null
cmp -s "$T/again.svg" "$T/plot_mqar.svg" && ok plot_deterministic || nok plot_deterministic "two runs differ"

# ---- bad usage: exit 2, one line on stderr, no output ----
expect_fail() {
    name=$1 pat=$2
    shift 2
    rm -f "$T/out" "$T/out.svg"
    "$@" >"$T/stdout" 2>"$T/stderr"
    rc=$?
    lines=$(grep -c . "$T/stderr")
    if [ "$rc" -ne 2 ]; then nok "$name" "exit status $rc, expected 2"
    elif [ -e "$T/out" ] || [ -e "$T/out.svg" ]; then nok "$name" "left an output file"
    elif ! grep -q -- "$pat" "$T/stderr"; then nok "$name" "stderr '$(head -c 200 "$T/stderr")' lacks '$pat'"
    elif [ "$lines" -ne 1 ]; then nok "$name" "$lines lines on stderr"
    else ok "$name"; fi
}
printf '{"schema_version": 2, "records": []}\n' >"$T/v2.json"
printf '{"schema_version": 1, "records": [' >"$T/torn.json"
expect_fail table_no_report "at least one REPORT" "$B" table
expect_fail table_bad_format "unknown format" "$B" table "$K" --format html
expect_fail table_bad_metric "unknown metric" "$B" table "$K" --metric speed
expect_fail table_missing_file "cannot open" "$B" table "$T/nope.json"
expect_fail table_schema "schema_version 2" "$B" table "$T/v2.json"
expect_fail table_torn "not valid JSON" "$B" table "$T/torn.json"
expect_fail table_bad_rows "no dimension 'colour'" "$B" table "$K" --rows colour
expect_fail table_bad_baseline "no column of that variant" "$B" table "$K" --baseline xyz
expect_fail table_no_task "no matching task records" "$B" table "$K" --task mqar
expect_fail table_bad_where "--where expects" "$B" table "$K" --where mode
expect_fail table_bad_option "unknown option --frob" "$B" table "$K" --frob 1
expect_fail plot_no_kind "--kind is required" "$B" plot "$K" --out "$T/out"
expect_fail plot_bad_kind "unknown kind" "$B" plot "$K" --kind pie --out "$T/out"
expect_fail plot_no_out "--out FILE.svg is required" "$B" plot "$K" --kind speed
expect_fail plot_wrong_records "no niah records" "$B" plot "$K" --kind niah --out "$T/out.svg"
expect_fail plot_bad_metric "does not fit" "$B" plot "$K" --kind memory --metric time_ms --out "$T/out.svg"
expect_fail plot_schema "schema_version 2" "$B" plot "$T/v2.json" --kind speed --out "$T/out.svg"
# unknown filter keys and tasks are named, with what the records do have
expect_fail table_unknown_where_key "unknown --where key 'foo' (known: card, backend, dtype, mode, variant" \
    "$B" table "$K" --where foo=1
expect_fail table_unknown_task "unknown task 'foo' (known: mqar, niah, ppl)" "$B" table "$TK" --task foo
expect_fail compare_unknown_where_key "unknown --where key 'varient'" "$B" compare "$K" "$K" --where varient=dma
expect_fail plot_unknown_where_key "unknown --where key 'foo'" "$B" plot "$K" --kind speed --where foo=1 --out "$T/out.svg"
# plot writes SVG: another extension is refused
expect_fail plot_png_name "plot writes SVG; use an .svg name" "$B" plot "$K" --kind speed --out "$T/out"
"$B" plot "$K" --kind speed --out "$T/x.png" >/dev/null 2>&1
[ ! -e "$T/x.png" ] && ok plot_png_not_written || nok plot_png_not_written "wrote x.png"
"$B" plot "$K" --kind speed --out "$T/up.SVG" 2>/dev/null && [ -s "$T/up.SVG" ] && ok plot_svg_any_case ||
    nok plot_svg_any_case "refused .SVG"

# export gab: a *_bytes metric is in bytes, as its name says (and as bmf gives it)
"$B" export "$K" --format gab --metric peak_mem_bytes >"$T/gab.json" 2>/dev/null
n=$(grep -c '"unit":[[:space:]]*"bytes"' "$T/gab.json")
m=$(grep -c '"unit":' "$T/gab.json")
[ "$n" -ge 1 ] && [ "$n" -eq "$m" ] && ! grep -q 'MiB' "$T/gab.json" && grep -q '"value":[[:space:]]*65536' "$T/gab.json" &&
    ok export_gab_bytes || nok export_gab_bytes "$n of $m entries in bytes"

# output that cannot be written: exit 1, one line, nothing on stdout (compare prints
# no verdict it could not save)
out_fail() {
    name=$1
    shift
    "$@" >"$T/stdout" 2>"$T/stderr"
    rc=$?
    if [ "$rc" -eq 1 ] && [ ! -s "$T/stdout" ] && [ "$(grep -c . "$T/stderr")" -eq 1 ] &&
        grep -q "cannot write '$T/nodir/" "$T/stderr"; then ok "$name"
    else nok "$name" "exit $rc, stdout $(wc -c <"$T/stdout") bytes: $(head -c 200 "$T/stderr")"; fi
}
out_fail compare_out_unwritable "$B" compare "$K" "$K" --out "$T/nodir/s.md"
out_fail table_out_unwritable "$B" table "$K" --out "$T/nodir/t.md"
out_fail export_out_unwritable "$B" export "$K" --format bmf --out "$T/nodir/b.json"
out_fail plot_out_unwritable "$B" plot "$K" --kind speed --out "$T/nodir/p.svg"

# fetch: a file:// folder is refused (not cached as an empty file); the folders of
# --out are created
mkdir -p "$T/src"
printf 'hello\n' >"$T/src/a.txt"
"$B" fetch "file://$T/src/" --out "$T/dirdl" --quiet >"$T/stdout" 2>"$T/stderr"
rc=$?
[ "$rc" -eq 1 ] && [ ! -e "$T/dirdl" ] && [ ! -e "$T/dirdl.part" ] && grep -q 'is a folder, not a regular file' "$T/stderr" &&
    [ "$(grep -c . "$T/stderr")" -eq 1 ] && ok fetch_refuses_folder || nok fetch_refuses_folder "exit $rc: $(head -c 200 "$T/stderr")"
"$B" fetch "file://$T/src/a.txt" --out "$T/dl/sub/a.txt" --quiet >"$T/stdout" 2>"$T/stderr"
rc=$?
[ "$rc" -eq 0 ] && cmp -s "$T/src/a.txt" "$T/dl/sub/a.txt" && grep -qx "$T/dl/sub/a.txt" "$T/stdout" &&
    ok fetch_out_makes_folders || nok fetch_out_makes_folders "exit $rc: $(head -c 200 "$T/stderr")"

# provenance: every DMABENCH_ variable the code reads that chooses a kernel or op
# version is recorded in run.environment where set (those that only print
# diagnostics, DMABENCH_GPU_PHASES and DMABENCH_NSA_SLC_STATS, are not), each with
# its value
DIAG="DMABENCH_GPU_PHASES DMABENCH_NSA_SLC_STATS"
VARS=$(grep -rhoE '(dm_env_is|getenv|env_knob)\("DMABENCH_[A-Z0-9_]+' --include='*.c' --include='*.cu' --include='*.cuh' \
    --include='*.h' kernels baselines model tasks harness | sed 's/.*"//' | sort -u)
nvars=$(echo "$VARS" | grep -c .)
missing=""
for v in $VARS; do
    case " $DIAG " in *" $v "*) continue ;; esac
    env "$v=probe-$v" "$B" env >"$T/env.json" 2>"$T/env.err"
    grep -q "\"$v\":[[:space:]]*\"probe-$v\"" "$T/env.json" || missing="$missing $v"
done
[ "$nvars" -ge 20 ] && [ -z "$missing" ] && ok "provenance_records_every_kernel_env ($nvars variables read)" ||
    nok provenance_records_every_kernel_env "$nvars variables read; not recorded:$missing"
