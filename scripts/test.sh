#!/bin/sh
# Run every test: C units and Lua specs (normal build), the same under
# ASan+UBSan, and the end-to-end suite on the real kernel in a qemu VM.
# Usage: scripts/test.sh [--no-vm]
set -eu
cd "$(dirname "$0")/.."
jobs=$(nproc 2>/dev/null || echo 2)
vm=ON
[ "${1:-}" = "--no-vm" ] && vm=OFF

echo "== build (warnings are errors)"
cmake -S . -B build -DTL_WERROR=ON -DTL_VM_TESTS=$vm >/dev/null
cmake --build build -j"$jobs"

echo "== build with AddressSanitizer + UndefinedBehaviorSanitizer"
cmake -S . -B build-asan -DTL_WERROR=ON -DTL_SANITIZE=ON -DTL_VM_TESTS=OFF \
	-DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build-asan -j"$jobs"

echo "== tests under sanitizers"
(cd build-asan && ctest --output-on-failure -L 'unit|lua')

echo "== all tests"
(cd build && ctest --output-on-failure)
