#!/bin/sh
# call 8 (twenty-first set): main (n32). Nsight Compute's full set on one launch each: nsa's pairs backward and
# forward and the compression's forward at the 131M model's attention shape (B 2, Hq 6, Hkv 3, D 128, N 8192,
# random inputs), and dma's query-tile backward at the paper shape (N 8192)
O=$OUT/o; mkdir -p $O; S0=$(date +%s)
B=./gpupack/m/dmabench
TS="kernels --backend cuda --variants nsa --n 8192 --w 512 --b 2 --hq 6 --hkv 3 --d 128 --dtype bf16 --mode fwdbwd --warmup 0 --repeats 1 --check-n 0"
p() { OUT=$O timeout $1 sh scripts/gpu-kernel-profile.sh $2 $3 $4 $B $5 > $O/kp-$2.log 2>&1; echo "[$(( $(date +%s)-S0 ))s] $2 rc=$?"; cat $O/kp-$2.log | head -30; tar czf $OUT/o.tgz -C $OUT o; }
p 60 pairbwd nsa_slc_pair_bwd_sub_kernel 0 "$TS"
p 60 pairfwd nsa_slc_pair_kernel 0 "$TS"
p 50 compress nsa_compress_tc_kernel 0 "$TS"
p 60 dmabwd bwd_main_kernel 0 "kernels --backend cuda --variants dma --n 8192 --w 1024 --b 1 --hq 32 --hkv 8 --d 128 --dtype bf16 --mode fwdbwd --warmup 0 --repeats 1 --check-n 0"
