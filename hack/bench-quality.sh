#!/usr/bin/env bash
# make bench-quality: recommendation quality measured from outside, through
# the served HTTP path, on an ID-only log (no item or user features, the
# shape of a public ratings log).
#
# It generates an ID-only world with recgen (5,000 users, 20,000 items,
# 1,000,000 log rows by default), trains it with rectrain (which writes the
# recserve config), and for each of two configs starts recserve
# --stage=all, replays the train part of the log through POST /v1/events
# and queries every test user (recbench eval):
#   funnel     the config rectrain wrote: four sources, both rankers, rules;
#   funnel-norules  the same without its rerank rules;
#   two-tower  the two-tower source alone: one TwoTowerANN source, no first
#              stage cut, the value the retrieval model's score only, no
#              rules.
#   two-tower-rules  the same with the funnel's rerank rules, so that both
#              lists obey the same author gap.
# Each prints NDCG@10, recall@10/100, precision@10 and coverage beside the
# popularity and random baselines; the figures go to $work/*.json.
#
# Environment: RECPIPELINE_QUALITY_DIR (bin/quality), QUALITY_USERS (5000),
# QUALITY_ITEMS (20000), QUALITY_EVENTS (1000000), QUALITY_FORMAT (jsonl, or
# movielens to train and evaluate on a ratings.csv), QUALITY_PORT (18090),
# RECSERVE_FLAGS (extra recserve flags, e.g. "--matmul-precision float32").
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
work=${RECPIPELINE_QUALITY_DIR:-$root/bin/quality}
users=${QUALITY_USERS:-5000}
items=${QUALITY_ITEMS:-20000}
events=${QUALITY_EVENTS:-1000000}
format=${QUALITY_FORMAT:-jsonl}
port=${QUALITY_PORT:-18090}
read -r -a recserve_flags <<<"${RECSERVE_FLAGS:-}"
bin=$work/bin
mkdir -p "$bin"

echo "==> Building recgen, rectrain, recserve, recbench"
(cd "$root" && go build -o "$bin/" ./runtime/cmd/recgen ./runtime/cmd/rectrain ./runtime/cmd/recserve ./runtime/cmd/recbench)

world=$work/world-$users-$items-$events
if [ ! -s "$world/events.jsonl" ]; then
  echo "==> Generating an ID-only world ($users users, $items items, $events rows)"
  rm -rf "$world"
  "$bin/recgen" -out "$world" -users "$users" -items "$items" -events "$events" -seed 3 -feature-dim 0 -format both -no-truth
fi
log=(-data "$world")
[ "$format" = movielens ] && log=(-movielens "$world/ratings.csv")
models=$work/models-$format-$users-$items-$events
if [ ! -s "$models/config.json" ]; then
  echo "==> Training (rectrain ${log[*]})"
  rm -rf "$models"
  train=(-data "${log[1]}")
  "$bin/rectrain" "${train[@]}" -out "$models" -epochs 2 -seed 1 | tr '\r' '\n' | grep -v 'ETA [1-9]'
fi

# The two-tower source alone: rectrain's config with one source, the first
# stage keeping every candidate and the value the retrieval score alone;
# with the funnel's rules and without any.
python3 - "$models/config.json" "$work" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
live = c["live"]
live["retrieval"]["sources"] = [s for s in live["retrieval"]["sources"] if s["type"] == "TwoTowerANN"]
live["firstStage"]["keep"] = live["retrieval"]["candidates"]
live["weights"] = {"two_tower_score": 1}
json.dump(c, open(sys.argv[2] + "/two-tower-rules.json", "w"), indent=2)
live["rerank"]["rules"] = []
json.dump(c, open(sys.argv[2] + "/two-tower.json", "w"), indent=2)
c = json.load(open(sys.argv[1]))
c["live"]["rerank"]["rules"] = []
json.dump(c, open(sys.argv[2] + "/funnel-norules.json", "w"), indent=2)
PY

pid=
trap 'if [ -n "$pid" ]; then kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; fi' EXIT
for variant in funnel funnel-norules two-tower-rules two-tower; do
  cfg=$models/config.json
  [ "$variant" != funnel ] && cfg=$work/$variant.json
  rm -rf "$work/state-$variant"
  "$bin/recserve" --config "$cfg" --state-dir "$work/state-$variant" --http-port "$port" --grpc-port $((port + 1)) --drain 100ms \
    ${recserve_flags[@]+"${recserve_flags[@]}"} > "$work/recserve-$variant.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 600); do
    if curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; then break; fi
    if ! kill -0 $pid 2>/dev/null; then cat "$work/recserve-$variant.log"; echo "recserve exited" >&2; exit 1; fi
    sleep 0.2
  done
  echo "==> $variant: recbench eval through http://127.0.0.1:$port"
  "$bin/recbench" eval -url "http://127.0.0.1:$port" "${log[@]}" -json "$work/$variant.json"
  kill $pid; wait $pid 2>/dev/null || true; pid=
done
echo "Figures in $work/{funnel,funnel-norules,two-tower-rules,two-tower}.json."
