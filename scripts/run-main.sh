#!/bin/sh
# run-main.sh: what `make run` runs: the main job on its embedded default.
# For now that is `dmabench verify` over every built-in backend; its report goes
# to results/local/verify.json.
set -e
mkdir -p results/local
./build/dmabench verify --quiet --out results/local/verify.json
echo
echo "make run: the report is in results/local/verify.json"
