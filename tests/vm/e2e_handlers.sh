#!/bin/bash
#
# End-to-end test of the qcow2, trace and nbd handlers against the real
# kernel (runs inside the VM):
#   tests/vm/run-vm.sh tests/vm/e2e_handlers.sh
# (the fault handler has its own script, e2e_fault.sh).
#
#  qcow2: an empty image gets ext4 + files and fio with verify through the
#         LUN; after the daemon stops, `qemu-img check` finds no errors and
#         `qemu-img compare` says the image equals what the guest read back
#         from the LUN.  An image qemu-img made with a backing file, which
#         qemu-io wrote to, reads back through the LUN exactly as
#         `qemu-img convert` gives it; a write through the LUN lands in the
#         overlay (compare) and the backing file is untouched.  A compressed
#         image (`qemu-img convert -c`) reads back as its source.
#  trace: the commands of a dd and of an out-of-range sg_raw show up in the
#         daemon log decoded: name, LBA, blocks, status, sense, latency.
#  nbd:   qemu-nbd in the guest serves a raw image on a Unix socket and a
#         qcow2 image on 127.0.0.1; the LUNs get ext4 + a file round trip
#         and fio verify with many commands in flight; qemu-nbd killed:
#         reads fail with NOT READY, LOGICAL UNIT COMMUNICATION FAILURE;
#         restarted: the handler reconnects and the file system is intact.
#
# TL_DAEMON overrides the daemon command ("$TL_BUILD_DIR/tcmu-lua daemon").

. "${TL_VM_DIR:-$(dirname "$0")}/guest-lib.sh"

[ "${TL_IN_VM:-0}" = 1 ] || { echo "e2e_handlers.sh runs inside the VM: use run-vm.sh" >&2; exit 2; }
tl_need_cmd modprobe qemu-img qemu-io qemu-nbd fio sg_raw mkfs.ext4 blockdev cmp mount

LOG=$TL_OUT/daemon.log
CFG=/tmp/handlers.yaml
W=/tmp/h
MNT=/tmp/h-mnt
WWN_Q2=naa.5001405e2e000101
WWN_OV=naa.5001405e2e000102
WWN_CP=naa.5001405e2e000103
WWN_TR=naa.5001405e2e000104
WWN_NB=naa.5001405e2e000105
WWN_NT=naa.5001405e2e000106
NBD_SOCK=$W/nbd.sock
NBD_PORT=10809
MB=$((1 << 20))

cleanup() {
    umount "$MNT" 2>/dev/null
    if tl_daemon_running; then
        tl_warn "daemon still running at exit: stopping it"
        tl_daemon_stop TERM
    fi
    for p in "$W"/*.pid; do [ -f "$p" ] && kill "$(cat "$p")" 2>/dev/null; done
    tl_log "daemon log: $LOG"
}
tl_on_exit cleanup

# nbd_start NAME ARGS...: a persistent qemu-nbd, its pid in $W/NAME.pid.
nbd_start() {
    local name=$1
    shift
    qemu-nbd -t --fork --pid-file="$W/$name.pid" "$@"
}
nbd_kill() { kill -9 "$(cat "$W/$1.pid")"; tl_wait 10 sh -c "! kill -0 $(cat "$W/$1.pid") 2>/dev/null"; }

# lun_to FILE DEV: the whole LUN, bypassing the page cache.
lun_to() { dd if="$2" of="$1" bs=1M iflag=direct status=none; }

# fio_verify DEV OFFSET SIZE DEPTH NAME: random writes, then every block read
# back and checked (crc32c + header), with DEPTH commands in flight.
fio_verify() {
    fio --name="$5" --filename="$1" --offset="$2" --size="$3" --ioengine=libaio \
        --direct=1 --rw=randwrite --bs=4k --iodepth="$4" --verify=crc32c \
        --verify_fatal=1 --do_verify=1 --output="$TL_OUT/fio-$5.txt" >/dev/null 2>&1
}

# ---------------------------------------------------------------------------
tl_section "setup"
check "target modules load" tl_load_target_modules || tl_finish
check "the daemon binary exists" test -x "${DAEMON[0]}" || tl_finish
mkdir -p "$W" "$MNT"
: >"$LOG"

# qcow2: an empty image; a base (from a raw file) with an overlay that
# qemu-io writes to; a compressed copy of the base.
qemu-img create -q -f qcow2 "$W/q2.qcow2" 64M
# 4 MiB of text (compresses well), 4 MiB of noise (does not), then zeros
{ seq -f 'tcmu-lua base line %.0f' 1 1000000 | head -c $((4 * MB))
  head -c $((4 * MB)) /dev/urandom; } >"$W/base.raw"
truncate -s 64M "$W/base.raw"
qemu-img convert -f raw -O qcow2 "$W/base.raw" "$W/base.qcow2"
qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 "$W/ov.qcow2"
check "qemu-io writes to the overlay" \
    qemu-io -f qcow2 -c "write -P 0x5a 1M 1M" -c "write -P 0xa5 20M 64k" "$W/ov.qcow2"
qemu-img convert -O raw "$W/ov.qcow2" "$W/ov-expected.raw"
qemu-img convert -c -f raw -O qcow2 "$W/base.raw" "$W/comp.qcow2"
check "the image is compressed (smaller than the 8 MiB of data)" \
    test "$(stat -c %s "$W/comp.qcow2")" -lt $((6 * MB))
# nbd: a raw image on a Unix socket, a qcow2 image on TCP
truncate -s 64M "$W/nbd.raw"
qemu-img create -q -f qcow2 "$W/nbt.qcow2" 64M
check "qemu-nbd serves a raw image on a Unix socket" \
    nbd_start nbd -f raw --discard=unmap -k "$NBD_SOCK" "$W/nbd.raw"
check "qemu-nbd serves a qcow2 image on 127.0.0.1:$NBD_PORT" \
    nbd_start nbt -f qcow2 -b 127.0.0.1 -p $NBD_PORT -x vol "$W/nbt.qcow2"

cat >"$CFG" <<EOF
daemon:
  workers: 2
  log_level: info
devices:
  - name: e2e_q2
    handler: qcow2
    size: 64M
    options: { path: $W/q2.qcow2 }
    exports: { loop: { wwn: $WWN_Q2 } }
  - name: e2e_ov
    handler: qcow2
    size: 64M
    options: { path: $W/ov.qcow2 }
    exports: { loop: { wwn: $WWN_OV } }
  - name: e2e_cp
    handler: qcow2
    size: 64M
    options: { path: $W/comp.qcow2 }
    exports: { loop: { wwn: $WWN_CP } }
  - name: e2e_tr
    handler: trace
    size: 16M
    options: { inner: ram }
    exports: { loop: { wwn: $WWN_TR } }
  - name: e2e_nb
    handler: nbd
    size: 64M
    write_cache: true
    options: { socket: $NBD_SOCK, reconnect_min: 0.2, reconnect_max: 1 }
    exports: { loop: { wwn: $WWN_NB } }
  - name: e2e_nt
    handler: nbd
    size: 64M
    options: { host: 127.0.0.1, port: $NBD_PORT, export: vol }
    exports: { loop: { wwn: $WWN_NT } }
EOF

tl_daemon_start_or_finish
Q2=$(tl_loop_dev $WWN_Q2) && OV=$(tl_loop_dev $WWN_OV) && CP=$(tl_loop_dev $WWN_CP) &&
    TR=$(tl_loop_dev $WWN_TR) && NB=$(tl_loop_dev $WWN_NB) && NT=$(tl_loop_dev $WWN_NT) &&
    pass "six LUNs appeared" || { fail "six LUNs appeared"; tl_finish; }
tl_log "qcow2 $Q2, overlay $OV, compressed $CP, trace $TR, nbd $NB (unix) $NT (tcp)"

# ---------------------------------------------------------------------------
tl_section "qcow2: a new image written by the guest"
head -c $((3 * MB + 12345)) /dev/urandom >"$W/file1"
check "mkfs.ext4 on the first 40 MiB" mkfs.ext4 -q -F "$Q2" 40M
if check "mount" mount "$Q2" "$MNT"; then
    cp "$W/file1" "$MNT/file1"
    mkdir -p "$MNT/dir" && for i in 1 2 3 4 5; do head -c $((i * 7777)) /dev/urandom >"$MNT/dir/f$i"; done
    check "umount" umount "$MNT"
    check "mount again" mount -o ro "$Q2" "$MNT" &&
        check "file1 reads back" cmp "$W/file1" "$MNT/file1"
    umount "$MNT"
fi
check "fio verify on 48-56 MiB (randwrite 4k, depth 8)" fio_verify "$Q2" 48M 8M 8 q2
check "fsck.ext4 -n: the file system is clean" fsck.ext4 -n -f "$Q2"
check "the LUN read back into a raw file" lun_to "$W/q2-lun.raw" "$Q2"

tl_section "qcow2: an overlay made by qemu-img, a compressed image"
check "the overlay LUN reads as qemu-img convert gives it" \
    sh -c "dd if=$OV bs=1M iflag=direct status=none | cmp - $W/ov-expected.raw"
head -c 12288 /dev/urandom >"$W/w12k"
check "12 KiB written through the overlay LUN at 4 MiB + 2 KiB" \
    dd if="$W/w12k" of="$OV" bs=2048 seek=2049 oflag=direct conv=notrunc status=none
dd if="$W/w12k" of="$W/ov-expected.raw" bs=2048 seek=2049 conv=notrunc status=none
check "the compressed LUN reads as its source" \
    sh -c "dd if=$CP bs=1M iflag=direct status=none | cmp - $W/base.raw"

# ---------------------------------------------------------------------------
tl_section "trace"
dd if=/dev/urandom of="$TR" bs=4096 seek=256 count=1 oflag=direct status=none
dd if="$TR" of=/dev/null bs=4096 skip=256 count=1 iflag=direct status=none
SG_TR=/dev/$(ls /sys/block/"${TR#/dev/}"/device/scsi_generic | head -n1)
sg_raw -r 512 "$SG_TR" 28 00 00 01 00 00 00 00 01 00 >/dev/null 2>&1   # LBA 65536: past the end
sleep 1
tl_log "$(grep -m3 'e2e_tr ' "$LOG")"
check "trace: WRITE(10) lba=2048 logged with status and latency" \
    grep -Eq 'e2e_tr WRITE\(10\) lba=2048 blocks=8 bytes=4096 -> GOOD [0-9.]+ ms' "$LOG"
check "trace: READ(10) lba=2048 logged with status and latency" \
    grep -Eq 'e2e_tr READ\(10\) lba=2048 blocks=8 bytes=4096 -> GOOD [0-9.]+ ms' "$LOG"
check "trace: the out-of-range READ logged with its sense" \
    grep -Eq 'e2e_tr READ\(10\) lba=65536 blocks=1 .*-> CHECK CONDITION ILLEGAL REQUEST: LOGICAL BLOCK ADDRESS OUT OF RANGE \(0x21/0x00\)' "$LOG"
check "trace: the kernel's INQUIRY at scan time logged" grep -Eq 'e2e_tr INQUIRY .*-> GOOD' "$LOG"

# ---------------------------------------------------------------------------
tl_section "nbd"
check "nbd: connected over the Unix socket" grep -q "e2e_nb: connected to unix:$NBD_SOCK" "$LOG"
check "nbd: connected over TCP with NBD_OPT_GO" \
    grep -q "e2e_nt: connected to 127.0.0.1:$NBD_PORT, export \"vol\".*NBD_OPT_GO" "$LOG"
check_eq "nbd: capacity of the LUN" $((64 * MB)) "$(blockdev --getsize64 "$NB")"
check "nbd (tcp): fio verify, randwrite 4k, depth 32" fio_verify "$NT" 0 8M 32 nbt
check "nbd (unix): mkfs.ext4" mkfs.ext4 -q -F "$NB"
if check "nbd: mount" mount "$NB" "$MNT"; then
    cp "$W/file1" "$MNT/file1"
    check "nbd: umount" umount "$MNT"
fi
check "nbd: the data is in the served image (first 1 MiB equals the LUN)" \
    sh -c "dd if=$NB bs=1M count=1 iflag=direct status=none | cmp - $W/nbd.raw -n $MB"

check "nbd: qemu-nbd killed" nbd_kill nbd
OUT=$(dd if="$NB" of=/dev/null bs=4096 count=1 skip=1000 iflag=direct 2>&1)
RC=$?
check "nbd: a read while the server is down fails" test $RC -ne 0
tl_log "dd: $(tr '\n' ' ' <<<"$OUT")"
check "nbd: the kernel saw NOT READY, LOGICAL UNIT COMMUNICATION FAILURE" \
    sh -c "dmesg | grep -qi 'Logical unit communication failure'"
check "nbd: the daemon logged the lost connection" grep -q 'e2e_nb: connection to .* lost' "$LOG"
check "nbd: INQUIRY still answered" sg_inq "$NB"
check "nbd: qemu-nbd restarted" nbd_start nbd -f raw --discard=unmap -k "$NBD_SOCK" "$W/nbd.raw"
check "nbd: reads work again (reconnected)" \
    tl_wait 30 dd if="$NB" of=/dev/null bs=4096 count=1 skip=1000 iflag=direct status=none
check "nbd: reconnect logged" sh -c "[ \$(grep -c 'e2e_nb: connected to' '$LOG') -ge 2 ]"
if check "nbd: mount after the reconnect" mount "$NB" "$MNT"; then
    check "nbd: the file survived" cmp "$W/file1" "$MNT/file1"
    umount "$MNT"
fi
check "nbd: fsck.ext4 -n clean" fsck.ext4 -n -f "$NB"

# ---------------------------------------------------------------------------
tl_section "shutdown, then qemu-img looks at the images"
tl_daemon_stop TERM
check_eq "SIGTERM: daemon exits 0" 0 "$DSTATUS"
check "no handler errors logged" sh -c "! grep -q 'handler error' '$LOG'"
for img in q2 ov; do
    OUT=$(qemu-img check "$W/$img.qcow2" 2>&1)
    check "qemu-img check $img.qcow2: no errors" grep -q 'No errors were found' <<<"$OUT" ||
        tl_log "$OUT"
done
check "qemu-img compare: q2.qcow2 equals what the guest read from the LUN" \
    qemu-img compare -f raw -F qcow2 "$W/q2-lun.raw" "$W/q2.qcow2"
check "qemu-img compare: the overlay has the write made through the LUN" \
    qemu-img compare -f raw -F qcow2 "$W/ov-expected.raw" "$W/ov.qcow2"
check "qemu-img compare: the backing file is unchanged" \
    qemu-img compare -f raw -F qcow2 "$W/base.raw" "$W/base.qcow2"
nbd_kill nbt
check "qemu-img check nbt.qcow2 (written over NBD): no errors" \
    sh -c "qemu-img check $W/nbt.qcow2 2>&1 | grep -q 'No errors were found'"
tl_finish
