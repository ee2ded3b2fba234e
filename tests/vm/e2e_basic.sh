#!/bin/bash
#
# End-to-end test of `tcmu-lua daemon` against the real kernel (runs inside
# the VM):
#   tests/vm/run-vm.sh tests/vm/e2e_basic.sh
#
#  1. a bad config is refused with file:line:column, and nothing is created;
#  2. from YAML the daemon creates a ram and a file device behind tcm_loop
#     (and the file device behind iSCSI too); their /dev/sdX appear;
#  3. INQUIRY, READ CAPACITY, a dd round trip, fio crc32c verify; the
#     daemon uses no CPU once the I/O is over;
#  4. mkfs.ext4, mount, write, umount, fsck -n, read back;
#  5. resize through attrib/dev_size, seen after a SCSI rescan;
#  6. a backstore made by hand (as targetcli does) is served, and removed
#     both idle and under I/O; a bad handler or empty dev_config is refused
#     at once instead of hanging the configfs write;
#  7. SIGKILL of the daemon during fio, restart: fio's verify is clean;
#  8. the iSCSI export answers libiscsi's iscsi-ls/iscsi-inq on loopback;
#  9. SIGTERM removes everything the daemon created; the modules unload.
#
# TL_DAEMON overrides the daemon command ("$TL_BUILD_DIR/tcmu-lua daemon").

. "${TL_VM_DIR:-$(dirname "$0")}/guest-lib.sh"

[ "${TL_IN_VM:-0}" = 1 ] || { echo "e2e_basic.sh runs inside the VM: use run-vm.sh" >&2; exit 2; }
tl_need_cmd modprobe sg_inq sg_readcap dd cmp blockdev fio mkfs.ext4 e2fsck

LOG=$TL_OUT/daemon.log
CFG=/tmp/e2e.yaml
IMG=/tmp/e2e-file.img
WWN_RAM=naa.5001405e2e000001
WWN_FILE=naa.5001405e2e000002
IQN=iqn.2003-01.org.linux-iscsi.tcmu-lua:e2e
RAM_SIZE=$((64 << 20))
FILE_SIZE=$((256 << 20))
SOCK=/run/tcmu-lua-e2e.sock

# --- the daemon -----------------------------------------------------------------




cleanup() {
    if tl_daemon_running; then
        tl_warn "daemon still running at exit: stopping it"
        tl_daemon_stop TERM
    fi
    umount /tmp/e2e-mnt 2>/dev/null
    tl_log "daemon log: $LOG"
}
tl_on_exit cleanup

# lba_pattern FILE MIB: a random pattern to write and compare.
pattern() { dd if=/dev/urandom of="$1" bs=1M count="$2" status=none; }

# roundtrip DEV SEEK_MIB FILE: write FILE at SEEK_MIB MiB, read it back.
roundtrip() {
    local mib
    mib=$(($(stat -c %s "$3") >> 20))
    dd if="$3" of="$1" bs=1M seek="$2" oflag=direct status=none &&
        dd if="$1" bs=1M skip="$2" count="$mib" iflag=direct status=none | cmp - "$3"
}

fio_verify() { # NAME DEV [FIO ARGS...]: write with crc32c, then verify it all
    local name=$1 dev=$2
    shift 2
    fio --name="$name" --filename="$dev" --ioengine=libaio --direct=1 \
        --verify=crc32c --verify_fatal=1 --do_verify=1 --randrepeat=0 \
        --output="$TL_OUT/fio-$name.txt" "$@"
}

daemon_log_has() { grep -q -- "$1" "$LOG"; }

# ---------------------------------------------------------------------------
tl_section "setup"
check "target modules load" tl_load_target_modules || tl_finish
check "the daemon binary exists" test -x "${DAEMON[0]}" || tl_finish
: >"$LOG"
rm -f "$IMG"

cat >"$CFG" <<EOF
daemon:
  workers: 2
  log_level: info
  control_socket: $SOCK
devices:
  - name: e2e_ram
    handler: ram
    size: $RAM_SIZE
    hw_max_sectors: 1024
    exports:
      loop: {wwn: $WWN_RAM}
  - name: e2e_file
    handler: file
    size: 256M
    write_cache: true
    data_pages_per_blk: 2
    cmd_time_out: 45
    options:
      path: $IMG
      create: true
    exports:
      loop: {wwn: $WWN_FILE}
      iscsi: {iqn: '$IQN', portal: '127.0.0.1:3260'}
EOF

# ---------------------------------------------------------------------------
tl_section "bad configuration"
cat >/tmp/e2e-bad.yaml <<EOF
devices:
  - name: good
    handler: ram
    size: 1M
  - name: bad
    handler: ram
    size: 12 parsecs
EOF
OUT=$("${DAEMON[@]}" -c /tmp/e2e-bad.yaml 2>&1)
RC=$?
check_eq "bad config: exit status 1" 1 "$RC"
check_eq "bad config: message names file:line:column and key" \
    "/tmp/e2e-bad.yaml:7:11: devices[1].size: expected a size like 64M" "$OUT"
check "bad config: nothing created in configfs" test ! -e "$TL_CFS/core/user_1"
check "--check accepts the good config" "${DAEMON[@]}" -c "$CFG" --check

# A handler that refuses its device at start: all or nothing.
cat >/tmp/e2e-refused.yaml <<EOF
devices:
  - name: first
    handler: ram
    size: 1M
    exports:
      loop: true
  - name: second
    handler: file
    size: 1M
    options: {path: /nonexistent/dir/x.img, create: true}
EOF
"${DAEMON[@]}" -c /tmp/e2e-refused.yaml >>"$LOG" 2>&1
check_eq "handler refuses at start: exit status 1" 1 $?
check "handler refuses at start: the reason is logged" daemon_log_has "cannot open /nonexistent/dir/x.img"
check "handler refuses at start: nothing left in configfs" \
    sh -c "[ ! -e $TL_CFS/core/user_1 ] && ! ls $TL_CFS/loopback 2>/dev/null | grep -q naa"

# ---------------------------------------------------------------------------
tl_section "start from YAML"
tl_daemon_start_or_finish
SD_RAM=$(tl_loop_dev $WWN_RAM 0 60) && pass "ram device $SD_RAM appeared" ||
    fail "ram device appeared"
SD_FILE=$(tl_loop_dev $WWN_FILE 0 60) && pass "file device $SD_FILE appeared" ||
    fail "file device appeared"
check "backstore enabled" grep -q 1 "$TL_CFS/core/user_1/e2e_ram/enable"
check_eq "dev_config of the file device" "file/path=$IMG;create=true" \
    "$(cat "$TL_CFS/core/user_1/e2e_file/attrib/dev_config")"
check "image file created" test -f "$IMG"
check_eq "hw_max_sectors defaults to 1 MiB" 2048 \
    "$(cat "$TL_CFS/core/user_1/e2e_file/attrib/hw_max_sectors")"
check_eq "data_pages_per_blk from YAML" 2 \
    "$(cat "$TL_CFS/core/user_1/e2e_file/attrib/data_pages_per_blk")"
check "the fast path has io_uring" sh -c "! grep -q 'no io_uring' '$LOG'"
check_eq "cmd_time_out from YAML" 45 \
    "$(cat "$TL_CFS/core/user_1/e2e_file/attrib/cmd_time_out")"
check_eq "aborts reach the handler (tmr_notification)" 1 \
    "$(cat "$TL_CFS/core/user_1/e2e_file/attrib/tmr_notification")"
CTL=$("${DAEMON[0]%/*}/tcmu-lua" ctl -s $SOCK devices 2>&1)
tl_log "tcmu-lua ctl devices: $(tr '\n' ' ' <<<"$CTL")"
if grep -q e2e_ram <<<"$CTL" && grep -q e2e_file <<<"$CTL"; then
    pass "control socket lists both devices"
else
    fail "control socket lists both devices"
fi
[ -n "$SD_RAM" ] && [ -n "$SD_FILE" ] || tl_finish

# ---------------------------------------------------------------------------
tl_section "SCSI basics and data"
INQ=$(sg_inq "$SD_RAM" 2>&1)
check "sg_inq answers" test -n "$INQ"
check_eq "INQUIRY vendor" "LIO-ORG" \
    "$(sed -n 's/^ *Vendor identification: *//p' <<<"$INQ" | tr -d ' ')"
check "INQUIRY product names the handler" grep -q "Product identification:.*ram" <<<"$INQ"
CAP=$(sg_readcap "$SD_RAM" 2>&1)
check "READ CAPACITY: block count" grep -q "Number of logical blocks=$((RAM_SIZE / 512))" <<<"$CAP"
check "READ CAPACITY: block length" grep -q "Logical block length=512 bytes" <<<"$CAP"
check_eq "file device capacity" "$FILE_SIZE" "$(blockdev --getsize64 "$SD_FILE")"

pattern /tmp/e2e-pat 4
check "dd round trip (ram)" roundtrip "$SD_RAM" 40 /tmp/e2e-pat
check "dd round trip (file)" roundtrip "$SD_FILE" 16 /tmp/e2e-pat
check "file image holds the data" \
    sh -c "dd if=$IMG bs=1M skip=16 count=4 status=none | cmp - /tmp/e2e-pat"
check "fio randwrite + crc32c verify (ram, 4k)" \
    fio_verify ram "$SD_RAM" --rw=randwrite --bs=4k --size=32M --iodepth=16
check "fio randwrite + crc32c verify (file, 4k..1M)" \
    fio_verify file "$SD_FILE" --rw=randwrite --bsrange=4k-1m --size=64M --iodepth=8
check "fio 1M writes + verify at depth 32, FUA via O_SYNC (file)" \
    fio_verify file-sync "$SD_FILE" --rw=write --bs=1m --size=48M --iodepth=32 --sync=1
check_eq "1 MiB requests reach the device whole" 1024 \
    "$(cat /sys/block/${SD_FILE#/dev/}/queue/max_sectors_kb)"
FAST=$("${DAEMON[0]%/*}/tcmu-lua" ctl -s $SOCK --json stats e2e_file 2>&1)
tl_log "file device stats: $(tr '\n' ' ' <<<"$FAST")"
check "the fast path served the file device" \
    grep -Eq "\"fast\": *[1-9]" <<<"$FAST"

# With nothing to do the workers must sleep.  A UIO read of the wrong size
# (UIO takes exactly four bytes) once left the fd readable, and the worker
# spun on it at 100% of a CPU from its first command on.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$DPID/stat"; }
sleep 1
T0=$(cpu_ticks); sleep 3; T1=$(cpu_ticks)
tl_log "daemon CPU while idle: $((T1 - T0)) ticks (1/100 s) in 3 s"
check "the idle daemon sleeps (under 0.3 s of CPU in 3 s)" test $((T1 - T0)) -lt 30

# ---------------------------------------------------------------------------
tl_section "file system"
MNT=/tmp/e2e-mnt
mkdir -p $MNT
check "mkfs.ext4" mkfs.ext4 -q -F "$SD_FILE"
if check "mount" mount "$SD_FILE" $MNT; then
    dd if=/dev/urandom of=$MNT/data bs=1M count=16 status=none
    SUM=$(md5sum <$MNT/data)
    mkdir -p $MNT/dir && for i in $(seq 1 50); do echo "$i" >$MNT/dir/f$i; done
    check "sync" sync
    check "umount" umount $MNT
    check "fsck -n finds nothing" e2fsck -n -f "$SD_FILE"
    check "mount again" mount "$SD_FILE" $MNT &&
        check_eq "file read back" "$SUM" "$(md5sum <$MNT/data)"
    check "umount again" umount $MNT
fi

# ---------------------------------------------------------------------------
tl_section "resize"
NEW=$((RAM_SIZE * 2))
# (fio above wrote over the first 32 MiB; the pattern at 40 MiB is intact)
check "write attrib/dev_size (RECONFIG answered)" \
    tl_write "$TL_CFS/core/user_1/e2e_ram/attrib/dev_size" $NEW
check_eq "attrib/dev_size reads the new size" $NEW \
    "$(cat "$TL_CFS/core/user_1/e2e_ram/attrib/dev_size")"
check "SCSI rescan" tl_write "/sys/block/${SD_RAM#/dev/}/device/rescan" 1
check "capacity after rescan" tl_wait 10 sh -c "[ \$(blockdev --getsize64 $SD_RAM) = $NEW ]"
check "data before the old end survived" \
    sh -c "dd if=$SD_RAM bs=1M skip=40 count=4 iflag=direct status=none | cmp - /tmp/e2e-pat"
check "write past the old end" roundtrip "$SD_RAM" $(((RAM_SIZE >> 20) + 8)) /tmp/e2e-pat
check "daemon logged the resize" daemon_log_has "e2e_ram: resized"

# ---------------------------------------------------------------------------
tl_section "backstores made by hand (as with targetcli)"
export TL_USER_HBA=2
if BS=$(tl_user_create ext0 ram/ $((32 << 20))); then
    pass "user_2/ext0 enabled (ADDED_DEVICE answered)"
    check "daemon serves ext0" daemon_log_has "ext0: uio"
    WWN=$(tl_loop_create "$BS") && SD=$(tl_loop_dev "$WWN" 0 60)
    if [ -n "$SD" ]; then
        check "dd round trip on ext0" roundtrip "$SD" 0 /tmp/e2e-pat
        check "idle removal: LUN" tl_loop_remove "$WWN"
    else
        fail "ext0 LUN appeared"
    fi
    check "idle removal: backstore (REMOVED_DEVICE answered)" tl_backstore_remove "$BS"
    check "daemon let go of ext0" daemon_log_has "ext0: no longer served"
else
    fail "user_2/ext0 enabled (ADDED_DEVICE answered)"
fi

if BS=$(tl_user_create ext1 ram/ $((32 << 20))) && WWN=$(tl_loop_create "$BS") &&
    SD=$(tl_loop_dev "$WWN" 0 60); then
    pass "user_2/ext1 exported as $SD"
    fio --name=busy --filename="$SD" --ioengine=libaio --direct=1 --rw=randrw \
        --bs=64k --iodepth=16 --time_based --runtime=60 \
        --output="$TL_OUT/fio-busy.txt" >/dev/null 2>&1 &
    FIO=$!
    sleep 3
    check "fio is running on ext1" kill -0 $FIO
    check "removal under I/O: LUN" tl_loop_remove "$WWN"
    check "removal under I/O: backstore" tl_backstore_remove "$BS"
    check "fio ends once its disk is gone" tl_wait 60 sh -c "! kill -0 $FIO 2>/dev/null"
    kill -9 $FIO 2>/dev/null
    wait $FIO 2>/dev/null
    check "daemon let go of ext1" daemon_log_has "ext1: no longer served"
else
    fail "user_2/ext1 exported"
fi
if tl_daemon_running; then pass "daemon still running"; else fail "daemon still running"; fi
check "other devices still answer" roundtrip "$SD_RAM" 0 /tmp/e2e-pat

# Refusals: the configfs write must fail at once, never hang.
if tl_user_create bad0 nosuch-handler/ $((1 << 20)) >/dev/null 2>&1; then
    fail "a backstore with an unknown handler is refused"
else
    pass "a backstore with an unknown handler is refused"
fi
rmdir "$TL_CFS/core/user_2/bad0" 2>/dev/null
if tl_backstore_create user_2 bad1 "dev_size=$((1 << 20))" >/dev/null 2>&1; then
    fail "a backstore without dev_config is refused"
else
    pass "a backstore without dev_config is refused"
fi
rmdir "$TL_CFS/core/user_2/bad1" 2>/dev/null
rmdir "$TL_CFS/core/user_2" 2>/dev/null
check "daemon explained the refusal" daemon_log_has "nosuch-handler"
unset TL_USER_HBA

# A broken file on SIGHUP changes nothing.
cp "$CFG" /tmp/e2e-good.yaml
echo "devices: [{name: x}]" >"$CFG"
kill -HUP "$DPID"
check "SIGHUP with a broken file: error logged" \
    tl_wait 10 grep -q "reload: $CFG:1:11: devices\\[0\\]: handler is required (keeping" "$LOG"
cp /tmp/e2e-good.yaml "$CFG"
if tl_daemon_running; then pass "daemon survives a bad reload"; else fail "daemon survives a bad reload"; fi

# ---------------------------------------------------------------------------
tl_section "SIGKILL and restart under I/O"
fio_verify crash "$SD_FILE" --rw=randwrite --bs=4k --size=192M --iodepth=16 \
    >/dev/null 2>&1 &
FIO=$!
sleep 2
if kill -0 $FIO 2>/dev/null; then
    pass "fio is writing when the daemon is killed"
else
    fail "fio is writing when the daemon is killed (it finished too soon)"
fi
tl_daemon_stop KILL
check_eq "daemon killed" 137 "$DSTATUS"
sleep 1
if tl_daemon_start; then
    pass "daemon restarts and adopts the devices"
else
    fail "daemon restarts and adopts the devices"
fi
check "restart found the existing devices" daemon_log_has "adopting it"
# A liveness bound, not a timing: on a loaded host TCG runs this at ~100 IOPS.
if tl_wait 900 sh -c "! kill -0 $FIO 2>/dev/null"; then
    wait $FIO
    check_eq "fio crc32c verify after the restart" 0 $?
else
    fail "fio finished after the restart"
    kill -9 $FIO 2>/dev/null
fi
grep -E "err=|verify|crc" "$TL_OUT/fio-crash.txt" | head -5

# ---------------------------------------------------------------------------
tl_section "iSCSI"
if command -v iscsi-inq >/dev/null && command -v iscsi-ls >/dev/null; then
    LS=$(iscsi-ls -i iqn.2003-01.org.example:e2e-initiator iscsi://127.0.0.1 2>&1)
    check "iscsi-ls lists the target" grep -q "$IQN" <<<"$LS"
    IINQ=$(iscsi-inq -i iqn.2003-01.org.example:e2e-initiator "iscsi://127.0.0.1/$IQN/0" 2>&1)
    tl_log "iscsi-inq: $(tr '\n' ' ' <<<"$IINQ")"
    check "iscsi-inq answers" grep -qi "vendor.*LIO-ORG" <<<"$IINQ"
    if command -v iscsi-readcapacity16 >/dev/null; then
        RC16=$(iscsi-readcapacity16 -i iqn.2003-01.org.example:e2e-initiator \
            "iscsi://127.0.0.1/$IQN/0" 2>&1)
        tl_log "iscsi-readcapacity16: $(tr '\n' ' ' <<<"$RC16")"
        check "iscsi-readcapacity16 capacity" \
            grep -Eq "(Total size|Capacity):?[^0-9]*$FILE_SIZE" <<<"$RC16"
    fi
else
    tl_log "SKIP: libiscsi-bin (iscsi-ls, iscsi-inq) is not installed on the host"
fi

# ---------------------------------------------------------------------------
tl_section "stop"
tl_daemon_stop TERM
check_eq "SIGTERM: daemon exits 0" 0 "$DSTATUS"
check "ram LUN gone" tl_wait 10 test ! -e "$SD_RAM"
check "backstores removed" test ! -e "$TL_CFS/core/user_1"
check "loop targets removed" sh -c "! ls $TL_CFS/loopback 2>/dev/null | grep -q e2e"
check "iSCSI target removed" test ! -e "$TL_CFS/iscsi/$IQN"
check "daemon logged a clean exit" daemon_log_has "exiting with status 0"
check "modules unload (nothing left holding them)" tl_unload_target_modules
tl_finish
