#!/bin/sh
# run-gpus.sh: one suite over several GPUs of a host, into one run folder.
#   sh scripts/run-gpus.sh SUITE.json DIR [GPUS]
# Starts one worker per GPU (GPUS: a comma list of device numbers; default every
# GPU nvidia-smi lists). Each worker takes the next part of the suite (a shard of
# one variant's cells of one task; the kernel profile last) and runs it with
# `dmabench run SUITE --out DIR --variants V --only TASK --shard K/SHARDS` on its
# GPU (CUDA_VISIBLE_DEVICES); the runs share DIR, each appending whole cells to
# DIR/records.jsonl. When the parts are done, `dmabench run --resume DIR --report`
# writes DIR/report.json and DIR/tables.md for the whole suite.
#
# Environment: DMABENCH (default build/dmabench); DEADLINE, a Unix time by which
# the workers stop (`run --deadline`: a run starts no cell that its pace says
# would end later, and stops one still running then; the runs keep their finished
# cells, and running this script again continues where they stopped); SHARDS, the shards of each
# variant's task (default: as many as GPUs, so that the queue evens out). Parts
# run in the order of PARTS (default: MQAR first, then perplexity and the needle;
# nsa and mha first within each); THREADS, each worker's CPU threads (default:
# the machine's cores shared out among the workers, at least 1; the runs' OpenMP
# teams would otherwise each take every core and crowd each other out).
# Each part's log: DIR/parts/PART.log.
set -u
[ $# -ge 2 ] || { echo "usage: sh scripts/run-gpus.sh SUITE.json DIR [GPUS]" >&2; exit 2; }
SUITE=$1
DIR=$2
B=${DMABENCH:-build/dmabench}
[ -x "$B" ] || { echo "run-gpus: $B not found (build it, or set DMABENCH)" >&2; exit 2; }
[ -f "$SUITE" ] || { echo "run-gpus: no suite file $SUITE" >&2; exit 2; }
if [ $# -ge 3 ]; then GPUS=$(echo "$3" | tr ',' ' ')
else
    command -v nvidia-smi >/dev/null 2>&1 || { echo "run-gpus: nvidia-smi not found: name the GPUs (e.g. 0,1)" >&2; exit 2; }
    GPUS=$(nvidia-smi --query-gpu=index --format=csv,noheader | tr '\n' ' ')
fi
[ -n "$GPUS" ] || { echo "run-gpus: no GPU listed" >&2; exit 2; }
SHARDS=${SHARDS:-$(echo $GPUS | wc -w)}
NW=$(echo $GPUS | wc -w)
THREADS=${THREADS:-$(( $(nproc 2>/dev/null || echo 1) / NW ))}
[ "$THREADS" -ge 1 ] 2>/dev/null || THREADS=1
CLAIM=$(mktemp -d) || exit 1
trap 'rm -rf "$CLAIM"' EXIT
"$B" run "$SUITE" --validate >/dev/null 2>"$CLAIM/validate.err" || { cat "$CLAIM/validate.err" >&2; exit 2; }

# the parts: variant:task:shard of the suite, then the kernel profile
cells() { "$B" run "$SUITE" --validate --variants "$1" --only "$2" 2>/dev/null | sed -n 's/.*valid\. \([0-9]*\) training cells.*/\1/p'; }
if [ -z "${PARTS:-}" ]; then
    PARTS=""
    for t in mqar ppl niah; do
        for v in nsa mha dma swa; do
            n=$(cells $v $t)
            [ -n "$n" ] && [ "$n" -gt 0 ] || continue
            k=0
            while [ $k -lt "$SHARDS" ] && [ $k -lt "$n" ]; do PARTS="$PARTS $v:$t:$k"; k=$((k + 1)); done
        done
    done
    "$B" run "$SUITE" --validate 2>/dev/null | grep -q 'kernel profile: none' || PARTS="$PARTS all:kernels"
fi
mkdir -p "$DIR/parts" || exit 1

worker() {
    g=$1
    for p in $PARTS; do
        mkdir "$CLAIM/$p" 2>/dev/null || continue # another worker took it
        v=${p%%:*} rest=${p#*:}
        t=${rest%%:*} k=${rest#*:}
        va="--variants $v --shard $k/$SHARDS"
        [ "$v" = all ] && va="" && k=""
        [ "$k" = "$t" ] && k="" && va="--variants $v" # PARTS given as variant:task
        lim="" dl=""
        if [ -n "${DEADLINE:-}" ]; then
            left=$((DEADLINE - $(date +%s)))
            [ "$left" -gt 5 ] || return 0
            # the run starts no cell its pace says would end late and stops one
            # still running at DEADLINE; the timeout is a backstop
            dl="--deadline $DEADLINE" lim="timeout -s INT $((left + 10))"
        fi
        log="$DIR/parts/$v-$t${k:+-$k}.log"
        echo "run-gpus: GPU $g: $v $t${k:+ shard $k/$SHARDS} ($THREADS threads)" >&2
        # shellcheck disable=SC2086
        CUDA_VISIBLE_DEVICES=$g $lim "$B" run "$SUITE" --out "$DIR" $va --only "$t" --threads "$THREADS" $dl --quiet >"$log" 2>&1
        rc=$?
        echo "run-gpus: GPU $g: $v $t${k:+ shard $k/$SHARDS}: exit $rc ($(tail -n 1 "$log"))" >&2
        if [ -n "$dl" ] && [ "$rc" -eq 130 ]; then # stopped for the deadline: leave the part to the next call
            rmdir "$CLAIM/$p" 2>/dev/null
            return 0
        fi
    done
}
for g in $GPUS; do worker "$g" & done
wait
"$B" run --resume "$DIR" --report >/dev/null
