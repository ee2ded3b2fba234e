#!/bin/sh
# Set up and start tcmu-lua.
#   scripts/run.sh [CONFIG.yaml]
# Installs the packages, builds, and starts the daemon with the config
# (default examples/ram.yaml).  Where the kernel has no TCMU target (no
# configfs target, no target_core_user module), it starts the sandbox on
# the built-in kernel simulator instead, so the product works anywhere.
set -eu
cd "$(dirname "$0")/.."
config=${1:-examples/ram.yaml}

scripts/install-deps.sh --no-vm
cmake -S . -B build >/dev/null
cmake --build build -j"$(nproc 2>/dev/null || echo 2)"

has_target() {
	[ -d /sys/kernel/config/target ] && return 0
	[ "$(id -u)" -eq 0 ] || return 1
	modprobe target_core_user 2>/dev/null && modprobe tcm_loop 2>/dev/null &&
		{ mountpoint -q /sys/kernel/config ||
		  mount -t configfs configfs /sys/kernel/config; } &&
		[ -d /sys/kernel/config/target ]
}

if has_target; then
	echo "Kernel TCMU target found: starting the daemon with $config"
	exec build/tcmu-lua daemon -c "$config"
fi
echo "No kernel TCMU target here: starting the sandbox (simulated kernel)."
echo "Type 'help' for commands."
exec build/tcmu-lua sandbox "$config"
