#!/bin/bash
#
# A handler stuck in a compiled Lua loop on the real kernel (runs inside
# the VM):   tests/vm/run-vm.sh tests/vm/e2e_watchdog.sh
#
# One worker serves two LUNs: a RAM disk, and a disk whose handler spins
# forever when LBA 4096 is read.  6 s after the read (lua_timeout_ms 4000:
# a first open takes over a second under TCG) the watchdog gives up on
# the worker: the read fails with an I/O error, so does every later one,
# `ctl status` names the device, handler and callback, and the RAM disk
# (moved to a fresh worker) keeps serving fio verify.  docs/reliability.md.

. "${TL_VM_DIR:-$(dirname "$0")}/guest-lib.sh"

[ "${TL_IN_VM:-0}" = 1 ] || { echo "e2e_watchdog.sh runs inside the VM: use run-vm.sh" >&2; exit 2; }
tl_need_cmd modprobe fio dd

TL=$TL_BUILD_DIR/tcmu-lua
LOG=$TL_OUT/daemon.log
CFG=/tmp/watchdog.yaml
SOCK=/run/tcmu-lua-wd.sock
WWN_RAM=naa.5001405c72000001
WWN_SPIN=naa.5001405c72000002

ctl() { "$TL" ctl -s "$SOCK" "$@"; }
cleanup() {
	if tl_daemon_running; then tl_daemon_stop KILL; fi
	return 0
}
tl_on_exit cleanup

tl_section "setup"
check "target modules load" tl_load_target_modules || tl_finish
cat >"$CFG" <<EOF2
daemon:
  control_socket: $SOCK
  workers: 1
  lua_timeout_ms: 4000
  handler_dirs: [$TL_SRC_DIR/tests/lua/handlers, $TL_SRC_DIR/lua/handlers]
devices:
  - name: wd_ram
    handler: ram
    size: 64M
    exports:
      loop: {wwn: $WWN_RAM}
  - name: wd_spin
    handler: hostile
    size: 64M
    options: {mode: good, spin_lba: 4096}
    exports:
      loop: {wwn: $WWN_SPIN}
EOF2
# Not under check: that would run it in a subshell and lose DPID.
if tl_daemon_start; then pass "the daemon is ready"; else fail "the daemon is ready"; tl_finish; fi
RAM=$(tl_loop_dev "$WWN_RAM") || { fail "no /dev/sdX for the RAM LUN"; tl_finish; }
SPIN=$(tl_loop_dev "$WWN_SPIN") || { fail "no /dev/sdX for the spinning LUN"; tl_finish; }
check "the spinning disk reads before LBA 4096" \
	dd if="$SPIN" of=/dev/null bs=512 count=8 iflag=direct
check "nothing is reported yet" sh -c "! $TL ctl -s $SOCK status | grep -q problem"

tl_section "the handler spins"
# The read enters the loop; the watchdog fails it after 1.5 s.
check "the read of LBA 4096 fails" \
	sh -c "! dd if=$SPIN of=/dev/null bs=512 skip=4096 count=1 iflag=direct 2>$TL_OUT/dd.err"
cat "$TL_OUT/dd.err"
# HARDWARE ERROR is a "critical target error": EREMOTEIO, not EIO.
check "with an I/O error" grep -Eq 'Remote I/O error|Input/output error' "$TL_OUT/dd.err"
check "the kernel saw the target error" sh -c "dmesg | grep -q 'critical target error, dev ${SPIN#/dev/}, sector 4096'"
ctl status | tee "$TL_OUT/status.txt"
check "ctl status names device, handler and callback" \
	grep -q '^problem: wd_spin: handler hostile stuck in dispatch for' "$TL_OUT/status.txt"
check "the log says the others move" grep -q "moving the worker's other devices" "$LOG"
check "the log says wd_ram was reopened" grep -q 'wd_ram: moved to a fresh worker' "$LOG"
check "the spinning disk now fails every read" \
	sh -c "! dd if=$SPIN of=/dev/null bs=512 count=1 iflag=direct 2>/dev/null"

tl_section "the neighbour serves"
fio --name=verify --filename="$RAM" --ioengine=libaio --direct=1 --rw=randwrite \
	--bs=4k --iodepth=8 --size=16M --verify=crc32c --do_verify=1 \
	--output="$TL_OUT/fio.txt"
check "fio verify on the RAM disk passes" grep -q 'err= 0' "$TL_OUT/fio.txt"
check "ctl devices still lists both" sh -c "$TL ctl -s $SOCK devices | grep -q wd_ram && $TL ctl -s $SOCK devices | grep -q wd_spin"
check "no hung task in the kernel log" sh -c "! dmesg | grep -q 'blocked for more than'"

tl_section "stop"
# The daemon removes both LUNs: the stuck device is removed like any other.
tl_daemon_stop
check_eq "the daemon exits 0 on SIGTERM" 0 "$DSTATUS"
check "it removed the stuck device's LUN" test ! -d "$TL_CFS/loopback/$WWN_SPIN"
tl_finish
