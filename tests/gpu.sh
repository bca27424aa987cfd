#!/bin/sh
# gpu.sh: the GPU tests. Skipped (no checks counted) unless DMABENCH_GPU=1, which
# `make test-gpu` sets; on a GPU machine without the build's libraries run it as
#   DMABENCH_GPU=1 DMABENCH=path/to/dmabench sh tests/gpu.sh
# Every CUDA kernel against the double-precision reference (verify's grid: GQA,
# MQA, Nq != Nk, decode Nq = 1, odd sizes, padded strides; forward and backward)
# in bf16, f16 and f32 (computed in bf16); compute-sanitizer memcheck and racecheck when it is installed;
# a small timed sweep whose cells must all be checked and ok; the sums probe.
# DMABENCH_GPU_PART picks one part (default: all), so that each fits a time-limited
# run: verify (the kernels against the reference, the other versions included, and the
# sweep), model (the GPU model's tests and a tiny suite), sanitize (the default
# kernels and the model ops under compute-sanitizer), sanitize-optin (the other
# kernel versions, chosen in the environment, under it).
[ "${DMABENCH_GPU:-0}" = 1 ] || { echo "# gpu tests skipped (DMABENCH_GPU=1 runs them)"; exit 0; }
B=${DMABENCH:-./build/dmabench}
T=$(mktemp -d)
# DMABENCH_GPU_KEEP=DIR keeps the logs and reports of every step in DIR
if [ -n "${DMABENCH_GPU_KEEP:-}" ]; then
    trap 'mkdir -p "$DMABENCH_GPU_KEEP"; cp -r "$T"/. "$DMABENCH_GPU_KEEP"/; rm -rf "$T"' EXIT
else trap 'rm -rf "$T"' EXIT; fi
ok() { echo "ok - gpu/$1"; }
want() { [ -z "${DMABENCH_GPU_PART:-}" ] || [ "$DMABENCH_GPU_PART" = "$1" ]; }
nok() { echo "not ok - gpu/$1: $2"; }

$B env >"$T/env.json" 2>&1
if grep -q '"gpu":[[:space:]]*{' "$T/env.json"; then ok "device found"
else nok "device found" "dmabench env lists no CUDA device"; exit 0; fi

# bg NAME command...: runs the command in the background, at most DMABENCH_GPU_JOBS
# (default 4) at once (the verify runs wait mostly on launches and copies, so
# several share the GPU well); output in $T/NAME.log, exit status in $T/NAME.rc.
NJ=0
bg() {
    n=$1
    shift
    ("$@" >"$T/$n.log" 2>&1; echo $? >"$T/$n.rc") &
    NJ=$((NJ + 1))
    if [ $NJ -ge "${DMABENCH_GPU_JOBS:-4}" ]; then wait; NJ=0; fi
}
rc_of() { cat "$T/$1.rc" 2>/dev/null || echo "?"; }

# every kernel against the reference, whole grid, in each dtype; and the other
# kernel versions, chosen in the environment, on the variants they change: nsa's
# CUDA-core selection and selected branch; the query-tile backward for the
# contiguous key ranges that take the key-parallel one by default (mha, swa, nsa's
# window and compressed branches), on 128- and 64-row tiles; the key-parallel backward on every
# shape it takes with a CTA per key tile (by default short grids split each tile's steps), and
# short grids on the query tiles instead (DMABENCH_CUDA_BWD_KPSPLIT=0); nsa's selected-branch
# backward on the CUDA cores; nsa's repeated-argmax pick of the selected blocks;
# the forward on Hopper's wgmma; dma decode's exact select over all of z; nsa's linear compression 8 blocks per CTA forward
# and backward, and one block per CTA both ways; the query-tile backward on mma.sync (sm_90 takes wgmma by
# default), on 128- and 64-row tiles; the wgmma version without its third warpgroup for the sums (the
# default), with dK's product overlapping dV's sums and waiting for each (also with dma's first pass for
# Dsum); the reducer tiles' K/V rows by cp.async instead of tensor-memory copies; the warp-specialised forward on every forward (by default only dma's training forward, the one that
# writes O's residual, takes it), and that forward on mma.sync;
# the decode's launches without programmatic dependent launch; nsa's selected
# branch by key block (in chunks of 37 queries) and by union, each fixed; nsa's selection with 4 warps per CTA;
# nsa's selection with its block scores summed by one thread per pair instead of as a product,
# and with one K~ stage (the default only where two stages keep one CTA per SM);
# nsa's pairs forward with ptxas' own register count (2 CTAs per SM, not 4);
# nsa's pairs backward on the 8-warp sub-batch kernel, with and without its CTAs' own Dsum;
# nsa's pairs forward one batch per CTA, and 16 per CTA in chunks of 37 queries;
# nsa and dma without the forward's saved area (the backward runs the branches or the plan again);
# nsa with the pairs' lists built in each pass and the backward's rows (gated dO, Dsum) formed per branch;
# dma's saved area without O's rounding residual (the backward's first pass forms Dsum);
# the query-tile backward on 16 warps (dma, nsa; mha and swa sent to the query tiles), and with dma's first pass;
# dma decode's final select, split and combine as three kernels (not the cluster kernel);
# dma decode's cluster kernel after the filter kernel (not reading z itself);
# the reducer tiles each alone, not in clusters of two heads sharing their K/V rows
OPTINS="DMABENCH_NSA_TC=0:nsa DMABENCH_CUDA_BWD_TILE=64+DMABENCH_CUDA_BWD_KEYPAR=0:mha,swa,dma,nsa DMABENCH_CUDA_BWD_KEYPAR=0:mha,swa,nsa
DMABENCH_CUDA_BWD_KEYPAR=1:mha,swa,nsa DMABENCH_CUDA_BWD_KPSPLIT=0:mha,swa,nsa
DMABENCH_NSA_TC_BWD=0:nsa DMABENCH_NSA_PICK=argmax:nsa DMABENCH_CUDA_WGMMA=1:mha,swa,dma,nsa
DMABENCH_DECODE_SEL_SAMPLE=0:dma DMABENCH_NSA_CMP_BLK=1:nsa DMABENCH_NSA_CMP_BLK=0:nsa
DMABENCH_CUDA_WGMMA_BWD=0+DMABENCH_CUDA_BWD_KEYPAR=0:mha,swa,dma,nsa DMABENCH_CUDA_WGMMA_BWD=0+DMABENCH_CUDA_BWD_TILE=64+DMABENCH_CUDA_BWD_KEYPAR=0:mha,dma DMABENCH_CUDA_BWD_WG_REDUCER=0+DMABENCH_CUDA_BWD_WG_OVERLAP=0+DMABENCH_CUDA_BWD_KEYPAR=0:mha,swa,dma,nsa DMABENCH_CUDA_BWD_WG_REDUCER=0+DMABENCH_CUDA_BWD_KEYPAR=0:mha,swa,dma,nsa DMABENCH_CUDA_BWD_WG_REDUCER=0+DMABENCH_DMA_RESIDUAL=0:dma DMABENCH_CUDA_BWD_TMA=0+DMABENCH_CUDA_BWD_KEYPAR=0:mha,swa,dma,nsa DMABENCH_CUDA_BWD_MC=0+DMABENCH_CUDA_BWD_KEYPAR=0:mha,swa,dma,nsa DMABENCH_CUDA_FWD_WS=1:mha,swa,dma,nsa DMABENCH_CUDA_FWD_WS=0:dma DMABENCH_CUDA_FWD_TMA=0:dma DMABENCH_CUDA_TILE_ORDER=none:mha,swa,dma,nsa DMABENCH_CUDA_TILE_ORDER=all:dma DMABENCH_DECODE_PDL=0:mha,dma DMABENCH_NSA_SLC=pairs+DMABENCH_NSA_PAIR_QUERIES=37:nsa DMABENCH_NSA_SLC=union:nsa DMABENCH_NSA_SLC=auto:nsa DMABENCH_NSA_SEL_WARPS=4:nsa DMABENCH_NSA_SEL_MMA=0:nsa DMABENCH_NSA_SEL_STAGES=1:nsa DMABENCH_NSA_SLC=pairs+DMABENCH_NSA_PAIR_MINB=0:nsa DMABENCH_NSA_SLC=pairs+DMABENCH_NSA_PAIR_DSUM=0:nsa DMABENCH_NSA_PAIR_BWD_W8=1:nsa DMABENCH_NSA_PAIR_BWD_W8=1+DMABENCH_NSA_PAIR_DSUM=0:nsa DMABENCH_NSA_PAIR_FWD_SUB=1:nsa DMABENCH_NSA_PAIR_FWD_SUB=16+DMABENCH_NSA_PAIR_QUERIES=37:nsa DMABENCH_NSA_SAVED=0:nsa DMABENCH_NSA_CMP_WIDE=0:nsa DMABENCH_NSA_KEEP_LISTS=0+DMABENCH_NSA_BWD_ROWS=scalar:nsa DMABENCH_DMA_SAVED=0:dma DMABENCH_DMA_RESIDUAL=0:dma DMABENCH_CUDA_BWD_W16=1:dma,nsa DMABENCH_CUDA_BWD_W16=1+DMABENCH_CUDA_BWD_KEYPAR=0:mha,swa DMABENCH_CUDA_BWD_W16=1+DMABENCH_DMA_RESIDUAL=0:dma DMABENCH_DECODE_FUSED=0:dma DMABENCH_DECODE_FUSED=1:dma"
if want verify; then
    for dt in bf16 f16 f32; do bg "v-$dt" $B verify --backend cuda --dtype $dt --quiet --out "$T/v-$dt.json"; done
    for o in $OPTINS; do
        for dt in bf16 f16; do
            # shellcheck disable=SC2046
            bg "vopt-$dt-${o%%:*}" env $(echo "${o%%:*}" | tr '+' ' ') $B verify --backend cuda --dtype $dt --variants "${o#*:}" --quiet \
                --out "$T/vopt-$dt-${o%%:*}.json"
        done
    done
    wait
    NJ=0
    for dt in bf16 f16 f32; do
        rc=$(rc_of "v-$dt")
        s=$(grep '^verify:' "$T/v-$dt.log")
        if [ "$rc" = 0 ] && echo "$s" | grep -q ' 0 failed' && ! echo "$s" | grep -q 'forward only'; then
            ok "verify $dt every variant forward and backward ($s)"
        else nok "verify $dt" "exit $rc: $(grep -v '^$' "$T/v-$dt.log" | tail -6 | tr '\n' ' ')"; fi
    done
    for o in $OPTINS; do
        for dt in bf16 f16; do
            n="vopt-$dt-${o%%:*}"
            rc=$(rc_of "$n")
            s=$(grep '^verify:' "$T/$n.log")
            if [ "$rc" = 0 ] && echo "$s" | grep -q ' 0 failed'; then ok "verify $dt ${o#*:} with ${o%%:*} ($s)"
            else nok "verify $dt ${o#*:} with ${o%%:*}" "exit $rc: $(grep -v '^$' "$T/$n.log" | tail -4 | tr '\n' ' ')"; fi
        done
    done
fi

# DMABENCH_GPU_SANITIZE=0 skips the sanitizer runs (the slowest part), e.g. to
# split the check over several runs with a time limit each
# DMABENCH_GPU_SHARD=K/N runs the sanitizers over the K-th of N parts of each verify
# grid (verify --shard), so that N runs, at once or one after another, cover it
SH=${DMABENCH_GPU_SHARD:-1/1}
SHN=""
[ "$SH" = 1/1 ] || SHN=" (shard $SH)"
# san_result LABEL NAME: ok LABEL when the sanitizer run NAME exited 0 with a clean
# summary, else not ok with its first errors
san_result() {
    rc=$(rc_of "$2")
    if [ "$rc" = 0 ] && grep -qE '(ERROR SUMMARY: 0 errors|RACECHECK SUMMARY: 0 hazards)' "$T/$2.log"; then ok "$1$SHN"
    else nok "$1$SHN" "exit $rc: $(grep -m3 -E 'ERROR|Invalid|hazard' "$T/$2.log" | tr '\n' ' ')"; fi
}
SAN=0
[ "${DMABENCH_GPU_SANITIZE:-1}" = 1 ] && command -v compute-sanitizer >/dev/null 2>&1 && SAN=1
if [ $SAN = 1 ] && want sanitize; then
    # memcheck over verify of each variant, racecheck over dma's and nsa's (their
    # kernels share memory between warps the most), in parallel
    for v in mha swa dma nsa; do
        bg "memcheck-$v" compute-sanitizer --tool memcheck --error-exitcode 9 $B verify --backend cuda --variants $v --quiet \
            --shard "$SH" --out "$T/m-$v.json"
    done
    for v in dma nsa; do
        bg "racecheck-$v" compute-sanitizer --tool racecheck --error-exitcode 9 $B verify --backend cuda --variants $v \
            --quiet --shard "$SH" --out "$T/r-$v.json"
    done
    wait
    NJ=0
    for n in memcheck-mha memcheck-swa memcheck-dma memcheck-nsa racecheck-dma racecheck-nsa; do
        san_result "$(echo "$n" | tr '-' ' ')" "$n"
    done
fi
if [ $SAN = 1 ] && want sanitize-optin; then
    # memcheck for every other version; racecheck (about 3 minutes per run) for the
    # ones whose shared-memory use is new since the last sanitized run
    SOPT="memcheck:DMABENCH_NSA_TC=0:nsa memcheck:DMABENCH_CUDA_BWD_TILE=64+DMABENCH_CUDA_BWD_KEYPAR=0:mha,dma
memcheck:DMABENCH_DECODE_SEL_SAMPLE=0:dma racecheck:DMABENCH_DECODE_SEL_SAMPLE=0:dma
memcheck:DMABENCH_CUDA_BWD_KEYPAR=1:mha,swa racecheck:DMABENCH_CUDA_BWD_KEYPAR=1:mha,swa
memcheck:DMABENCH_CUDA_BWD_KEYPAR=0:mha,swa
memcheck:DMABENCH_NSA_TC_BWD=0:nsa memcheck:DMABENCH_NSA_PICK=argmax:nsa
memcheck:DMABENCH_NSA_CMP_BLK=1:nsa racecheck:DMABENCH_NSA_CMP_BLK=1:nsa memcheck:DMABENCH_NSA_CMP_BLK=0:nsa
memcheck:DMABENCH_CUDA_WGMMA=1:mha,dma racecheck:DMABENCH_CUDA_WGMMA=1:mha,dma
memcheck:DMABENCH_CUDA_WGMMA_BWD=0+DMABENCH_CUDA_BWD_KEYPAR=0:mha,dma racecheck:DMABENCH_CUDA_WGMMA_BWD=0+DMABENCH_CUDA_BWD_KEYPAR=0:mha,dma
memcheck:DMABENCH_NSA_SLC=union:nsa racecheck:DMABENCH_NSA_SLC=union:nsa memcheck:DMABENCH_NSA_SAVED=0:nsa memcheck:DMABENCH_DMA_SAVED=0:dma
memcheck:DMABENCH_DECODE_FUSED=0:dma memcheck:DMABENCH_DECODE_FUSED=1:dma racecheck:DMABENCH_DECODE_FUSED=1:dma
memcheck:DMABENCH_CUDA_BWD_W16=1:dma racecheck:DMABENCH_CUDA_BWD_W16=1:dma memcheck:DMABENCH_CUDA_BWD_WG_REDUCER=0+DMABENCH_CUDA_BWD_WG_OVERLAP=0:dma racecheck:DMABENCH_CUDA_BWD_WG_REDUCER=0+DMABENCH_CUDA_BWD_WG_OVERLAP=0:dma memcheck:DMABENCH_CUDA_BWD_WG_REDUCER=0:dma racecheck:DMABENCH_CUDA_BWD_WG_REDUCER=0:dma memcheck:DMABENCH_CUDA_FWD_WS=1:dma racecheck:DMABENCH_CUDA_FWD_WS=1:dma memcheck:DMABENCH_CUDA_FWD_WS=0:dma memcheck:DMABENCH_CUDA_FWD_TMA=0:dma memcheck:DMABENCH_CUDA_TILE_ORDER=none:dma memcheck:DMABENCH_CUDA_BWD_TMA=0:dma racecheck:DMABENCH_CUDA_BWD_TMA=0:dma memcheck:DMABENCH_CUDA_BWD_MC=0:dma memcheck:DMABENCH_NSA_PAIR_BWD_W8=1:nsa racecheck:DMABENCH_NSA_PAIR_BWD_W8=1:nsa
memcheck:DMABENCH_NSA_PAIR_FWD_SUB=1:nsa memcheck:DMABENCH_NSA_KEEP_LISTS=0+DMABENCH_NSA_BWD_ROWS=scalar:nsa"
    for o in $SOPT; do
        tool=${o%%:*} rest=${o#*:}
        sw=${rest%%:*} vs=${rest#*:}
        # shellcheck disable=SC2046
        bg "opt-$tool-$sw" env $(echo "$sw" | tr '+' ' ') compute-sanitizer --tool $tool --error-exitcode 9 $B verify --backend cuda \
            --variants "$vs" --quiet --shard "$SH" --out "$T/opt-$tool-$sw.json"
    done
    wait
    NJ=0
    for o in $SOPT; do
        tool=${o%%:*} rest=${o#*:}
        sw=${rest%%:*} vs=${rest#*:}
        san_result "$tool $vs with $sw" "opt-$tool-$sw"
    done
fi
[ $SAN = 1 ] || echo "# compute-sanitizer not run (not found, or DMABENCH_GPU_SANITIZE=0)"

if want verify; then
    $B kernels --backend cuda --variants mha,swa,dma --n 1024,4096 --w 256 --b 1 --hq 8 --hkv 2 --d 128 --dtype bf16 \
        --mode fwd,fwdbwd,decode --warmup 1 --repeats 3 --out "$T/k.json" >"$T/k.log" 2>&1
    rc=$?
    n=$(grep -c '"status":[[:space:]]*"ok"' "$T/k.json" 2>/dev/null)
    if [ $rc -eq 0 ] && [ "${n:-0}" -eq 18 ]; then ok "kernels sweep: 18 cells checked and timed"
    else nok "kernels sweep" "exit $rc, $n of 18 cells ok: $(tail -3 "$T/k.log" | tr '\n' ' ')"; fi
    # the probe: every op at 1 and 2 CTAs an SM, each run's adds counted back, the
    # gathers' layout and the products' accumulators checked
    $B probe --iters 8 --warmup 0 --repeats 1 --ctas-per-sm 1,2 --out "$T/probe.json" >"$T/probe.log" 2>&1
    rc=$?
    n=$(grep -c '"check":[[:space:]]*"ok"' "$T/probe.json" 2>/dev/null)
    want_n=22 # bulk, rows-tma, rows-tma2 and the wg-* products need sm_90: before it, their rows say unsupported
    grep -q '^| bulk .*unsupported' "$T/probe.log" && want_n=6
    if [ $rc -eq 0 ] && [ "${n:-0}" -eq $want_n ]; then ok "probe: the reductions, gathers and products at 1 and 2 CTAs an SM, every add counted, every layout and product checked"
    else nok "probe" "exit $rc, ${n:-0} of $want_n checks ok: $(grep -E 'FAILED|error' "$T/probe.log" | head -2 | tr '\n' ' ')"; fi
    # dma's selection time, from the operator's event spans read after each timed call
    ns=$(grep '"variant":"dma"' "$T/k.json.jsonl" 2>/dev/null | grep '"select_ms":{"median":' | grep -vc '"select_ms":{"median":0[,}]')
    if [ "${ns:-0}" -eq 6 ]; then ok "kernels sweep: select_ms above 0 in dma's 6 cells"
    else nok "kernels sweep select_ms" "${ns:-0} of dma's 6 cells have a select_ms above 0"; fi
    # dma's selects where the kept keys bunch, checked at full size: clustered and
    # rising z (rising: every kept key of a decode row in the last filter CTAs, past
    # their shared stage); w = 4096 at K = 70000 takes the exact select
    $B kernels --backend cuda --variants dma --n 70000,131072 --w 1024,4096 --b 1 --hq 8 --hkv 2 --d 128 --dtype bf16 \
        --mode decode --dma-z clustered,rising --check-n 131072 --warmup 1 --repeats 3 --out "$T/kz.json" >"$T/kz.log" 2>&1
    rc=$?
    n=$(grep -c '"status":[[:space:]]*"ok"' "$T/kz.json" 2>/dev/null)
    if [ $rc -eq 0 ] && [ "${n:-0}" -eq 8 ]; then ok "dma decode with bunched z: 8 cells checked at full size"
    else nok "dma decode with bunched z" "exit $rc, $n of 8 cells ok: $(tail -3 "$T/kz.log" | tr '\n' ' ')"; fi
    $B kernels --backend cuda --variants dma --n 2048 --w 1024 --b 1 --hq 8 --hkv 2 --d 128 --dtype bf16 \
        --mode fwd,fwdbwd --dma-z rising --check-n 2048 --warmup 1 --repeats 3 --out "$T/kr.json" >"$T/kr.log" 2>&1
    rc=$?
    n=$(grep -c '"status":[[:space:]]*"ok"' "$T/kr.json" 2>/dev/null)
    if [ $rc -eq 0 ] && [ "${n:-0}" -eq 2 ]; then ok "dma fwd and fwd+bwd with rising z: 2 cells checked"
    else nok "dma fwd and fwd+bwd with rising z" "exit $rc, $n of 2 cells ok: $(tail -3 "$T/kr.log" | tr '\n' ' ')"; fi
fi

# lib_races_only LOG [names]: racecheck reported hazards, every one of them
# between accesses inside cuBLAS(Lt)'s own kernels (nvjet_*, cutlass*, *xmma*: what
# the tuned GEMMs choose), none in ours, no other error, and the program's own
# checks all ok; with "names", prints the kernels named instead
lib_races_only() {
    acc=$(grep -E '(Race reported between|and (Read|Write) access at)' "$1" | sed -n 's/.* access at \([A-Za-z0-9_]*\)+0x.*/\1/p')
    [ -n "$acc" ] || return 1
    if [ "${2:-}" = names ]; then echo "$acc" | sort -u | tr '\n' ' '; return 0; fi
    echo "$acc" | grep -vqE '^(nvjet_|cutlass|[A-Za-z0-9_]*xmma)' && return 1
    grep -E '^========= (Error|Invalid|Program hit)' "$1" | grep -vq 'Error: Race reported between' && return 1
    grep -q '^not ok' "$1" && return 1
    grep -q '^ok - ' "$1"
}

# gpu_prog NAME PROG [SANITIZE]: a GPU test program, whose own ok/not ok lines
# count here (part model); with SANITIZE, under memcheck and racecheck (part sanitize)
TB=${DMABENCH_TESTS:-./build/tests}
gpu_prog() {
    name=$1 prog=$TB/$2 log=$T/$2.log
    # nothing to do in this part: the program runs in part model, and under the
    # sanitizers in part sanitize
    want model || { [ "${3:-}" = sanitize ] && [ $SAN = 1 ] && want sanitize; } || return
    if [ ! -x "$prog" ]; then nok "$name" "$prog not found (build it: make build/tests/$2)"; return; fi
    if want model; then
        DMABENCH_GPU=1 "$prog" >"$log" 2>&1
        rc=$?
        grep -E '^(ok|not ok) - ' "$log"
        if [ $rc -ne 0 ] && ! grep -q '^not ok - ' "$log"; then nok "$name" "exit $rc: $(tail -3 "$log" | tr '\n' ' ')"
        elif grep -q '^# skipped' "$log"; then nok "$name" "$(grep '^# skipped' "$log")"; fi
    fi
    [ "${3:-}" = sanitize ] && [ $SAN = 1 ] && want sanitize || return
    for tool in memcheck racecheck; do
        DMABENCH_GPU=1 compute-sanitizer --tool $tool --error-exitcode 9 "$prog" >"$log.$tool" 2>&1
        rc=$?
        if [ $rc -eq 0 ] && grep -qE '(ERROR SUMMARY: 0 errors|RACECHECK SUMMARY: 0 hazards)' "$log.$tool"; then ok "$name $tool"
        elif [ $tool = racecheck ] && lib_races_only "$log.$tool"; then
            ok "$name $tool (hazards only in cuBLAS's own kernels: $(lib_races_only "$log.$tool" names))"
        else nok "$name $tool" "exit $rc: $(grep -m3 -E 'ERROR|Invalid|hazard' "$log.$tool" | tr '\n' ' ')"; fi
    done
}
# the model's GPU ops (model/model_cuda.h) against the CPU ops
gpu_prog "model gpu ops" test_model_gpu sanitize
# the same ops with cuBLASLt's first heuristic answer for every GEMM (DMABENCH_GEMM_TUNE=0;
# by default each shape's algorithm is timed on its first call)
(DMABENCH_GEMM_TUNE=0 && export DMABENCH_GEMM_TUNE && T=$T/untuned && mkdir -p "$T" &&
    gpu_prog "model gpu ops, GEMMs untuned" test_model_gpu)
# the whole model on the GPU against the CPU model: one step, 200-step loss curves,
# checkpoints both ways, a batch too large for the card
gpu_prog "gpu model training" test_model_gpu_train

# the task runner on the GPU: train and score a tiny suite with --backend cuda
# (tests/run/tiny.json at d_model 32: head dim 16, which the CUDA kernels take)
want model || exit 0
sed 's/"d_model": 16/"d_model": 32/' tests/run/tiny.json >"$T/tiny32.json"
$B run "$T/tiny32.json" --backend cuda --out "$T/runcuda" --quiet >"$T/runcuda.log" 2>&1
rc=$?
n=$(grep -c '"status":"ok"' "$T/runcuda/records.jsonl" 2>/dev/null)
if [ $rc -eq 0 ] && [ "${n:-0}" -gt 0 ] && ! grep -q '"status":"failed"' "$T/runcuda/records.jsonl"; then
    ok "run --backend cuda: the tiny suite trained and scored on the GPU ($n records)"
else nok "run --backend cuda" "exit $rc, ${n:-0} ok records: $(tail -3 "$T/runcuda.log" | tr '\n' ' ')"; fi
# the same suite with the runner's needle decoding by full forwards instead of the
# GPU KV cache
DMABENCH_GPU_KV_CACHE=0 $B run "$T/tiny32.json" --backend cuda --only niah --out "$T/runkv" --quiet >"$T/runkv.log" 2>&1
rc=$?
n=$(grep -c '"status":"ok"' "$T/runkv/records.jsonl" 2>/dev/null)
if [ $rc -eq 0 ] && [ "${n:-0}" -gt 0 ] && ! grep -q '"status":"failed"' "$T/runkv/records.jsonl"; then
    ok "run --backend cuda --only niah with DMABENCH_GPU_KV_CACHE=0 ($n records)"
else nok "run --backend cuda --only niah with DMABENCH_GPU_KV_CACHE=0" "exit $rc, ${n:-0} ok records: $(tail -3 "$T/runkv.log" | tr '\n' ' ')"; fi
# generate --backend cuda (the GPU KV cache) on a tiny dma model trained on the CPU
$B train --config model/configs/tiny-dma.json --data README.md --out "$T/gck" --steps 30 --quiet >"$T/gck.log" 2>&1
out=$($B generate --model "$T/gck" --ids 116,104,101 --max-new 8 --print-ids --backend cuda 2>"$T/gen.err")
rc=$?
if [ $rc -eq 0 ] && echo "$out" | grep -Eq '^[0-9]+(,[0-9]+){7}$'; then ok "generate --backend cuda: 8 tokens ($out)"
else nok "generate --backend cuda" "exit $rc: '$out' $(tail -2 "$T/gck.log" "$T/gen.err" | tr '\n' ' ')"; fi
