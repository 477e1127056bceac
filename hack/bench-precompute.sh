#!/usr/bin/env bash
# Off-peak precompute measured from outside (BENCHMARKS.md, "Precomputed
# lists"):
#   BIN=<dir with recserve, recbench> WORLD=<recgen world> MODELS=<rectrain
#   output> hack/bench-precompute.sh
# Starts recserve (--stage all) on hack/demo/config.json with a precompute
# section for USERS users (u0..u<USERS-1>, listed in a users file), replays
# EVENTS events of the world, then measures the same loads over those users
# before and after one precompute run: 1 client closed loop (a hit's p50 and
# p99), and paced rates until p99 passes 50 ms (the closed-loop capacity).
# The run's throughput is users per CPU-second of recserve (its utime+stime
# from /proc). Traffic goes only to 127.0.0.1.
set -euo pipefail
: "${BIN:?BIN is the directory of recserve and recbench}" "${WORLD:?WORLD is a recgen world}" "${MODELS:?MODELS is a rectrain output}"
here=$(cd "$(dirname "$0")/.." && pwd)
USERS=${USERS:-10000}
EVENTS=${EVENTS:-500000}
PORT=${PORT:-18600}
RATES=${RATES:-"100 200 300 400 600 800 1200 1600 2400 3200"}
DURATION=${DURATION:-30s}
WORK=${WORK:-$(mktemp -d)}
url=http://127.0.0.1:$PORT
for tool in jq curl; do
  command -v "$tool" >/dev/null || { echo "$tool is required" >&2; exit 1; }
done

mkdir -p "$WORK"
seq 0 $((USERS - 1)) | sed 's/^/u/' > "$WORK/users.txt"
sed -e "s|@WORLD@|$WORLD|" -e "s|@MODELS@|$MODELS|" "$here/hack/demo/config.json" |
  jq --arg uri "file://$WORK/users.txt" '.live.precompute = {serve: "Always", ttl: "720h", size: 100, usersURI: $uri}' > "$WORK/config.json"
rm -rf "$WORK/state"
"$BIN/recserve" --config "$WORK/config.json" --stage all --http-port "$PORT" --state-dir "$WORK/state" > "$WORK/recserve.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
until curl -fs "$url/readyz" >/dev/null 2>&1; do
  kill -0 $pid 2>/dev/null || { cat "$WORK/recserve.log" >&2; exit 1; }
  sleep 0.5
done
echo "ready: $(grep -o '"loadSeconds":[0-9.]*' "$WORK/recserve.log")"
"$BIN/recbench" replay -url "$url" -data "$WORLD" -max-events "$EVENTS" > "$WORK/replay.txt" 2>&1
echo "replayed: $(tail -1 "$WORK/replay.txt")"

cpu() { # recserve's CPU seconds so far
  awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$pid/stat"
}
load() { # label, then recbench load flags
  local label=$1; shift
  "$BIN/recbench" load -url "$url" -user-prefix u -user-count "$USERS" -n 25 -warmup 2s -duration "$DURATION" -json -fail-on-error=false "$@" 2>/dev/null |
    jq -r --arg l "$label" '"\($l)\t\(.throughputRps | floor) req/s\tp50 \(.latencyMs.p50) ms\tp99 \(.latencyMs.p99) ms\tfailed \(.failed)\tshort \(.shortAnswers)"'
}
phase() { # name
  echo "== $1"
  load "1 client" -concurrency 1
  load "8 clients closed loop" -concurrency 8
  for r in $RATES; do
    line=$(load "paced $r req/s" -concurrency 32 -rate "$r")
    echo "$line"
    p99=$(awk -F'\t' '{print $4}' <<<"$line" | awk '{print $2}')
    awk -v p="$p99" 'BEGIN { exit !(p > 50) }' && break
  done
  curl -fsS "$url/v1/status" | jq -c '.precompute // {}'
}

phase "without precomputed lists"
c0=$(cpu); t0=$(date +%s.%N)
"$BIN/recserve" precompute --frontend "$url" --poll 200ms --result-file "" > "$WORK/run.json" 2> "$WORK/run.txt"
c1=$(cpu); t1=$(date +%s.%N)
jq -c . "$WORK/run.json"
awk -v u="$(jq .stored "$WORK/run.json")" -v c="$(echo "$c1 - $c0" | bc)" -v t="$(echo "$t1 - $t0" | bc)" \
  'BEGIN { printf "precompute: %d lists in %.1f s wall, %.1f CPU-s: %.0f users per CPU-second, %.0f per wall second\n", u, t, c, u / c, u / t }'
phase "with precomputed lists"
