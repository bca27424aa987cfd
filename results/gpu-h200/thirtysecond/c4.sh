#!/bin/sh
# p34c: the wgmma backward issues the next block's K/V copies (and, at a wrap, its key slots) after this block's S and dP
# wgmmas are committed, so that they run under the products (p34b: at the top of the block, before its barrier).
# Verify of the default (bf16, f16, query tiles forced) and of the wgmma opt-outs (WG_REDUCER=0, WG_OVERLAP=0);
# dma fwd+bwd A/B p34b vs p34c alternated, 3 rounds at 8192 and 1 at 65536, the new kernel's profile,
# then memcheck and racecheck over verify's dma grid.
for p in p34b p34c; do [ -d gpupack/$p ] || tar xJf gpupack/$p.tar.xz -C gpupack; done
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=4
A=./gpupack/p34b/dmabench B=./gpupack/p34c/dmabench
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader > $O/gpu.txt; cat $O/gpu.txt
v() { n=$1; e=$2; shift 2; env $e timeout 240 $B verify --backend cuda --quiet "$@" --out $O/v-$n.json > $O/v-$n.log 2>&1; echo "$?" > $O/v-$n.rc; }
v def-bf16 X=0 --dtype bf16 & v def-f16 X=0 --dtype f16 &
v kp0-bf16 DMABENCH_CUDA_BWD_KEYPAR=0 --dtype bf16 --variants mha,swa,dma,nsa &
v ov-bf16 "DMABENCH_CUDA_BWD_WG_REDUCER=0 DMABENCH_CUDA_BWD_KEYPAR=0" --dtype bf16 --variants mha,swa,dma,nsa &
v nov-bf16 "DMABENCH_CUDA_BWD_WG_REDUCER=0 DMABENCH_CUDA_BWD_WG_OVERLAP=0 DMABENCH_CUDA_BWD_KEYPAR=0" --dtype bf16 --variants mha,swa,dma,nsa &
v t64-bf16 "DMABENCH_CUDA_BWD_TILE=64 DMABENCH_CUDA_BWD_KEYPAR=0" --dtype bf16 --variants mha,dma &
v res0-bf16 DMABENCH_DMA_RESIDUAL=0 --dtype bf16 --variants dma &
wait; t verified
for f in $O/v-*.log; do n=$(basename $f .log); echo "$n rc=$(cat $O/$n.rc): $(grep passed $f | tail -1)"; done
tar czf $OUT/o.tgz -C $OUT o
AB="--backend cuda --dtype bf16 --warmup 2 --repeats 5 --check-n 0 --w 1024 --b 1 --hq 32 --hkv 8 --d 128 --mode fwdbwd --variants dma"
for r in 1 2 3; do for x in a b; do eval bin=\$$(echo $x | tr ab AB)
  DMABENCH=$bin OUT=$O/ab8k-$x-$r timeout 60 sh scripts/kernels-ab.sh 1 - -- $AB --n 8192 > /dev/null 2>&1
  echo "8192 round $r p34$(echo $x | tr ab bc): $(cut -f4 $O/ab8k-$x-$r/ab-medians.txt)"; done; done | tee $O/ab8k.txt
for x in a b; do eval bin=\$$(echo $x | tr ab AB)
  DMABENCH=$bin OUT=$O/ab65-$x timeout 60 sh scripts/kernels-ab.sh 1 - -- $AB --n 65536 --repeats 3 > /dev/null 2>&1
  echo "65536 p34$(echo $x | tr ab bc): $(cut -f4 $O/ab65-$x/ab-medians.txt)"; done | tee $O/ab65.txt
t timed
tar czf $OUT/o.tgz -C $OUT o
K="kernels --backend cuda --dtype bf16 --warmup 1 --repeats 1 --check-n 0 --w 1024 --b 1 --hq 32 --hkv 8 --d 128 --mode fwdbwd --variants dma --n 8192"
OUT=$O timeout 120 sh scripts/gpu-kernel-profile.sh kvu bwd_main_kernel 1 $B $K > $O/p-kvu.txt 2>&1; t profiled; tail -6 $O/p-kvu.txt
tar czf $OUT/o.tgz -C $OUT o
s() { n=$1; timeout 290 compute-sanitizer --tool $n --error-exitcode 9 $B verify --backend cuda --variants dma --quiet --out $O/s-$n.json > $O/s-$n.log 2>&1; echo "s-$n rc=$? $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY|passed' $O/s-$n.log | tail -2 | tr '\n' ' ')"; }
s memcheck & s racecheck & wait
t done
find $O -name '*.json' -size +100k -delete; find $O -name '*.jsonl' -delete
tar czf $OUT/o.tgz -C $OUT o
