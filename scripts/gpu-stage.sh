#!/bin/sh
# gpu-stage.sh: copies what a GPU machine without the build's Debian libraries
# needs into one folder (default gpubuild/): the dmabench binary, lib/ (libcjson,
# found through the binary's $ORIGIN/lib rpath; the GPU machine has OpenBLAS,
# libcurl and libgomp) and the GPU test programs.
#   make && sh scripts/gpu-stage.sh [DIR]
# Then on the GPU machine:
#   DMABENCH=DIR/dmabench DMABENCH_TESTS=DIR/tests OUT=out sh scripts/gpu-check.sh [tests|sanitize|bench]
set -e
DIR=${1:-gpubuild}
B=${BUILD:-build}
[ -x "$B/dmabench" ] || { echo "gpu-stage: $B/dmabench not built (run make first)" >&2; exit 1; }
make --no-print-directory "$B/dmabench" "$B/tests/test_model_gpu" "$B/tests/test_model_gpu_train" >/dev/null
rm -rf "$DIR"
mkdir -p "$DIR/tests"
# without debug sections: the folder has to travel (the CUDA code stays)
strip --strip-debug -o "$DIR/dmabench" "$B/dmabench"
cp -r "$B/lib" "$DIR/lib"
for t in test_model_gpu test_model_gpu_train; do strip --strip-debug -o "$DIR/tests/$t" "$B/tests/$t"; done
# the test programs link the same way as dmabench: give them the libraries too
cp -r "$B/lib" "$DIR/tests/lib"
# the license corpus that the paper suites' needle and perplexity tasks read
# (/usr/share/common-licenses), for a GPU machine whose image lacks it
if [ -d /usr/share/common-licenses ]; then cp -r /usr/share/common-licenses "$DIR/licenses"; fi
du -sh "$DIR" | sed 's/^/gpu-stage: /'
