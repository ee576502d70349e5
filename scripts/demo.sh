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
# A default image made locally: Debian's static busybox in a rootfs directory.
root="$work/rootfs"
mkdir -p "$root/bin" "$root/etc" "$root/proc" "$root/sys" "$root/dev" "$root/tmp" "$root/www"
cp /bin/busybox "$root/bin/busybox"
for applet in sh echo ls cat sleep id env pwd uname httpd wget hostname ip ping nslookup; do
  ln -sf busybox "$root/bin/$applet"
done
echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
echo 'root:x:0:' >"$root/etc/group"
echo '<h1>hello from a hypr microVM</h1>' >"$root/www/index.html"

step image import "$root" busybox:latest
hypr image import "$root" busybox:latest
step images; hypr images

step run --rm busybox echo hello from a microVM
hypr run --rm busybox echo hello from a microVM

step run -d --name web -p 8080:80 busybox httpd -f -v -p 80 -h /www
hypr run -d --name web -p 8080:80 busybox httpd -f -v -p 80 -h /www
step ps; hypr ps
printf '\n\033[1m$ curl http://127.0.0.1:8080/\033[0m   (the port forward, from the host side)\n'
curl -s --max-time 5 --retry 15 --retry-delay 1 --retry-all-errors http://127.0.0.1:8080/
step exec web -- uname -a; hypr exec web -- uname -a
step exec web -- ip -4 addr show eth0
hypr exec web -- ip -4 addr show eth0
step run --rm busybox wget -qO- http://web.hypr/   "(another VM, by name)"
hypr run --rm busybox wget -qO- http://web.hypr/
step logs web "(httpd -v: a line per request)"; hypr logs web
step rm -f web; hypr rm -f web
step ps -a; hypr ps -a

kill -TERM "$pid"
wait "$pid"
status=$?
trap - EXIT INT TERM
rm -rf "$work"
printf '\nhyprd stopped cleanly (exit %s)\n' "$status"
