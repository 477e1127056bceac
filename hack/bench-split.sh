#!/usr/bin/env bash
# Added latency of the split stages: the demo world served once by
# recserve --stage=all and once as four processes on loopback (frontend,
# retrieval, ranker-first, ranker-second talking gRPC), each measured with
# the same bounded single-client load. Run `make demo` first (it builds the
# world and the models).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
work=${RECPIPELINE_DEMO_DIR:-$root/bin/demo}
duration=${DURATION:-20s}
bin=$work/bin
[ -s "$work/models/mtml/manifest.json" ] || { echo "run make demo first" >&2; exit 1; }
(cd "$root" && go build -o "$bin/" ./runtime/cmd/recserve ./runtime/cmd/recbench)

run=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$run"; }
trap cleanup EXIT

wait_ready() {
  for _ in $(seq 1 300); do
    curl -fsS "http://127.0.0.1:$1/readyz" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  echo "port $1 not ready" >&2; return 1
}

config() { # $1: extra deploy JSON (endpoints)
  sed -e "s#@WORLD@#$work/world#" -e "s#@MODELS@#$work/models#" \
    -e "s#\"store\": {\"type\": \"Memory\"},#\"store\": {\"type\": \"Memory\"},$1#" "$root/hack/demo/config.json"
}

measure() { # $1: label, $2: frontend port
  "$bin/recbench" replay -url "http://127.0.0.1:$2" -data "$work/world" -max-events 50000 >/dev/null
  echo "== $1"
  "$bin/recbench" load -url "http://127.0.0.1:$2" -user-prefix u -user-count 2000 -concurrency 1 -duration "$duration" -warmup 2s
}

config "" > "$run/all.json"
"$bin/recserve" --config "$run/all.json" --state-dir "$run/all" --http-port 18200 >"$run/all.log" 2>&1 & pids+=($!)
wait_ready 18200
measure "--stage=all" 18200
kill "${pids[0]}"; wait "${pids[0]}" 2>/dev/null || true; pids=()

config ' "endpoints": {"retrieval": "127.0.0.1:19201", "ranker-first": "127.0.0.1:19202", "ranker-second": "127.0.0.1:19203"},' > "$run/split.json"
port=18201
for stage in retrieval ranker-first ranker-second; do
  grpc=$((port + 1000))
  "$bin/recserve" --stage "$stage" --config "$run/split.json" --state-dir "$run/$stage" --http-port "$port" --grpc-port "$grpc" >"$run/$stage.log" 2>&1 & pids+=($!)
  wait_ready "$port"
  port=$((port + 1))
done
"$bin/recserve" --stage frontend --config "$run/split.json" --state-dir "$run/frontend" --http-port 18210 >"$run/frontend.log" 2>&1 & pids+=($!)
wait_ready 18210
measure "split: frontend → retrieval, ranker-first, ranker-second over gRPC" 18210
