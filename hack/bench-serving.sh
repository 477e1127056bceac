#!/usr/bin/env bash
# Serving figures of recserve on the 1,000,000-item world (BENCHMARKS.md,
# "recserve, 1,000,000-item world"), measured from outside in one run and
# printed as one markdown table.
#
# The world and the models are built once with BENCHMARKS.md's commands and
# reused while $WORK/world and $WORK/models exist (delete them to rebuild).
# rectrain writes the ANN index beside the two-tower model, which recserve
# loads at start; models cached without one (or with an index file of an
# older format) are indexed at every start, and the cold start line then
# names "Built the ANN index" ("recserve index --config" writes the file).
# Each run then: compiles and runs a fixed calibration benchmark; starts
# recserve --stage=all on a free loopback port with a fresh state directory
# and times process start to /readyz (cold start); replays the first 500,000
# events of the log; runs the load set with recbench, each 30 s after a 3 s
# warm-up:
#   (a)  1 client, back to back
#   (b)  8 clients paced at 300, 600 and 1,000 req/s (-rate)
#   (c)  8 clients, closed loop
#   (d)  8 clients, closed loop, with 50,000 events/s posted alongside
# and runs the calibration again. Beside each figure it records what makes it
# comparable later: the commit, the load average, the CPU the rest of the
# machine used meanwhile, recserve's CPU per request, its memory (VmRSS,
# VmHWM from /proc) at ready and after the load, and the calibration figure,
# so that a figure from another machine or day can be read as a ratio.
#
# All traffic goes to 127.0.0.1. Run it with nothing else of yours running:
# on two shared cores, a build elsewhere moves every figure.
#
# Usage:
#   hack/bench-serving.sh                        # binaries built from this tree
#   BIN=/path/to/bin WORK=/tmp/bench hack/bench-serving.sh > report.md
#
# Environment (default in brackets):
#   BIN            directory with recgen, rectrain, recserve and recbench
#                  [built from this tree into $WORK/bin]
#   WORK           world/, models/ (cached) and runs/<time>-<commit>/ with
#                  the raw reports [~/.cache/recpipeline/bench-serving]
#   COMMIT         label of the binaries when BIN is not inside a git tree
#   CONFIG         config template with @WORLD@ and @MODELS@ [hack/demo/config.json
#                  of BIN's tree, else of this tree]
#   PORT           HTTP port [the first free one from 18181]
#   DURATION       measured phase of each load [30s]
#   WARMUP         unmeasured warm-up before it [3s]
#   CLIENTS        workers of (b), (c), (d) [8]
#   RATES          paced rates of (b), req/s ["300 600 1000"]
#   EVENTS_RATE    events/s of (d) [50000]
#   REPLAY_EVENTS  events replayed before the load [500000]
#   RECSERVE_FLAGS extra recserve flags, e.g. "--max-concurrent 2" []
#   READY_TIMEOUT  seconds to wait for /readyz [1200]
#   BUILD_NICE     nice level of the world and model builds [19]
#   CALIBRATE      package of the calibration benchmark [./runtime/internal/model]
#   CALIBRATE_BENCH      its -bench pattern [^BenchmarkMTMLProduction$/^kernel$/^Predict$]
#   CALIBRATE_BENCHTIME  its -benchtime [2s], run 3 times, median reported
#   CALIBRATE_DIR  source tree the calibration is compiled from [BIN's tree,
#                  else this tree]; pin it to one old checkout to keep the
#                  calibration's code fixed while the code under test moves
#   KEEP_STATE     1 keeps recserve's state directory after the run [0]
#   WAIT_QUIET     seconds to wait at most, before starting, for a 10 s window
#                  in which the rest of the machine uses under 0.25 cores [0]
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
work=${WORK:-$HOME/.cache/recpipeline/bench-serving}
duration=${DURATION:-30s}
warmup=${WARMUP:-3s}
clients=${CLIENTS:-8}
rates=${RATES:-300 600 1000}
events_rate=${EVENTS_RATE:-50000}
replay_events=${REPLAY_EVENTS:-500000}
ready_timeout=${READY_TIMEOUT:-1200}
build_nice=${BUILD_NICE:-19}
calibrate=${CALIBRATE:-./runtime/internal/model}
calibrate_bench=${CALIBRATE_BENCH:-'^BenchmarkMTMLProduction$/^kernel$/^Predict$'}
calibrate_benchtime=${CALIBRATE_BENCHTIME:-2s}
read -r -a recserve_flags <<<"${RECSERVE_FLAGS:-}"

# BENCHMARKS.md's world and models; the cache is keyed by presence only.
# -allow-weak: one epoch on this world does not beat the popularity baseline
# (at e8788d4: two-tower recall@100 0.0041 against 0.0086), and rectrain
# then writes nothing; serving cost depends on the models' shapes, not on
# their quality.
recgen_args=(-users 100000 -items 1000000 -events 2000000 -seed 1 -no-truth -dim 16 -feature-dim 64)
# shellcheck disable=SC2054 # -hidden takes a comma-separated list
rectrain_args=(-epochs 1 -dim 64 -hidden 256,128 -allow-weak)
user_args=(-user-prefix u -user-count 100000)

log() { printf '%s  %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

for tool in curl jq ss go; do
  command -v "$tool" >/dev/null || die "$tool is required"
done
mkdir -p "$work"
work=$(cd "$work" && pwd)

# --- binaries, commit, source tree -----------------------------------------

if [ -z "${BIN:-}" ]; then
  BIN=$work/bin
  log "Building the commands from $root into $BIN"
  (cd "$root" && go build -o "$BIN/" ./runtime/cmd/recgen ./runtime/cmd/rectrain ./runtime/cmd/recserve ./runtime/cmd/recbench)
  tree=$root
else
  tree=$(git -C "$BIN" rev-parse --show-toplevel 2>/dev/null || true)
fi
BIN=$(cd "$BIN" && pwd)
for c in recgen rectrain recserve recbench; do
  [ -x "$BIN/$c" ] || die "$BIN/$c is missing"
done

if [ -n "$tree" ]; then
  commit=$(git -C "$tree" rev-parse --short HEAD)
  if [ -n "$(git -C "$tree" status --porcelain --untracked-files=no 2>/dev/null)" ]; then
    commit="$commit+dirty"
  fi
  commit_from="git in $tree"
else
  commit=${COMMIT:-unknown}
  commit_from="COMMIT"
fi
config_template=${CONFIG:-}
if [ -z "$config_template" ]; then
  config_template=$root/hack/demo/config.json
  if [ -n "$tree" ] && [ -f "$tree/hack/demo/config.json" ]; then
    config_template=$tree/hack/demo/config.json
  fi
fi
calibrate_dir=${CALIBRATE_DIR:-${tree:-$root}}

run=$work/runs/$(date +%Y%m%dT%H%M%S)-${commit//+/-}
mkdir -p "$run"
log "Run directory $run (commit $commit)"

# --- cleanup ------------------------------------------------------------------

server_pid=
cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 1 150); do
      kill -0 "$server_pid" 2>/dev/null || break
      sleep 0.2
    done
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  if [ "${KEEP_STATE:-0}" != 1 ]; then
    rm -rf "$run/state"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- world and models, built once ----------------------------------------------

world=$work/world
models=$work/models
build_once() { # $1: target dir, $2: stamp text, rest: command writing into $1.tmp
  local dir=$1 stamp=$2 t0 t1
  shift 2
  rm -rf "$dir.tmp"
  t0=$(date +%s)
  nice -n "$build_nice" /usr/bin/time -v -o "$run/$(basename "$dir")-build.time" "$@" >&2
  t1=$(date +%s)
  printf '%s\nbuilt %s in %d s with %s at %s; peak RSS %s kB\n' "$stamp" "$(date -u +%FT%TZ)" $((t1 - t0)) "$BIN" "$commit" \
    "$(awk -F': ' '/Maximum resident/ {print $2}' "$run/$(basename "$dir")-build.time")" >"$dir.tmp/.bench-serving"
  mv "$dir.tmp" "$dir"
}
if [ -s "$world/events.jsonl" ] && [ -s "$world/catalog.jsonl" ] && [ -s "$world/users.jsonl" ]; then
  log "Reusing the world in $world"
else
  log "Building the world in $world (recgen ${recgen_args[*]})"
  build_once "$world" "recgen ${recgen_args[*]}" "$BIN/recgen" -out "$world.tmp" "${recgen_args[@]}"
fi
if [ -s "$models/two-tower/manifest.json" ] && [ -s "$models/first-stage/manifest.json" ] && [ -s "$models/mtml/manifest.json" ]; then
  log "Reusing the models in $models"
else
  log "Training the models in $models (rectrain ${rectrain_args[*]}; at e8788d4 on 2 cores: about 23 minutes, 12 GiB peak)"
  build_once "$models" "rectrain ${rectrain_args[*]}" "$BIN/rectrain" -data "$world" -out "$models.tmp" "${rectrain_args[@]}"
fi

# --- measuring helpers -----------------------------------------------------------

clk_tck=$(getconf CLK_TCK)
now() { date +%s.%N; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
load1() { cut -d' ' -f1 /proc/loadavg; }
# CPU ticks of a process (user + system).
proc_ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }
# Busy CPU ticks of the whole machine, and the hypervisor's steal.
machine_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9, $9; exit}' /proc/stat; }
status_kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
gib() { awk -v kb="$1" 'BEGIN {printf "%.2f GiB", kb / 1048576}'; }
served_requests() {
  { curl -fsS "$url/metrics" || true; } | awk '/^recpipeline_http_request_duration_seconds_count\{/ && /handler="recommendations"/ {s += $NF} END {printf "%d", s}'
}

# calibrate LABEL: runs the calibration binary, prints "NAME median-ns min-ns max-ns" per benchmark.
calibrate_run() {
  (cd "$calibrate_dir/$calibrate" && "$run/calibrate.test" -test.run '^$' -test.bench "$calibrate_bench" \
    -test.benchtime "$calibrate_benchtime" -test.count 3) >"$run/calibrate-$1.txt" 2>&1 ||
    { log "calibration failed: see $run/calibrate-$1.txt"; return 0; }
  awk '/^Benchmark/ {for (i = 3; i <= NF; i++) if ($i == "ns/op") print $1, $(i - 1)}' "$run/calibrate-$1.txt" |
    sort -k1,1 -k2,2n | awk '
      function flush() { if (n) printf "%s %s %s %s\n", name, v[int((n + 1) / 2)], v[1], v[n] }
      $1 != name { flush(); name = $1; n = 0 }
      { v[++n] = $2 }
      END { flush() }'
}
fmt_ns() { awk -v ns="$1" 'BEGIN { if (ns >= 1e6) printf "%.3f ms", ns / 1e6; else printf "%.1f µs", ns / 1e3 }'; }
calibration_text() { # $1: calibrate_run output
  [ -n "$1" ] || { echo "n/a"; return; }
  while read -r name med lo hi; do
    printf '%s %s (min %s, max %s); ' "$name" "$(fmt_ns "$med")" "$(fmt_ns "$lo")" "$(fmt_ns "$hi")"
  done <<<"$1" | sed 's/; $//'
}

# --- a quiet machine, if asked ---------------------------------------------------

wait_quiet=${WAIT_QUIET:-0}
if [ "$wait_quiet" -gt 0 ]; then
  quiet_deadline=$(( $(date +%s) + wait_quiet ))
  while :; do
    read -r q0 _ < <(machine_ticks); sleep 10; read -r q1 _ < <(machine_ticks)
    busy=$(awk -v a="$q0" -v b="$q1" -v t="$clk_tck" 'BEGIN {printf "%.2f", (b - a) / t / 10}')
    if awk -v b="$busy" 'BEGIN {exit !(b < 0.25)}'; then
      log "The machine is quiet ($busy cores busy)"
      break
    fi
    if [ "$(date +%s)" -ge "$quiet_deadline" ]; then
      log "Not quiet after $wait_quiet s ($busy cores busy); going on"
      break
    fi
    log "Waiting for a quiet machine ($busy cores busy)"
  done
fi

# --- calibration, before ------------------------------------------------------------

log "Compiling the calibration benchmark ($calibrate in $calibrate_dir)"
calib_commit=$(git -C "$calibrate_dir" rev-parse --short HEAD 2>/dev/null || echo "?")
(cd "$calibrate_dir" && go test -c -o "$run/calibrate.test" "$calibrate") >&2
log "Calibrating (before)"
load_start=$(loadavg)
calib_before=$(calibrate_run before)

# --- recserve: cold start ------------------------------------------------------------

port=${PORT:-}
if [ -z "$port" ]; then
  port=18181
  while [ -n "$(ss -Hltn "sport = :$port")" ]; do port=$((port + 1)); done
fi
[ -z "$(ss -Hltn "sport = :$port")" ] || die "port $port is taken"
url=http://127.0.0.1:$port
sed -e "s#@WORLD@#$world#g" -e "s#@MODELS@#$models#g" "$config_template" >"$run/config.json"

log "Starting recserve on $url"
t_start=$(now)
"$BIN/recserve" --config "$run/config.json" --state-dir "$run/state" --http-port "$port" \
  ${recserve_flags[@]+"${recserve_flags[@]}"} >"$run/recserve.log" 2>&1 &
server_pid=$!
deadline=$(( $(date +%s) + ready_timeout ))
until curl -fsS -o /dev/null "$url/readyz" 2>/dev/null; do
  kill -0 "$server_pid" 2>/dev/null || { tail -20 "$run/recserve.log" >&2; die "recserve exited before it was ready"; }
  [ "$(date +%s)" -lt "$deadline" ] || die "recserve not ready after $ready_timeout s"
  sleep 0.2
done
t_ready=$(now)
cold=$(awk -v a="$t_start" -v b="$t_ready" 'BEGIN {printf "%.1f", b - a}')
load_ready=$(loadavg)
rss_ready=$(status_kb "$server_pid" VmRSS)
hwm_ready=$(status_kb "$server_pid" VmHWM)
# The steps recserve logs while loading (JSON lines with "seconds").
cold_steps=$(jq -R -r 'fromjson? | select(.seconds != null) |
  "\(.msg)\(if .model then " (" + .model + ")" else "" end) \(.seconds * 10 | round / 10) s"' \
  "$run/recserve.log" | paste -sd, - | sed 's/,/, /g')
# The second stage's precision (bfloat16 by default where the CPU has
# AVX-512 BF16): figures from machines without it are float32's.
precision=$(jq -R -r 'fromjson? | select(.msg == "Second stage products") | .precision' "$run/recserve.log" | head -1)
log "Ready after $cold s; RSS $(gib "$rss_ready")"

# --- replay -----------------------------------------------------------------------------

log "Replaying $replay_events events"
t0=$(now)
"$BIN/recbench" replay -url "$url" -data "$world" -max-events "$replay_events" >"$run/replay.txt" 2>&1 ||
  { tail -5 "$run/replay.txt" >&2; die "replay failed"; }
t1=$(now)
replay_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b - a}')
rss_replay=$(status_kb "$server_pid" VmRSS)

# --- load set -----------------------------------------------------------------------------

rows=()
# measure NAME LABEL [recbench load flags...]: one load, one table row.
measure() {
  local name=$1 label=$2 rc=0 la0 la1 w0 w1 s0 s1 m0 m1 st0 st1 r0 r1 bench_cpu notes
  shift 2
  log "Load $label"
  la0=$(load1); r0=$(served_requests); s0=$(proc_ticks "$server_pid"); read -r m0 st0 < <(machine_ticks); w0=$(now)
  /usr/bin/time -f '%U %S' -o "$run/$name.time" \
    "$BIN/recbench" load -url "$url" "${user_args[@]}" -duration "$duration" -warmup "$warmup" \
    -json -fail-on-error=false "$@" >"$run/$name.json" 2>"$run/$name.txt" || rc=$?
  w1=$(now); read -r m1 st1 < <(machine_ticks); s1=$(proc_ticks "$server_pid"); r1=$(served_requests); la1=$(load1)
  if ! kill -0 "$server_pid" 2>/dev/null; then
    rows+=("| $label | – | – | – | recserve died: see $run/recserve.log |")
    die "recserve died during $label"
  fi
  if [ "$rc" != 0 ] || ! jq -e . "$run/$name.json" >/dev/null 2>&1; then
    rows+=("| $label | – | – | – | recbench failed (exit $rc): $(tail -1 "$run/$name.txt") |")
    return 0
  fi
  bench_cpu=$(tail -1 "$run/$name.time" | awk '{print $1 + $2}')
  notes=$(jq -r \
    --argjson cpu "$(awk -v a="$s0" -v b="$s1" -v t="$clk_tck" 'BEGIN {print (b - a) / t}')" \
    --argjson req "$((r1 - r0))" \
    --argjson wall "$(awk -v a="$w0" -v b="$w1" 'BEGIN {print b - a}')" \
    --argjson busy "$(awk -v a="$m0" -v b="$m1" -v t="$clk_tck" 'BEGIN {print (b - a) / t}')" \
    --argjson steal "$(awk -v a="$st0" -v b="$st1" -v t="$clk_tck" 'BEGIN {print (b - a) / t}')" \
    --argjson bench "$bench_cpu" --arg la "$la0→$la1" '
    def r(p): . * p | round / p;
    [ "p90 \(.latencyMs.p90 | r(100)) ms, max \(.latencyMs.max | r(10)) ms",
      (if .rate and .throughputRps < 0.98 * .rate then "**below the asked \(.rate) req/s**" else empty end),
      (if .events then "events \(.events.perSecond | round)/s of \(.events.target | round) asked, \(.events.failed) failed" else empty end),
      (if .failed > 0 then "**\(.failed) failed** (\(.failures | to_entries | map("\(.key): \(.value)") | join(", ")))" else empty end),
      (if .itemsPerAnswer < .n then "\(.itemsPerAnswer) items/answer" else empty end),
      (if $req > 0 then "server CPU \($cpu * 1000 / $req | r(100)) ms/req\(if .events then " (incl. events)" else "" end)" else empty end),
      "others \(($busy - $cpu - $bench) / $wall | if . < 0 then 0 else . end | r(100)) cores\(if $steal > 0.01 * $wall then ", steal \($steal / $wall | r(100))" else "" end)",
      "load \($la)"
    ] | join("; ")' "$run/$name.json")
  rows+=("$(jq -r --arg lbl "$label" --arg notes "$notes" '
    "| \($lbl) | \(.throughputRps * 10 | round / 10) | \(.latencyMs.p50 * 100 | round / 100) ms | \(.latencyMs.p99 * 100 | round / 100) ms | \($notes) |"' \
    "$run/$name.json")")
}

measure a "(a) 1 client" -concurrency 1
for rate in $rates; do
  measure "b-$rate" "(b) $clients clients paced at $rate req/s" -concurrency "$clients" -rate "$rate"
done
measure c "(c) $clients clients, closed loop" -concurrency "$clients"
measure d "(d) closed loop + $events_rate events/s" -concurrency "$clients" -events-rate "$events_rate" -data "$world"

rss_load=$(status_kb "$server_pid" VmRSS)
hwm_load=$(status_kb "$server_pid" VmHWM)
cleanup
server_pid=

log "Calibrating (after)"
calib_after=$(calibrate_run after)
rm -f "$run/calibrate.test"
load_end=$(loadavg)

# --- report --------------------------------------------------------------------------------

{
  echo "### recserve, 1,000,000-item world: hack/bench-serving.sh"
  echo
  echo "- commit **$commit** (from $commit_from), binaries $BIN; $(go version "$BIN/recserve" | awk '{print $NF}'), $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo) × $(nproc), $(date -u '+%F %H:%M UTC')"
  for d in "$world" "$models"; do
    if [ -f "$d/.bench-serving" ]; then
      echo "- $d: $(paste -sd' ' "$d/.bench-serving")"
    else
      echo "- $d: built outside this script (no .bench-serving stamp)"
    fi
  done
  echo "- calibration, $calibrate at $calib_commit ($calibrate_dir), median of 3 × $calibrate_benchtime: before $(calibration_text "$calib_before"); after $(calibration_text "$calib_after")"
  echo "- load average (1, 5, 15 min): start $load_start; recserve ready $load_ready; end $load_end"
  echo "- recserve flags: --stage=all (default), memory store${RECSERVE_FLAGS:+, $RECSERVE_FLAGS}; second stage in ${precision:-float32 (not logged)}; each load $duration after a $warmup warm-up; $replay_events events replayed first"
  echo
  echo "| measure | req/s | p50 | p99 | notes |"
  echo "|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
  echo
  echo "- cold start, process start → /readyz: **$cold s** ($cold_steps)"
  echo "- replay of $replay_events events: $replay_s s ($(awk -v n="$replay_events" -v s="$replay_s" 'BEGIN {printf "%d", n / s}') events/s)"
  echo "- memory: RSS at ready **$(gib "$rss_ready")** ($rss_ready kB, VmHWM $hwm_ready kB); after the replay $(gib "$rss_replay"); after the load **$(gib "$rss_load")** ($rss_load kB, VmHWM $hwm_load kB)"
  echo "- raw reports: $run"
} | tee "$run/report.md"
