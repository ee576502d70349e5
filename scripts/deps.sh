#!/bin/sh
# Installs every Debian package that building, testing and the demo need.
# Idempotent and quiet when nothing is missing.
set -eu

PACKAGES="
  meson ninja-build pkg-config gcc clang clang-format musl-tools
  libuv1-dev libnghttp2-dev libhttp-parser-dev protobuf-c-compiler libprotobuf-c-dev protobuf-compiler
  libsqlite3-dev libjansson-dev libcmocka-dev libfyaml-dev
  libfuzzer-14-dev libclang-rt-14-dev
  python3-grpcio python3-protobuf python3-pytest
  procps iproute2 util-linux
  libcurl4-openssl-dev libarchive-dev libsquashfs-dev libssl-dev
  docker-registry skopeo umoci squashfs-tools squashfs-tools-ng busybox-static
  apache2-utils openssl zstd curl iperf3 socat dnsperf dnsmasq-base
  qemu-system-x86 zlib1g-dev liblzma-dev libzstd-dev
  libmnl-dev libnftables-dev nftables
  pci.ids debootstrap docker-compose prometheus
"

# VMs boot the host distribution's kernel: bring one only when there is none.
if ! ls /boot/vmlinuz-* >/dev/null 2>&1; then
  PACKAGES="$PACKAGES linux-image-amd64"
fi

missing=""
for p in $PACKAGES; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
  [ "$status" = "installed" ] || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "make deps: missing packages:$missing" >&2
  echo "make deps: run as root (or: sudo apt-get install$missing)" >&2
  exit 1
fi
echo "make deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends $missing >/dev/null
