#!/bin/bash
#
# End-to-end test of the fault handler against the real kernel (runs
# inside the VM):   tests/vm/run-vm.sh tests/vm/e2e_fault.sh
#
#  1. medium errors on an LBA range: dd reads there fail, the kernel logs
#     MEDIUM ERROR, UNRECOVERED READ ERROR (03h/11h/00h), sg_dd shows the
#     failing LBA in the sense INFORMATION field; around the range, and
#     writes into it, everything works;
#  2. latency: 25 ms per read; `ctl stats` shows the reads' median latency
#     at or above it (a lower bound that cannot flake, not a timing);
#  3. writes after the 10th fail: dd stops after 10 blocks;
#  4. a command that never completes, on a backstore made through configfs
#     with a small cmd_time_out and TMR notification on:
#     - the SCSI command timer (sg_raw -t 2) fires first: the kernel aborts
#       the command, the TMR reaches the handler (the daemon logs it), the
#       command ends with TASK ABORTED;
#     - with a longer sg timeout, the backstore's cmd_time_out (4 s) fires:
#       the command fails back to the initiator;
#     - the faults cleared, I/O works: the device recovered.
#
# TL_DAEMON overrides the daemon command ("$TL_BUILD_DIR/tcmu-lua daemon").

. "${TL_VM_DIR:-$(dirname "$0")}/guest-lib.sh"

[ "${TL_IN_VM:-0}" = 1 ] || { echo "e2e_fault.sh runs inside the VM: use run-vm.sh" >&2; exit 2; }
tl_need_cmd modprobe sg_raw sg_dd dd

TL=${DAEMON[0]%/*}/tcmu-lua
LOG=$TL_OUT/daemon.log
CFG=/tmp/fault.yaml
SOCK=/run/tcmu-lua-fault.sock
HANGF=/tmp/hang.faults
WWN_MED=naa.5001405e2e000201
WWN_LAT=naa.5001405e2e000202
WWN_WR=naa.5001405e2e000203
HANG_WWN=

cleanup() {
    [ -n "$HANG_WWN" ] && tl_loop_remove "$HANG_WWN"
    [ -d "$TL_CFS/core/user_1/e2e_hang" ] && rmdir "$TL_CFS/core/user_1/e2e_hang"
    if tl_daemon_running; then
        tl_warn "daemon still running at exit: stopping it"
        tl_daemon_stop TERM
    fi
    tl_log "daemon log: $LOG"
}
tl_on_exit cleanup

ctl() { "$TL" ctl -s "$SOCK" "$@"; }
sg_of() { echo "/dev/$(ls /sys/block/"${1#/dev/}"/device/scsi_generic | head -n1)"; }

# ---------------------------------------------------------------------------
tl_section "setup"
check "target modules load" tl_load_target_modules || tl_finish
check "the daemon binary exists" test -x "${DAEMON[0]}" || tl_finish
: >"$LOG"
cat >"$CFG" <<EOF
daemon:
  workers: 1
  log_level: info
  control_socket: $SOCK
devices:
  - name: e2e_fmed
    handler: fault
    size: 32M
    options:
      inner: ram
      medium_errors: [ { lba: 4096, count: 16, kind: read } ]
    exports: { loop: { wwn: $WWN_MED } }
  - name: e2e_flat
    handler: fault
    size: 16M
    options: { inner: ram, latency: 25 }
    exports: { loop: { wwn: $WWN_LAT } }
  - name: e2e_fwr
    handler: fault
    size: 16M
    options: { inner: ram, fail_writes_after: 10 }
    exports: { loop: { wwn: $WWN_WR } }
EOF
tl_daemon_start_or_finish
MED=$(tl_loop_dev $WWN_MED) && LAT=$(tl_loop_dev $WWN_LAT) && WR=$(tl_loop_dev $WWN_WR) &&
    pass "three LUNs appeared" || { fail "three LUNs appeared"; tl_finish; }

# ---------------------------------------------------------------------------
tl_section "medium errors"
dmesg -c >/dev/null
check "dd read in the range fails (LBA 4100)" \
    sh -c "! dd if=$MED of=/dev/null bs=512 skip=4100 count=1 iflag=direct 2>/dev/null"
check "the kernel logged MEDIUM ERROR" sh -c "dmesg | grep -q 'Sense Key : Medium Error'"
check "... UNRECOVERED READ ERROR" sh -c "dmesg | grep -qi 'Unrecovered read error'"
sg_dd if="$(sg_of "$MED")" of=/dev/null bs=512 skip=4100 count=1 >"$TL_OUT/sg_dd.txt" 2>&1
tl_log "sg_dd: $(tr '\n' ' ' <"$TL_OUT/sg_dd.txt")"
check "sg_dd: unrecovered error at LBA 4100 (0x1004)" grep -qi 'at or after lba=4100' "$TL_OUT/sg_dd.txt"
sg_raw -v -r 512 "$(sg_of "$MED")" 28 00 00 00 10 04 00 00 01 00 >"$TL_OUT/sg_raw.txt" 2>&1
tl_log "sg_raw: $(tr '\n' ' ' <"$TL_OUT/sg_raw.txt" | cut -c1-300)"
check "sg_raw: MEDIUM ERROR, UNRECOVERED READ ERROR" \
    sh -c "grep -qi 'Sense key: Medium Error' '$TL_OUT/sg_raw.txt' && grep -qi 'Unrecovered read error' '$TL_OUT/sg_raw.txt'"
check "sg_raw: the failing LBA in INFORMATION (0x1004)" grep -qi 'info.*0x1004' "$TL_OUT/sg_raw.txt"
check "reads before the range work (LBA 4000..4095)" \
    dd if="$MED" of=/dev/null bs=512 skip=4000 count=96 iflag=direct status=none
check "reads after the range work (LBA 4112..)" \
    dd if="$MED" of=/dev/null bs=512 skip=4112 count=64 iflag=direct status=none
check "writes into the range work (kind = read)" \
    dd if=/dev/zero of="$MED" bs=512 seek=4100 count=4 oflag=direct status=none

# ---------------------------------------------------------------------------
tl_section "latency"
check "20 reads with 25 ms added" \
    dd if="$LAT" of=/dev/null bs=4096 count=20 skip=100 iflag=direct status=none
J=$(ctl --json stats e2e_flat 2>&1)
P50=$(grep -o '"read":{[^}]*}' <<<"$J" | grep -o '"p50_ns":[0-9]*' | cut -d: -f2)
READS=$(grep -o '"read":{[^}]*}' <<<"$J" | grep -o '"cmds":[0-9]*' | cut -d: -f2)
tl_log "e2e_flat reads: ${READS:-?}, p50 ${P50:-?} ns"
check "ctl stats: at least 20 reads" test "${READS:-0}" -ge 20
check "ctl stats: read median >= 25 ms" test "${P50:-0}" -ge 25000000

# ---------------------------------------------------------------------------
tl_section "writes fail after the 10th"
OUT=$(dd if=/dev/urandom of="$WR" bs=4096 count=20 oflag=direct 2>&1)
RC=$?
tl_log "dd: $(tr '\n' ' ' <<<"$OUT")"
check "dd of 20 writes fails" test $RC -ne 0
check "... after exactly 10 blocks" grep -q '^10+0 records out' <<<"$OUT"
check "reads still work" dd if="$WR" of=/dev/null bs=4096 count=20 iflag=direct status=none

# ---------------------------------------------------------------------------
tl_section "a command that never completes"
echo '{ hang = { { lba = 2000, count = 8 } } }' >"$HANGF"
if BS=$(tl_user_create e2e_hang "fault/inner=ram;control_file=$HANGF" $((16 << 20))); then
    pass "backstore e2e_hang made through configfs"
else
    fail "backstore e2e_hang made through configfs"
    tl_finish
fi
check "cmd_time_out = 4 s" tl_write "$BS/attrib/cmd_time_out" 4
check "tmr_notification on" tl_write "$BS/attrib/tmr_notification" 1
HANG_WWN=$(tl_loop_create "$BS") && HANG=$(tl_loop_dev "$HANG_WWN") &&
    pass "its LUN appeared ($HANG)" || { fail "its LUN appeared"; tl_finish; }
SG=$(sg_of "$HANG")
check "the hang faults were applied" tl_wait 10 grep -q "e2e_hang: faults from $HANGF applied" "$LOG"

# The SCSI command timer first (2 s < cmd_time_out): the midlayer aborts,
# tcm_loop sends ABORT TASK, TCMU passes it to the daemon.
OUT=$(sg_raw -t 2 -r 512 "$SG" 28 00 00 00 07 d0 00 00 01 00 2>&1)
RC=$?
tl_log "sg_raw -t 2: rc=$RC $(tr '\n' ' ' <<<"$OUT" | cut -c1-200)"
check "READ of a hung LBA does not complete (sg timeout)" test $RC -ne 0
check "the abort reached the handler (daemon log)" \
    tl_wait 20 grep -q 'e2e_hang: command [0-9]* (held by a hang) aborted by the kernel' "$LOG"

# Now the backstore's own timer: cmd_time_out (4 s) < sg timeout (30 s).
OUT=$(sg_raw -t 30 -r 512 "$SG" 28 00 00 00 07 d1 00 00 01 00 2>&1)
RC=$?
tl_log "sg_raw -t 30: rc=$RC $(tr '\n' ' ' <<<"$OUT" | cut -c1-200)"
check "READ of a hung LBA fails when cmd_time_out expires" test $RC -ne 0
check "... with the kernel's NOT READY, LOGICAL UNIT COMMUNICATION FAILURE" \
    grep -qi 'Logical unit communication failure' <<<"$OUT"

check "other LBAs still read" dd if="$HANG" of=/dev/null bs=512 skip=100 count=8 iflag=direct status=none
echo '{}' >"$HANGF"
check "faults cleared (control file)" tl_wait 10 sh -c "[ \$(grep -c 'e2e_hang: faults from' '$LOG') -ge 2 ]"
check "the hung LBA reads now: the device recovered" \
    dd if="$HANG" of=/dev/null bs=512 skip=2000 count=8 iflag=direct status=none
check "writes work too" dd if=/dev/zero of="$HANG" bs=4096 count=4 oflag=direct status=none
ctl stats e2e_hang | tee "$TL_OUT/stats-hang.txt"

# ---------------------------------------------------------------------------
tl_section "shutdown"
check "LUN of e2e_hang removed" tl_loop_remove "$HANG_WWN" && HANG_WWN=
check "backstore e2e_hang removed" rmdir "$TL_CFS/core/user_1/e2e_hang"
tl_daemon_stop TERM
check_eq "SIGTERM: daemon exits 0" 0 "$DSTATUS"
check "no handler errors logged" sh -c "! grep -q 'handler error' '$LOG'"
tl_finish
