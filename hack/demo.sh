#!/usr/bin/env bash
# make demo: generate a small synthetic world, train the funnel's models on
# it with rectrain, serve it with recserve --stage=all on the embedded
# default (memory store, local files), replay the world's follows and events
# through the API, and print a real recommendation. No cluster needed.
#
# The world and models are kept in $RECPIPELINE_DEMO_DIR (bin/demo) and
# reused by later runs; delete the directory to start afresh.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
work=${RECPIPELINE_DEMO_DIR:-$root/bin/demo}
port=${RECPIPELINE_DEMO_PORT:-18080}
user=${RECPIPELINE_DEMO_USER:-u7}
bin=$work/bin
mkdir -p "$bin"

echo "==> Building recgen, rectrain, recserve, recbench"
(cd "$root" && go build -o "$bin/" ./runtime/cmd/recgen ./runtime/cmd/rectrain ./runtime/cmd/recserve ./runtime/cmd/recbench)

if [ ! -s "$work/world/events.jsonl" ]; then
  echo "==> Generating a synthetic world (2,000 users, 20,000 items, ~200,000 events)"
  rm -rf "$work/world"
  "$bin/recgen" -out "$work/world" -users 2000 -items 20000 -events 200000 -seed 1 -no-truth
fi
if [ ! -s "$work/models/mtml/manifest.json" ]; then
  echo "==> Training the two-tower, MTML and first-stage models"
  rm -rf "$work/models"
  "$bin/rectrain" -data "$work/world" -out "$work/models" -epochs 2 -seed 1
fi

sed -e "s#@WORLD@#$work/world#" -e "s#@MODELS@#$work/models#" "$root/hack/demo/config.json" > "$work/config.json"
rm -rf "$work/state"

echo "==> Starting recserve --stage=all on 127.0.0.1:$port"
"$bin/recserve" --config "$work/config.json" --state-dir "$work/state" --http-port "$port" --drain 100ms \
  > "$work/recserve.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do
  if curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; then break; fi
  if ! kill -0 $pid 2>/dev/null; then cat "$work/recserve.log"; echo "recserve exited" >&2; exit 1; fi
  sleep 0.2
done
curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null

echo "==> Replaying the world's follows and events through POST /v1/events"
"$bin/recbench" replay -url "http://127.0.0.1:$port" -data "$work/world"

echo "==> GET /v1/recommendations?user=$user&n=10&debug=true"
curl -fsS "http://127.0.0.1:$port/v1/recommendations?user=$user&n=10&debug=true" > "$work/recommendation.json"
if command -v python3 >/dev/null; then python3 -m json.tool "$work/recommendation.json"; else cat "$work/recommendation.json"; fi

echo "==> GET /v1/status"
curl -fsS "http://127.0.0.1:$port/v1/status"
echo
echo "Done. The world, models and config are in $work; recserve's log is $work/recserve.log."
