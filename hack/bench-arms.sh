#!/usr/bin/env bash
# Latency of recserve --stage=all with and without experiment arms, on a
# world of the e2e's size: a config without experiments (a) and one with a
# rollout's two arms at 25% each (b), alternated for ROUNDS rounds of a
# paced recbench load, a fresh server each. Prints one JSON report per run.
#
#   hack/bench-arms.sh            (WORK=/tmp/bench-arms ROUNDS=3 RATE=150 DURATION=30s)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
work=${WORK:-/tmp/bench-arms}
rounds=${ROUNDS:-3}
rate=${RATE:-150}
duration=${DURATION:-30s}
port=${PORT:-18383}
mkdir -p "$work"
cd "$root"
go build -o "$work/" ./runtime/cmd/recgen ./runtime/cmd/rectrain ./runtime/cmd/recserve ./runtime/cmd/recbench
cd "$work"
if [ ! -f world/catalog.jsonl ]; then
  ./recgen -out world -users 200 -items 2000 -events 20000 -seed 5 -no-truth >/dev/null
fi
if [ ! -f models/mtml/manifest.json ]; then
  ./rectrain -data world -out models -epochs 1 -allow-weak >train.log 2>&1
fi
sed -e "s#@WORLD@#$work/world#" -e "s#@MODELS@#$work/models#" "$root/hack/demo/config.json" >config-a.json
# The arms: a canary with its own weights and a baseline without overrides.
sed -e 's#^    "rerank": {#    "experiments": [{"name": "rollout-canary-x", "traffic": 0.25, "weights": {"like": 3.0}}, {"name": "rollout-baseline-x", "traffic": 0.25}],\n    "rerank": {#' config-a.json >config-b.json
grep -q rollout-canary config-b.json || { echo "failed to add the arms to the config" >&2; exit 1; }

for round in $(seq 1 "$rounds"); do
  for v in a b; do
    rm -rf "state-$v"
    ./recserve --config "config-$v.json" --state-dir "state-$v" --http-port "$port" --drain 100ms >"recserve-$v.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 300); do
      curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
      kill -0 $pid 2>/dev/null || { cat "recserve-$v.log"; exit 1; }
      sleep 0.2
    done
    report=$(./recbench load -url "http://127.0.0.1:$port" -data world -rate "$rate" -duration "$duration" -concurrency 8 -json 2>/dev/null || true)
    kill $pid; wait $pid 2>/dev/null || true
    echo "$v round $round: $report"
  done
done
