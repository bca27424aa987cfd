#!/bin/sh
# model.sh: `dmabench train`, `generate` and `forward` end to end on a tiny model:
# the log and checkpoint files, exact resume through the command line (the same
# log and the same weights file as an uninterrupted run), generation, forward's
# logits, and bad input giving one line on stderr and a non-zero exit.
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

# bad input
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
expect_fail generate_no_model "is not a model folder" $B generate --model "$T/nothing" --prompt hi
mkdir -p "$T/broken" && cp "$T/full/config.json" "$T/broken/" && head -c 300 "$T/full/model.safetensors" >"$T/broken/model.safetensors"
expect_fail generate_truncated_ckpt "model.safetensors" $B generate --model "$T/broken" --prompt hi
mkdir -p "$T/wrongcfg" && sed 's/"num_hidden_layers":\t2/"num_hidden_layers":\t3/' "$T/full/config.json" >"$T/wrongcfg/config.json" &&
    cp "$T/full/model.safetensors" "$T/wrongcfg/"
expect_fail generate_layer_mismatch "model.layers.2.input_layernorm.weight' is missing" $B generate --model "$T/wrongcfg" --prompt hi
expect_fail forward_no_ids "no tensor 'input_ids'" $B forward --model "$T/full" --in "$T/full/optimizer.safetensors" --out "$T/x.st"
