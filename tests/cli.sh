#!/bin/sh
# cli.sh: the dmabench command end to end: help, verify, attn, and bad input
# (each must give a one-line error, a non-zero exit and no output file).
B=${DMABENCH:-./build/dmabench}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
ok() { echo "ok - cli/$1"; }
nok() { echo "not ok - cli/$1: $2"; }

# expect_fail NAME PATTERN CMD...: non-zero exit, one line on stderr matching
# PATTERN, no crash (exit < 128), and $T/out not created
expect_fail() {
    name=$1 pat=$2
    shift 2
    rm -f "$T/out"
    "$@" >"$T/stdout" 2>"$T/stderr"
    rc=$?
    lines=$(grep -c . "$T/stderr")
    if [ "$rc" -eq 0 ] || [ "$rc" -ge 128 ]; then nok "$name" "exit status $rc"
    elif [ -e "$T/out" ]; then nok "$name" "left an output file"
    elif ! grep -q -- "$pat" "$T/stderr"; then nok "$name" "stderr '$(head -c 200 "$T/stderr")' lacks '$pat'"
    elif [ "$lines" -ne 1 ]; then nok "$name" "$lines lines on stderr"
    else ok "$name"; fi
}

$B help | grep -q verify && ok help || nok help "no command list"
$B verify --help | grep -q -- --variant && ok verify_help || nok verify_help "no options"
expect_fail unknown_command "unknown command" $B frobnicate
expect_fail verify_bad_variant "unknown variant 'foo'" $B verify --variant foo --out "$T/out"
expect_fail verify_bad_backend "unknown backend" $B verify --backend gpu --out "$T/out"
expect_fail verify_bad_option "unknown option --frob" $B verify --frob 1
# an unknown option last on the line is unknown, not "needs a value"; a close
# known name is suggested
expect_fail last_unknown_option "unknown option --casual (did you mean --causal?)" \
    $B attn --variant mha --in "$T/none.st" --out "$T/out" --casual
expect_fail env_unknown_option "unknown option --foo" $B env --foo
$B probe --help | grep -q -- --ctas-per-sm && ok probe_help || nok probe_help "no options"
expect_fail probe_bad_op "unknown op 'foo' (red2, red4, bulk, store2, rows-cp, rows-tma, rows-tma2, wg-ss, wg-ss-sw, wg-ss64, wg-rs, wg-rs-sw)" $B probe --ops red2,foo --out "$T/out"
expect_fail probe_bad_ctas "--ctas-per-sm 0 is not in 1..32" $B probe --ctas-per-sm 0 --out "$T/out"
expect_fail probe_bad_iters "--iters" $B probe --iters 0 --out "$T/out"
expect_fail fetch_unknown_flag "unknown option --progres (did you mean --progress?)" \
    $B fetch file:///nonexistent --out "$T/out" --progres
expect_fail last_option_no_value "option --in needs a value" $B attn --variant mha --out "$T/out" --in
expect_fail int_option_no_value "option --seed needs a value" $B verify --seed

# nothing checked (the cpu backend has no bf16): exit 1, one line saying why, "-" for
# the errors of the cells that did not run; the report of skips still written
$B verify --variants mha --backend cpu --dtype bf16 --out "$T/vs.json" >"$T/vs.out" 2>"$T/vs.err"
rc=$?
if [ "$rc" -eq 1 ] && [ "$(grep -c . "$T/vs.err")" -eq 1 ] && grep -q 'nothing was checked: [0-9]* cells skipped (mha cpu: ' "$T/vs.err" &&
    ! grep -q '0\.00e+00' "$T/vs.out" && grep -q '| - | - | 3e-02 | unsupported' "$T/vs.out" && [ -s "$T/vs.json" ]; then
    ok verify_nothing_checked
else nok verify_nothing_checked "exit $rc: $(head -c 200 "$T/vs.err")"; fi
# the same for --backend cuda where no GPU can be used (skipped where one can)
if $B env | grep -q '"gpu":[[:space:]]*null'; then
    $B verify --variants mha --backend cuda --out "$T/vc.json" >/dev/null 2>"$T/vc.err"
    rc=$?
    [ "$rc" -eq 1 ] && [ "$(grep -c . "$T/vc.err")" -eq 1 ] && grep -q 'nothing was checked' "$T/vc.err" &&
        ok verify_cuda_unavailable || nok verify_cuda_unavailable "exit $rc: $(head -c 200 "$T/vc.err")"
fi
# probe where no GPU can be used: one line saying so, no report
if $B env | grep -q '"gpu":[[:space:]]*null'; then
    expect_fail probe_no_gpu "no CUDA device can be used\|this build has no CUDA" $B probe --out "$T/out"
fi
# --quiet with every check passing: no table header, just the summary
$B verify --variants swa --quiet --out "$T/vq.json" >"$T/vq.out" 2>&1
rc=$?
[ "$rc" -eq 0 ] && ! grep -q '^|' "$T/vq.out" && head -1 "$T/vq.out" | grep -q '^verify: [0-9]* passed, 0 failed' &&
    ok verify_quiet_no_header || nok verify_quiet_no_header "exit $rc: $(head -2 "$T/vq.out" | tr '\n' ' ')"

# --shard K/N: three shards of swa's grid check together exactly the cells of the
# whole grid, each once; a bad K/N is a one-line usage error
labels() { grep -ho '"label":[[:space:]]*"[^"]*"' "$@" | sed 's/^[^:]*://' | sort; }
rcs=0
for k in 1 2 3; do $B verify --variants swa --backend cpu --quiet --shard $k/3 --out "$T/vs$k.json" >"$T/vs$k.out" 2>&1 || rcs=1; done
if [ $rcs -eq 0 ] && [ -s "$T/vq.json" ] && labels "$T/vs1.json" "$T/vs2.json" "$T/vs3.json" >"$T/vsh.txt" &&
    labels "$T/vq.json" | cmp -s - "$T/vsh.txt" && [ "$(labels "$T/vs1.json" | wc -l)" -gt 0 ] &&
    [ "$(labels "$T/vs1.json" | wc -l)" -lt "$(labels "$T/vq.json" | wc -l)" ]; then ok verify_shards
else nok verify_shards "exit $rcs: the shards' cells differ from the whole grid's"; fi
expect_fail verify_bad_shard "--shard '3/2' is not K/N" $B verify --shard 3/2 --out "$T/out"
expect_fail verify_bad_shard_text "--shard '1/x' is not K/N" $B verify --shard 1/x --out "$T/out"

# verify end to end: a JSON report with records and provenance
if $B verify --variant mha,dma --quiet --out "$T/v.json" >"$T/vout" 2>&1 &&
    grep -q '"schema_version"' "$T/v.json" && grep -q '"records"' "$T/v.json" && grep -q '"git_commit"' "$T/v.json" &&
    grep -q 'passed, 0 failed' "$T/vout"; then ok verify_report; else nok verify_report "$(tail -3 "$T/vout")"; fi

# attn end to end
$B attn-inputs --variant dma --shape 2,9,9,4,2,8 --causal --w 4 --backward --out "$T/in.st" 2>/dev/null
if $B attn --variant dma --in "$T/in.st" --out "$T/o.st" --causal --w 4 --backward 2>/dev/null && [ -s "$T/o.st" ]; then
    ok attn_dma_backward; else nok attn_dma_backward "no output"; fi
$B attn-inputs --variant nsa --shape 1,20,20,2,1,4 --causal --w 4 --nsa-l 4 --nsa-d 2 --nsa-ls 4 --nsa-n 2 --out "$T/nsa.st" 2>/dev/null
if $B attn --variant nsa --in "$T/nsa.st" --out "$T/o2.st" --causal --w 4 --nsa-l 4 --nsa-d 2 --nsa-ls 4 --nsa-n 2 2>/dev/null; then
    ok attn_nsa; else nok attn_nsa "failed"; fi

# bad input to attn
expect_fail attn_no_variant "--variant is required" $B attn --in "$T/in.st" --out "$T/out"
expect_fail attn_unknown_variant "unknown variant" $B attn --variant xyz --in "$T/in.st" --out "$T/out"
expect_fail attn_unknown_backend "unknown backend" $B attn --variant mha --backend tpu --in "$T/in.st" --out "$T/out"
expect_fail attn_missing_file "cannot open" $B attn --variant mha --in "$T/nope.st" --out "$T/out"
printf 'garbage' >"$T/short.st"
expect_fail attn_short_file "$T/short.st" $B attn --variant mha --in "$T/short.st" --out "$T/out"
printf '\020\000\000\000\000\000\000\000{"q": not json }' >"$T/badjson.st"
expect_fail attn_bad_json "JSON" $B attn --variant mha --in "$T/badjson.st" --out "$T/out"
expect_fail attn_missing_tensor "tensor 'g' is required" $B attn --variant nsa --causal --in "$T/in.st" --out "$T/out"
expect_fail attn_missing_do "tensor 'do' is required" $B attn --variant mha --backward --in "$T/nsa.st" --out "$T/out"
expect_fail attn_swa_noncausal "causal" $B attn --variant swa --in "$T/in.st" --out "$T/out"
expect_fail attn_bad_w "--w must be in" $B attn --variant swa --w 0 --causal --in "$T/in.st" --out "$T/out"
expect_fail attn_bad_scale "--scale" $B attn --variant mha --scale -1 --in "$T/in.st" --out "$T/out"
# mkst FILE NAME:D0,D1,... ...: a safetensors file of F32 zero tensors, written by
# hand (attn-inputs refuses shapes that attn would refuse)
mkst() {
    f=$1 hdr="{" off=0 sep=""
    shift
    for t in "$@"; do
        n=1
        for d in $(echo "${t#*:}" | tr , ' '); do n=$((n * d)); done
        hdr="$hdr$sep\"${t%%:*}\":{\"dtype\":\"F32\",\"shape\":[${t#*:}],\"data_offsets\":[$off,$((off + 4 * n))]}"
        off=$((off + 4 * n)) sep=","
    done
    hdr="$hdr}"
    while [ $((${#hdr} % 8)) -ne 0 ]; do hdr="$hdr "; done
    printf "\\$(printf %03o $((${#hdr} % 256)))\\$(printf %03o $((${#hdr} / 256)))\\000\\000\\000\\000\\000\\000" >"$f"
    printf '%s' "$hdr" >>"$f"
    head -c "$off" /dev/zero >>"$f"
}
# Hq not a multiple of Hkv
mkst "$T/gqa.st" q:1,4,3,8 k:1,4,2,8 v:1,4,2,8
expect_fail attn_gqa_mismatch "not a multiple" $B attn --variant mha --in "$T/gqa.st" --out "$T/out"
# D out of range
mkst "$T/bigd.st" q:1,2,1,300 k:1,2,1,300 v:1,2,1,300
expect_fail attn_d_range "out of range" $B attn --variant mha --in "$T/bigd.st" --out "$T/out"
# attn-inputs makes the same checks before writing anything, with its own name
expect_fail inputs_gqa_mismatch "dmabench attn-inputs: Hq=3 is not a multiple of Hkv=2" \
    $B attn-inputs --variant mha --shape 1,4,4,3,2,8 --out "$T/out"
expect_fail inputs_d_range "dmabench attn-inputs: D=300 is out of range" \
    $B attn-inputs --variant mha --shape 1,2,2,1,1,300 --out "$T/out"
expect_fail inputs_swa_noncausal "dmabench attn-inputs: swa is causal" \
    $B attn-inputs --variant swa --shape 1,4,4,1,1,8 --out "$T/out"
expect_fail inputs_wdt_not_dma "--wdt applies to dma only" $B attn-inputs --variant mha --wdt --shape 1,4,4,1,1,8 --out "$T/out"
expect_fail inputs_bias_no_wdt "--bias needs --wdt" $B attn-inputs --variant dma --bias --shape 1,4,4,1,1,8 --out "$T/out"
expect_fail inputs_bad_option "dmabench attn-inputs: unknown option --frob" $B attn-inputs --frob 1 --out "$T/out"
h=$($B attn-inputs --help)
missing=""
for o in --variant --shape --out --backward --wdt --bias; do
    echo "$h" | grep -q -- "^  $o " || missing="$missing $o"
done
[ -z "$missing" ] && ok inputs_help_options || nok inputs_help_options "not listed:$missing"
# attn refuses to overwrite its input
cp "$T/in.st" "$T/in2.st"
expect_fail attn_out_is_in "is the input file" $B attn --variant dma --causal --w 4 --in "$T/in2.st" --out "$T/in2.st"
cmp -s "$T/in.st" "$T/in2.st" && ok attn_out_is_in_kept || nok attn_out_is_in_kept "the input changed"
# why a tensor of the input file is ignored, before the "wrote" line
$B attn --variant nsa --causal --w 4 --nsa-l 4 --nsa-d 2 --nsa-ls 4 --nsa-n 2 --nsa-cmp mean --in "$T/nsa.st" \
    --out "$T/o3.st" 2>"$T/n.err"
if grep -q "ignoring tensor 'w_ck' (not used by nsa with these settings (--nsa-cmp mean))" "$T/n.err" &&
    tail -1 "$T/n.err" | grep -q 'wrote'; then ok attn_note_settings
else nok attn_note_settings "$(tr '\n' ' ' <"$T/n.err")"; fi
$B attn --variants mha --in "$T/nsa.st" --out "$T/o4.st" 2>"$T/m.err"
grep -q "ignoring tensor 'g' (not an input of mha)" "$T/m.err" && ok attn_note_not_input ||
    nok attn_note_not_input "$(tr '\n' ' ' <"$T/m.err")"
$B attn-inputs --variant mha --shape 1,4,4,1,1,8 --backward --out "$T/bw.st" 2>/dev/null
$B attn --variant mha --in "$T/bw.st" --out "$T/o5.st" 2>"$T/b.err"
grep -q "ignoring tensor 'do' (a gradient input, used only with --backward)" "$T/b.err" && ok attn_note_do ||
    nok attn_note_do "$(tr '\n' ' ' <"$T/b.err")"
# a missing output folder: the message names the user's path, not a temporary file
expect_fail attn_out_dir_message "cannot write '$T/nodir/o.st': No such file or directory" \
    $B attn --variant mha --in "$T/bw.st" --out "$T/nodir/o.st"
# wrong shape: z for a different Nk
$B attn-inputs --variant dma --shape 1,8,8,2,1,4 --out "$T/z8.st" 2>/dev/null
$B attn-inputs --variant dma --shape 1,6,6,2,1,4 --out "$T/z6.st" 2>/dev/null
# splice: take q,k,v from the 8-key file and z from the 6-key one via attn's own output? simpler: a
# file whose k has another batch size
$B attn-inputs --variant mha --shape 2,8,8,2,1,4 --out "$T/b2.st" 2>/dev/null
expect_fail attn_dma_needs_z "needs tensor z" $B attn --variant dma --in "$T/b2.st" --out "$T/out"
# NaN in an input: patch the first element of q (offset after the header) to a NaN
$B attn-inputs --variant mha --shape 1,4,4,1,1,4 --out "$T/nan.st" 2>/dev/null
hl=$(od -An -t u4 -N4 "$T/nan.st" | tr -d ' ')
qoff=$(( 8 + hl ))
# tensors are laid out sorted by size then name; find q's offset from the header
qb=$(dd if="$T/nan.st" bs=1 skip=8 count="$hl" 2>/dev/null | sed 's/.*"q":{[^}]*"data_offsets":\[\([0-9]*\),.*/\1/')
printf '\000\000\300\177' | dd of="$T/nan.st" bs=1 seek=$((qoff + qb)) conv=notrunc 2>/dev/null
expect_fail attn_nan_input "NaN" $B attn --variant mha --in "$T/nan.st" --out "$T/out"
# output into a missing folder: error, nothing left behind
expect_fail attn_bad_out_dir "" $B attn --variant dma --causal --w 4 --in "$T/in.st" --out "$T/nodir/out.st"
ls "$T/nodir" >/dev/null 2>&1 && nok attn_bad_out_dir_clean "created a folder" || ok attn_bad_out_dir_clean
