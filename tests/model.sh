#!/bin/sh
# model.sh: `dmabench train`, `generate` and `forward` end to end on a tiny model:
# the log and checkpoint files, exact resume through the command line (the same
# log and the same weights file as an uninterrupted run), generation, forward's
# logits, validation (its loss against forward's, repeatable, kept on resume),
# and bad input giving one line on stderr and a non-zero exit.
B=${DMABENCH:-./build/dmabench}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
ok() { echo "ok - model/$1"; }
nok() { echo "not ok - model/$1: $2"; }

# expect_fail NAME PATTERN CMD...: exit 1 or 2, one line on stderr matching PATTERN
expect_fail() {
    name=$1 pat=$2
    shift 2
    "$@" >"$T/stdout" 2>"$T/stderr"
    rc=$?
    lines=$(grep -c . "$T/stderr")
    if [ "$rc" -eq 0 ] || [ "$rc" -ge 128 ]; then nok "$name" "exit status $rc"
    elif ! grep -q -- "$pat" "$T/stderr"; then nok "$name" "stderr '$(head -c 300 "$T/stderr")' lacks '$pat'"
    elif [ "$lines" -ne 1 ]; then nok "$name" "$lines lines on stderr"
    else ok "$name"; fi
}

cat >"$T/c.json" <<'EOF'
{"vocab_size": 259, "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2,
 "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 16, "max_position_embeddings": 128,
 "keep_window_size": 8, "tie_word_embeddings": false,
 "attention": {"variant": "dma"},
 "train": {"steps": 6, "batch_size": 2, "context": 24, "lr": 0.003, "warmup": 2, "grad_accum": 2,
           "log_every": 1, "ckpt_every": 0, "seed": 3}}
EOF
i=0
while [ $i -lt 40 ]; do echo "the cat sat on the mat and the dog sat on the log $i" >>"$T/data.txt"; i=$((i + 1)); done

# train: files, log lines, progress on stderr
if $B train --config "$T/c.json" --data "$T/data.txt" --out "$T/full" --threads 2 >"$T/o" 2>"$T/e"; then
    if [ -s "$T/full/model.safetensors" ] && [ -s "$T/full/optimizer.safetensors" ] && [ -s "$T/full/config.json" ] &&
        [ "$(grep -c '"step"' "$T/full/train_log.jsonl")" -eq 7 ] && grep -q '"event":"end"' "$T/full/train_log.jsonl" &&
        grep -q 'step      6/6  loss' "$T/e" && grep -q 'tok/s' "$T/e"; then
        ok train_files
    else nok train_files "missing files, log lines or progress: $(tail -2 "$T/e")"; fi
else nok train_files "exit status $?: $(tail -2 "$T/e")"; fi

# resume through the CLI: 3 steps (--steps overrides), then --resume to 6
# (a line logged after the checkpoint, as by a run killed later, is dropped on resume)
$B train --config "$T/c.json" --data "$T/data.txt" --out "$T/part" --steps 3 --quiet 2>"$T/e1" &&
    echo '{"step":4,"loss":9.9}' >>"$T/part/train_log.jsonl" &&
    $B train --resume "$T/part" --steps 6 --quiet 2>"$T/e2"
grep '"loss"' "$T/full/train_log.jsonl" | sed 's/,"tokens_per_s".*//' >"$T/l1"
grep '"loss"' "$T/part/train_log.jsonl" | sed 's/,"tokens_per_s".*//' >"$T/l2"
if [ -s "$T/l1" ] && cmp -s "$T/l1" "$T/l2"; then ok resume_same_log; else nok resume_same_log "$(diff "$T/l1" "$T/l2" | head -4) $(cat "$T/e2")"; fi
if cmp -s "$T/full/model.safetensors" "$T/part/model.safetensors" &&
    cmp -s "$T/full/optimizer.safetensors" "$T/part/optimizer.safetensors"; then
    ok resume_same_weights
else nok resume_same_weights "checkpoint files differ"; fi
# the thread count does not change the result (fixed-chunk reductions, slab GEMMs)
$B train --config "$T/c.json" --data "$T/data.txt" --out "$T/t1" --steps 2 --threads 1 --quiet 2>/dev/null
$B train --config "$T/c.json" --data "$T/data.txt" --out "$T/t2" --steps 2 --threads 2 --quiet 2>/dev/null
if [ -s "$T/t1/model.safetensors" ] && cmp -s "$T/t1/model.safetensors" "$T/t2/model.safetensors"; then
    ok threads_same_weights
else nok threads_same_weights "1 and 2 threads give different weights"; fi
expect_fail resume_changed_batch "cannot change on --resume" $B train --resume "$T/part" --batch-size 3
expect_fail train_exists "already holds a checkpoint" $B train --config "$T/c.json" --data "$T/data.txt" --out "$T/full"

# generate: greedy is deterministic and prints text
g1=$($B generate --model "$T/full" --prompt "the cat" --max-new 12 2>"$T/e")
g2=$($B generate --model "$T/full" --prompt "the cat" --max-new 12 2>>"$T/e")
if [ -n "$g1" ] && [ "$g1" = "$g2" ]; then ok generate_greedy; else nok generate_greedy "'$g1' vs '$g2' $(cat "$T/e")"; fi
ids=$($B generate --model "$T/full" --ids 116,104,101 --max-new 5 --print-ids --temperature 0.7 --seed 5)
if echo "$ids" | grep -Eq '^[0-9]+(,[0-9]+){4}$'; then ok generate_ids; else nok generate_ids "'$ids'"; fi

# forward: logits for input_ids; labels add per-token losses
printf '%s' '{"input_ids":{"dtype":"I64","shape":[1,3],"data_offsets":[0,24]}}' >"$T/hdr"
hl=$(wc -c <"$T/hdr")
{ printf "$(printf '\\%03o' $((hl % 256)) $((hl / 256)) 0 0 0 0 0 0)"; cat "$T/hdr";
  printf '\164\0\0\0\0\0\0\0\150\0\0\0\0\0\0\0\145\0\0\0\0\0\0\0'; } >"$T/in.st"
if $B forward --model "$T/full" --in "$T/in.st" --out "$T/out.st" 2>"$T/e" && [ -s "$T/out.st" ] &&
    head -c 200 "$T/out.st" | grep -q '"logits":{"dtype":"F32","shape":\[1,3,259\]'; then
    ok forward_logits
else nok forward_logits "$(cat "$T/e")"; fi

# validation: held-out token rows (safetensors, I32, some labels ignored); the
# loss at the end equals forward's over the same rows, the run is repeatable,
# and --resume keeps validating
le32() {
    v=$1
    [ "$v" -lt 0 ] && v=$((v + 4294967296))
    printf "$(printf '\\%03o\\%03o\\%03o\\%03o' $((v % 256)) $((v / 256 % 256)) $((v / 65536 % 256)) $((v / 16777216 % 256)))"
}
printf '%s' '{"input_ids":{"dtype":"I32","shape":[4,24],"data_offsets":[0,384]},"labels":{"dtype":"I32","shape":[4,24],"data_offsets":[384,768]}}' >"$T/vhdr"
hl=$(wc -c <"$T/vhdr")
{
    printf "$(printf '\\%03o' $((hl % 256)) $((hl / 256)) 0 0 0 0 0 0)"
    cat "$T/vhdr"
    for part in ids labels; do
        r=0
        while [ $r -lt 4 ]; do
            t=0
            while [ $t -lt 24 ]; do
                if [ $part = ids ]; then le32 $((97 + (r * 7 + t * 3) % 26))
                elif [ $t -eq 23 ] || { [ $((r % 2)) -eq 1 ] && [ $((t % 3)) -ne 0 ]; }; then le32 -100
                else le32 $((97 + (r * 7 + t * 3 + 3) % 26)); fi
                t=$((t + 1))
            done
            r=$((r + 1))
        done
    done
} >"$T/val.st"
vflags="--val-data $T/val.st --val-every 2 --val-batches 2"
$B train --config "$T/c.json" --data "$T/data.txt" --out "$T/v1" --steps 4 $vflags --threads 2 2>"$T/ev1"
vend=$(grep '"event":"end"' "$T/v1/train_log.jsonl" | sed -n 's/.*"val_loss":\([^,]*\),.*/\1/p')
vfwd=$($B forward --model "$T/v1" --in "$T/val.st" --out "$T/vf.st" 2>>"$T/ev1")
if [ -n "$vend" ] && echo "$vfwd" | awk -v v="$vend" '{ d = $2 - v; if (d < 0) d = -d; exit !(NF >= 6 && d <= 1e-5 * $2) }'; then
    ok val_equals_forward
else nok val_equals_forward "train's val_loss '$vend', forward '$vfwd': $(tail -2 "$T/ev1")"; fi
vtok=$(grep '"event":"end"' "$T/v1/train_log.jsonl" | sed -n 's/.*"val_tokens":\([0-9]*\).*/\1/p')
if [ "$(grep -c '"val_loss"' "$T/v1/train_log.jsonl")" -eq 3 ] && [ "$vtok" = "$(echo "$vfwd" | awk '{ print $6 }')" ] &&
    grep -q 'step      2/4  loss .* val [0-9.]* ppl' "$T/ev1" && grep -q 'val loss [0-9.]* ppl [0-9.]* (62 tokens)' "$T/ev1"; then
    ok val_log_and_progress
else nok val_log_and_progress "val lines, tokens ($vtok) or progress: $(cat "$T/ev1")"; fi
$B train --config "$T/c.json" --data "$T/data.txt" --out "$T/v2" --steps 2 $vflags --quiet 2>"$T/ev2" &&
    $B train --resume "$T/v2" --steps 4 --quiet 2>>"$T/ev2"
grep '"val_loss"' "$T/v1/train_log.jsonl" | sed 's/.*"step":\([0-9]*\),.*\("val_loss":[^,]*,"val_ppl":[^,]*,"val_tokens":[0-9]*\).*/\1 \2/' >"$T/vl1"
grep '"val_loss"' "$T/v2/train_log.jsonl" | sed 's/.*"step":\([0-9]*\),.*\("val_loss":[^,]*,"val_ppl":[^,]*,"val_tokens":[0-9]*\).*/\1 \2/' >"$T/vl2"
if [ -s "$T/vl1" ] && cmp -s "$T/vl1" "$T/vl2"; then ok val_deterministic_resume
else nok val_deterministic_resume "$(diff "$T/vl1" "$T/vl2" | head -4) $(cat "$T/ev2")"; fi

# an --out folder that cannot be created: exit 1 (an output problem, not bad usage)
$B train --config "$T/c.json" --data "$T/data.txt" --out "$T/nodir/x" --steps 1 >/dev/null 2>"$T/nd.err"
rc=$?
[ "$rc" -eq 1 ] && [ "$(grep -c . "$T/nd.err")" -eq 1 ] && grep -q "cannot create '$T/nodir/x'" "$T/nd.err" &&
    ok train_out_unwritable || nok train_out_unwritable "exit $rc: $(head -c 200 "$T/nd.err")"
# counts of one are singular
$B train --config "$T/c.json" --data "$T/data.txt" --out "$T/one" --steps 1 --threads 1 >/dev/null 2>"$T/one.err"
if grep -q '; 1 step of .*; 1 thread$' "$T/one.err" && grep -q ': 1 step in ' "$T/one.err"; then ok train_singular
else nok train_singular "$(grep '^train:' "$T/one.err" | tr '\n' ' ')"; fi

# bad input
# the end line carries the model FLOPs per token and the achieved rate
if tail -n 1 "$T/full/train_log.jsonl" | grep -q '"model_flops_per_token":[1-9]' &&
    tail -n 1 "$T/full/train_log.jsonl" | grep -q '"model_tflops_per_s":[0-9.e-]*[1-9]'; then ok train_log_model_flops
else nok train_log_model_flops "$(tail -n 1 "$T/full/train_log.jsonl" | head -c 300)"; fi
# --backend: cuda without a usable GPU (or CUDA) is refused before anything is written
expect_fail train_bad_backend "--backend must be cpu or cuda" $B train --config "$T/c.json" --data "$T/data.txt" \
    --out "$T/bk" --backend gpu
if [ "${DMABENCH_GPU:-0}" != 1 ]; then
    expect_fail train_cuda_without_gpu "CUDA" $B train --config "$T/c.json" --data "$T/data.txt" --out "$T/bk" \
        --backend cuda
    [ -e "$T/bk" ] && nok train_cuda_nothing_written "left $T/bk" || ok train_cuda_nothing_written
fi
expect_fail train_no_config "--config is required" $B train --data "$T/data.txt" --out "$T/x"
expect_fail train_missing_config "cannot open config" $B train --config "$T/nope.json" --data "$T/data.txt" --out "$T/x"
echo '{"vocab_size": 259, "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2, "num_attention_heads": 3, "attention": {"variant": "mha"}}' >"$T/bad1.json"
expect_fail train_bad_heads "not a multiple of num_attention_heads" $B train --config "$T/bad1.json" --data "$T/data.txt" --out "$T/x"
sed 's/"dma"/"dmaa"/' "$T/c.json" >"$T/bad2.json"
expect_fail train_bad_variant "attention.variant' is 'dmaa'" $B train --config "$T/bad2.json" --data "$T/data.txt" --out "$T/x"
sed 's/"lr"/"lrr"/' "$T/c.json" >"$T/bad3.json"
expect_fail train_typo_key "did you mean 'train.lr'" $B train --config "$T/bad3.json" --data "$T/data.txt" --out "$T/x"
expect_fail train_bad_flag "unknown option --stepz" $B train --config "$T/c.json" --data "$T/data.txt" --out "$T/x" --stepz 3
expect_fail train_bad_schedule "--schedule must be" $B train --config "$T/c.json" --data "$T/data.txt" --out "$T/x" --schedule linear
expect_fail train_missing_data "cannot open data" $B train --config "$T/c.json" --data "$T/nodata" --out "$T/x"
printf 'abc' >"$T/short.txt"
expect_fail train_short_data "context" $B train --config "$T/c.json" --data "$T/short.txt" --out "$T/x"
expect_fail train_val_every_negative "--val-every must be in" $B train --config "$T/c.json" --data "$T/data.txt" --out "$T/x" --val-data "$T/val.st" --val-every -1
expect_fail train_val_batches_zero "--val-batches must be in" $B train --config "$T/c.json" --data "$T/data.txt" --out "$T/x" --val-data "$T/val.st" --val-batches 0
expect_fail train_val_batches_word "--val-batches" $B train --config "$T/c.json" --data "$T/data.txt" --out "$T/x" --val-data "$T/val.st" --val-batches many
expect_fail train_val_every_no_data "need --val-data" $B train --config "$T/c.json" --data "$T/data.txt" --out "$T/x" --val-every 2
expect_fail train_val_is_train "is the training data" $B train --config "$T/c.json" --data "$T/data.txt" --out "$T/x" --val-data "$T/data.txt"
expect_fail train_val_missing "cannot open data" $B train --config "$T/c.json" --data "$T/data.txt" --out "$T/x" --val-data "$T/noval"
expect_fail train_val_short "context" $B train --config "$T/c.json" --data "$T/data.txt" --out "$T/x" --val-data "$T/short.txt"
expect_fail generate_no_model "is not a model folder" $B generate --model "$T/nothing" --prompt hi
expect_fail generate_bad_backend "must be cpu or cuda" $B generate --model "$T/full" --prompt hi --backend gpu
# without a GPU (or without CUDA built in), --backend cuda says so in one line
if ! $B env 2>/dev/null | grep -q '"gpu":[[:space:]]*{'; then
    expect_fail generate_cuda_without_gpu "CUDA" $B generate --model "$T/full" --prompt hi --backend cuda
fi
mkdir -p "$T/broken" && cp "$T/full/config.json" "$T/broken/" && head -c 300 "$T/full/model.safetensors" >"$T/broken/model.safetensors"
expect_fail generate_truncated_ckpt "model.safetensors" $B generate --model "$T/broken" --prompt hi
mkdir -p "$T/wrongcfg" && sed 's/"num_hidden_layers":\t2/"num_hidden_layers":\t3/' "$T/full/config.json" >"$T/wrongcfg/config.json" &&
    cp "$T/full/model.safetensors" "$T/wrongcfg/"
expect_fail generate_layer_mismatch "model.layers.2.input_layernorm.weight' is missing" $B generate --model "$T/wrongcfg" --prompt hi
expect_fail forward_no_ids "no tensor 'input_ids'" $B forward --model "$T/full" --in "$T/full/optimizer.safetensors" --out "$T/x.st"
