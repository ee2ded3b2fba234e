#!/bin/sh
# One command: boot the VM once, run the fio matrix against every target,
# print IOPS/bandwidth and each figure's ratio to the kernel's fileio.
#   bench/vm-bench.sh [-o OUTDIR]
# Environment: TL_BENCH_RUNTIME, TL_BENCH_SIZE_MB, TL_BENCH_TARGETS
# (see bench/vm/fio-matrix.sh).  Absolute numbers under TCG mean little;
# ratios within one boot are what to compare.
set -eu
cd "$(dirname "$0")/.."
out=build/bench-out
[ "${1:-}" = "-o" ] && out=$2
cmake -S . -B build >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
rm -rf "$out"
tests/vm/run-vm.sh -q -t 5400 -b build -o "$out" bench/vm/fio-matrix.sh || {
	echo "vm-bench: the guest run failed; see $out/console.log" >&2
	exit 1
}
bench/vm/table.sh "$out/results.tsv"
