#!/usr/bin/env bash
# rectrain at the catalog's scale (BENCHMARKS.md, "rectrain at 10k, 100k
# and 1M items"):
#   hack/bench-rectrain.sh            # all three sizes
#   SIZES="10k 100k" hack/bench-rectrain.sh
# For each size it writes a recgen world once (cached under WORK, default
# /tmp/recpipeline-bench-rectrain): 10k items, 1k users, 20k events; 100k
# items, 10k users, 200k events; 1M items, 100k users, 2M events (64
# features per item and user, an author per 20 items), then trains one epoch
# as BENCHMARKS.md's serving figures do (-epochs 1 -dim 64 -hidden 256,128)
# under /usr/bin/time, and prints a table: wall time, CPU seconds, peak RSS
# and rectrain's own phases. Nothing else should run meanwhile. The binaries
# are built from this tree into $WORK/bin each run (KEEP_BIN=1 reuses them).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
WORK=${WORK:-/tmp/recpipeline-bench-rectrain}
SIZES=${SIZES:-"10k 100k 1M"}
BIN=${BIN:-$WORK/bin}
command -v /usr/bin/time >/dev/null || { echo "/usr/bin/time is required (apt-get install time)" >&2; exit 1; }
mkdir -p "$WORK" "$BIN"
if [ ! -x "$BIN/rectrain" ] || [ -z "${KEEP_BIN:-}" ]; then
  (cd "$here" && go build -o "$BIN/" ./runtime/cmd/recgen ./runtime/cmd/rectrain)
fi
commit=$(cd "$here" && git rev-parse --short HEAD 2>/dev/null || echo unknown)

rows=()
for size in $SIZES; do
  case $size in
    10k) users=1000 items=10000 events=20000 ;;
    100k) users=10000 items=100000 events=200000 ;;
    1M) users=100000 items=1000000 events=2000000 ;;
    *) echo "unknown size $size (want 10k, 100k or 1M)" >&2; exit 1 ;;
  esac
  world=$WORK/world-$size
  if [ ! -d "$world" ]; then
    "$BIN/recgen" -out "$world.tmp" -users $users -items $items -events $events \
      -seed 1 -no-truth -dim 16 -feature-dim 64 > "$WORK/recgen-$size.log"
    mv "$world.tmp" "$world"
  fi
  out=$WORK/models-$size
  rm -rf "$out"
  echo "==> $size: rectrain (log in $WORK/rectrain-$size.log)"
  /usr/bin/time -v "$BIN/rectrain" -data "$world" -out "$out" -epochs 1 -dim 64 -hidden 256,128 -allow-weak \
    > "$WORK/rectrain-$size.log" 2> "$WORK/time-$size.log"
  wall=$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$WORK/time-$size.log")
  user=$(sed -n 's/.*User time (seconds): //p' "$WORK/time-$size.log")
  sys=$(sed -n 's/.*System time (seconds): //p' "$WORK/time-$size.log")
  rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$WORK/time-$size.log")
  cpu=$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.0f", u + s }')
  gib=$(awk -v k="$rss" 'BEGIN { printf "%.2f", k / 1048576 }')
  phases=$(sed -n 's/^phase \([^:]*\): \([^,]*\),.*/\1 \2/p' "$WORK/rectrain-$size.log" | paste -sd ';' | sed 's/;/; /g')
  rows+=("| $size | $users | $events | $wall | $cpu | $gib | $phases |")
done

echo
echo "rectrain -epochs 1 -dim 64 -hidden 256,128 at $commit, $(nproc) CPUs ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1))"
echo
echo "| items | users | events | wall | CPU-s | peak RSS GiB | phases |"
echo "|---|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
