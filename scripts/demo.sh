#!/bin/sh
# The README's demo: a hyprd in throwaway dirs inside its own network
# namespace, a few CLI commands against it, then a clean stop.
set -eu
build=${1:-build}
build=$(cd "$build" && pwd)

# Everything runs in a fresh network namespace: nothing touches the host's network.
if [ -z "${HYPR_DEMO_NETNS:-}" ]; then
  exec unshare -n env HYPR_DEMO_NETNS=1 sh "$0" "$build"
fi
ip link set lo up

work=$(mktemp -d /tmp/hypr-demo.XXXXXX)
sock="$work/run/hypr.sock"
hypr() { "$build/src/cli/hypr" -H "$sock" "$@"; }
step() { printf '\n\033[1m$ hypr %s\033[0m\n' "$*"; }

"$build/src/daemon/hyprd" --data-dir "$work/data" --run-dir "$work/run" >"$work/hyprd.log" 2>&1 &
pid=$!
cleanup() {
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

i=0
until hypr health >/dev/null 2>&1; do
  i=$((i + 1))
  if [ "$i" -gt 100 ] || ! kill -0 "$pid" 2>/dev/null; then
    echo "demo: hyprd did not become ready; its log:" >&2
    cat "$work/hyprd.log" >&2
    exit 1
  fi
  sleep 0.1
done

echo "hyprd is running (pid $pid, data dir $work/data)"
step health; hypr health
step ps -a; hypr ps -a
step images; hypr images
step network ls; hypr network ls
step system df; hypr system df
step run busybox echo hello
hypr run busybox echo hello || echo "(running VMs arrives with the VM issue)"

kill -TERM "$pid"
wait "$pid"
status=$?
trap - EXIT INT TERM
rm -rf "$work"
printf '\nhyprd stopped cleanly (exit %s)\n' "$status"
