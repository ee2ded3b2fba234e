#!/bin/sh
# Install every Debian package tcmu-lua needs to build, run and test.
# Usage: scripts/install-deps.sh [--no-vm]   (as root, or with sudo)
#   --no-vm  skip qemu and the Debian kernel used by the end-to-end suite
set -eu

build="cmake gcc make pkg-config libc6-dev linux-libc-dev
  luajit libluajit-5.1-dev libnl-3-dev libnl-genl-3-dev libev-dev
  libyaml-dev liburing-dev lua-busted lua-dkjson clang libclang-rt-14-dev
  qemu-utils"
vm="qemu-system-x86 linux-image-amd64 busybox-static kmod xz-utils
  fio sg3-utils e2fsprogs util-linux libiscsi-bin dmsetup"

pkgs="$build"
[ "${1:-}" = "--no-vm" ] || pkgs="$pkgs $vm"

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
# shellcheck disable=SC2086
if ! dpkg -s $pkgs >/dev/null 2>&1; then
	$SUDO apt-get update -qq
	# shellcheck disable=SC2086
	$SUDO apt-get install -y -qq --no-install-recommends $pkgs
fi
