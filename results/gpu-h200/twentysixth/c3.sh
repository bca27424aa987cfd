#!/bin/sh
# call 3 (twenty-sixth set): w3 (the weight gradients of K~ and V~ in one launch; the rows read dK~ in bf16) against
# w2 (main). Checks on w3: verify of nsa bf16/f16, with DMABENCH_NSA_CMP_BLK=0 (the fallback weight kernel) and
# CMP_WIDE=0; racecheck and memcheck of nsa's fwd+bwd cells; tests/gpu.sh's model part. Then nsa at the model's shape
# and training, w2/w3 alternated twice, and mha. Then the targets on w3 (w2 where w3 failed a check): mha fwd
# against SDPA in the same call; swa, dma at 8192 and 65536; nsa at 8192 and 65536; decode at K 524288; dma, swa, nsa
# at 131072 and 262144. Last, nsa's training step under Nsight Compute
for p in w2 w3; do [ -d gpupack/$p ] || tar xJf gpupack/$p.tar.xz -C gpupack; done
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
t() { echo "[$(( $(date +%s)-S0 ))s] $*"; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=2
A=./gpupack/w2/dmabench B=./gpupack/w3/dmabench
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader > $O/gpu.txt; cat $O/gpu.txt
okc() { grep -c '"status":[[:space:]]*"ok"' $1; }
(OMP_NUM_THREADS=4 DMABENCH_GPU=1 DMABENCH_GPU_PART=model DMABENCH=$B DMABENCH_TESTS=./gpupack/w3/tests DMABENCH_GPU_KEEP=$O/model-keep timeout 300 sh tests/gpu.sh > $O/gpu-model.log 2>&1; echo $? > $O/gpu-model.rc; t "model part done: $(grep -c '^ok' $O/gpu-model.log) ok, $(grep -c '^not ok' $O/gpu-model.log) not ok") &
v() { (env $2 timeout 200 $B verify --backend cuda --variants $3 --dtype $4 --quiet --out $O/v-$1.json > $O/v-$1.log 2>&1; echo $? > $O/v-$1.rc) & }
v bf16 X=0 nsa bf16; v f16 X=0 nsa f16; v blk0 DMABENCH_NSA_CMP_BLK=0 nsa bf16; v wide0 DMABENCH_NSA_CMP_WIDE=0 nsa f16
s() { (env $2 timeout 200 compute-sanitizer --tool $3 --error-exitcode 9 $B kernels --backend cuda --variants $4 --n 300,2048 --w 128 --b 1 --hq 8 --hkv 2 --d 128,64 --dtype $5 --mode fwdbwd --warmup 0 --repeats 1 --out $O/s-$1.json > $O/san-$1.log 2>&1; echo $? > $O/san-$1.rc) & }
s race X=0 racecheck nsa bf16; s mem X=0 memcheck nsa bf16; s memf16 X=0 memcheck nsa f16
wait
ok=1
for x in bf16 f16 blk0 wide0; do echo "verify $x rc=$(cat $O/v-$x.rc) $(grep '^verify:' $O/v-$x.log | tail -1)"; grep FAIL $O/v-$x.log | head -3; [ "$(cat $O/v-$x.rc)" = 0 ] || ok=0; done
for x in race mem memf16; do echo "$x rc=$(cat $O/san-$x.rc) $(grep 'SUMMARY' $O/san-$x.log) cells ok $(okc $O/s-$x.json)"; [ "$(cat $O/san-$x.rc)" = 0 ] || ok=0; done
grep '^not ok' $O/gpu-model.log && ok=0; grep -h "^# .*gpu vs cpu" $O/model-keep/test_model_gpu_train.log
tar czf $OUT/o.tgz -C $OUT o
t kernels
K="kernels --backend cuda --dtype bf16 --warmup 2 --repeats 5 --check-n 0"
k() { env $4 timeout ${5:-100} $2 $K $3 --out $O/k-$1.json > $O/k-$1.log 2>&1; echo "$1 rc=$? $(grep -E '^\| (mha|dma|swa|nsa)' $O/k-$1.log | cut -d"|" -f2,3,4,6,9,11,12 | tr '\n' ' ')"; }
NT="--mode fwd,fwdbwd --variants nsa --n 8192 --w 512 --b 2 --hq 6 --hkv 3 --d 128"
for r in 1 2; do k w2-nt-$r $A "$NT"; k w3-nt-$r $B "$NT"; done
tar czf $OUT/o.tgz -C $OUT o
t train
export OMP_NUM_THREADS=8
trn() { RUNS="$2" DMABENCH=$3 OUT=$O/train-$1 sh scripts/gpu-train-bench.sh 2>&1 | grep -v '^{' | grep -v H200 | sed "s/^/$1 /"; rm -f $O/train-$1/bytes.txt; tar czf $OUT/o.tgz -C $OUT o; }
trn w2 "nsa:8192:2" $A; trn w3 "nsa:8192:2" $B; trn w2-2 "nsa:8192:2" $A; trn w3-2 "nsa:8192:2" $B; trn mha "mha:8192:2" $B
t targets
export OMP_NUM_THREADS=4
[ $ok = 1 ] && T=$B || T=$A; echo "targets on $T"
P="--b 1 --hq 32 --hkv 8 --d 128"
k mha $T "--mode fwd --variants mha --n 8192 $P" X=0
k fb8k $T "--mode fwd,fwdbwd --variants swa,dma --n 8192 --w 1024 $P" X=0
k fb65 $T "--mode fwd,fwdbwd --variants swa,dma --n 65536 --w 1024 $P" X=0
k nsa8k $T "--mode fwd,fwdbwd --variants nsa --n 8192 --w 512 $P" X=0
k nsa65 $T "--mode fwd,fwdbwd --variants nsa --n 65536 --w 512 $P" X=0
k dec $T "--mode decode --variants mha,dma --n 524288 --w 1024 --warmup 5 --repeats 50 $P" X=0
tar czf $OUT/o.tgz -C $OUT o
timeout 100 python3 scripts/sdpa_anchor.py > $O/sdpa.json 2> $O/sdpa.log; echo "sdpa rc=$?"; head -4 $O/sdpa.log
tar czf $OUT/o.tgz -C $OUT o
t large
L="--warmup 1 --repeats 3"
k big-sd $T "--mode fwd,fwdbwd --variants swa,dma --n 131072,262144 --w 1024 $P $L" X=0 150
k big-nsa $T "--mode fwd,fwdbwd --variants nsa --n 131072,262144 --w 512 $P $L" X=0 150
tar czf $OUT/o.tgz -C $OUT o
t profile
DMABENCH=$B OUT=$O/prof timeout 90 sh scripts/gpu-train-profile.sh nsa 8192 2 > $O/prof.log 2>&1; echo "prof rc=$?"; grep -E "kernel time|cmp|compress|convert" $O/prof/profile-train-nsa-8192.txt 2>/dev/null | cut -c1-130
t done
rm -f $O/v-*.json; find $O -name '*.json' -size +300k -delete; find $O -name '*.jsonl' -delete; find $O -name '*.bin' -delete; find $O -name '*.safetensors' -delete; rm -f $O/prof/*.ncu-rep
tar czf $OUT/o.tgz -C $OUT o
