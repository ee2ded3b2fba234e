#!/bin/sh
# The soak (tests/vm/e2e_soak.sh) for as long as you like: several devices
# and handlers under fio verify, with handler reloads, resizes and traces,
# and the daemon's memory sampled every ~10 s.  CI runs it for 600 s.
#   bench/soak.sh [SECONDS] [-o OUTDIR]     # default 14400 (four hours)
# Environment: TL_SOAK_RSS_MIB (the allowed VmRSS growth after warm-up, 32).
# The samples end up in OUTDIR/rss.txt (seconds, VmRSS and RssAnon in KiB).
set -eu
cd "$(dirname "$0")/.."
secs=14400
out=build/soak-out
while [ $# -gt 0 ]; do
	case $1 in
	-o) out=$2; shift 2 ;;
	*) secs=$1; shift ;;
	esac
done
cmake -S . -B build >/dev/null
cmake --build build -j2 >/dev/null
rm -rf "$out"
# Boot, setup and the final verify take a few minutes under TCG.
TL_SOAK_SECONDS=$secs tests/vm/run-vm.sh -q -t $((secs + 1200)) -b build \
	-o "$out" tests/vm/e2e_soak.sh || {
	echo "soak: failed; see $out/console.log and $out/results.txt" >&2
	exit 1
}
grep -E 'RSS:|reloads' "$out/console.log"
