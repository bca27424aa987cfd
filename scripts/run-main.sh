#!/bin/sh
# run-main.sh: what `make run` runs: the main job on its embedded default suite
# (suites/quick.json): every attention variant trained and scored on MQAR,
# needle in a haystack and perplexity, plus a small kernel profile; about 10
# minutes on 2 cores. An interrupted `make run` resumes where it stopped; after
# a finished one (tables.md present), `make run` starts a fresh run.
# `dmabench verify` (every backend against the reference) stays available.
set -e
out=results/local/quick
fresh=
[ -e "$out/tables.md" ] && fresh=--fresh
./build/dmabench run --out "$out" $fresh
echo
echo "make run: tables in $out/tables.md, report in $out/report.json (records streamed to $out/records.jsonl)"
echo "          a fresh run: rm -rf $out; docs/run.md explains the tables"
