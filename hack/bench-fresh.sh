#!/usr/bin/env bash
# Followed authors' new items reaching a feed, measured from outside
# (BENCHMARKS.md, "Fresh items and full lists at 1,000,000 items"):
#   hack/bench-fresh.sh URL [TRIES] [USERS]
# For each try, a random user u<0..USERS-1> follows a new author, that author
# publishes a new item (one POST /v1/events, dated now), and the user's
# recommendations (n=25) are asked once a second for up to 60 s; prints the
# seconds until the item showed and its rank, or "never", and the share
# shown within 60 s. URL is a recserve frontend whose events need no token;
# traffic goes only where URL points (use 127.0.0.1).
set -euo pipefail
url=${1:?usage: hack/bench-fresh.sh URL [TRIES] [USERS]}; tries=${2:-20}; users=${3:-100000}
for tool in curl jq bc; do
  command -v "$tool" >/dev/null || { echo "$tool is required" >&2; exit 1; }
done
shown=0
for i in $(seq 1 "$tries"); do
  user="u$(( (RANDOM * 32768 + RANDOM) % users ))"
  author="fresh-a$i-$RANDOM"
  item="fresh-i$i-$RANDOM"
  now=$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ)
  body=$(jq -nc --arg u "$user" --arg a "$author" --arg it "$item" --arg t "$now" \
    '{events:[{user:$u,author:$a,type:"follow",time:$t},{item:$it,author:$a,type:"new_item",time:$t}]}')
  curl -fsS -o /dev/null -X POST -H 'Content-Type: application/json' --data "$body" "$url/v1/events"
  t0=$(date +%s.%N); found=never; rank=-
  for _ in $(seq 1 60); do
    r=$(curl -fsS "$url/v1/recommendations?user=$user&n=25")
    pos=$(jq -r --arg it "$item" '[.items[].id] | index($it) // empty' <<<"$r" 2>/dev/null || true)
    if [ -n "$pos" ]; then found="$(printf "%.2f" "$(echo "$(date +%s.%N) - $t0" | bc)") s"; rank=$((pos + 1)); shown=$((shown + 1)); break; fi
    sleep 1
  done
  echo "try $i user $user: shown after ${found} at rank $rank"
done
echo "shown within 60 s: $shown of $tries"
