#!/bin/sh
# Replays each fuzz target's seed corpus, then fuzzes it for a few seconds.
# usage: run.sh BUILD_DIR SECONDS
set -eu
build=$1
secs=${2:-10}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
found=0
for bin in "$build"/tests/fuzz/fuzz_*; do
  [ -f "$bin" ] && [ -x "$bin" ] || continue
  found=$((found + 1))
  name=$(basename "$bin" | sed 's/^fuzz_//')
  corpus="$work/$name"
  mkdir -p "$corpus"
  [ -d "$here/corpus/$name" ] && cp -r "$here/corpus/$name/." "$corpus/"
  printf 'fuzz %-20s ' "$name"
  if ! "$bin" -max_total_time="$secs" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
       -print_final_stats=0 "$corpus" >"$work/$name.log" 2>&1; then
    echo FAILED
    tail -n 60 "$work/$name.log"
    exit 1
  fi
  echo "ok ($(grep -c . "$work/$name.log" >/dev/null; ls "$corpus" | wc -l) corpus entries)"
done
[ "$found" -gt 0 ] || { echo "fuzz: no targets built in $build/tests/fuzz" >&2; exit 1; }
