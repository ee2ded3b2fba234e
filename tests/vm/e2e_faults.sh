#!/bin/bash
#
# Faults under the daemon, against the real kernel (runs inside the VM):
#   tests/vm/run-vm.sh -t 1700 tests/vm/e2e_faults.sh
#
#  1. full file system: a sparse 128 MiB image on a 40 MiB tmpfs, with the
#     fast path and without; filling it through the LUN fails with ENOSPC
#     (DATA PROTECT, SPACE ALLOCATION FAILED WRITE PROTECT, 7h/27h/07h, seen
#     with sg_raw), data written before reads back, the other devices go
#     on, and after space is freed writes work again;
#  2. failing medium: the image is a device-mapper device over a loop
#     device; part of it, then all of it, is switched to dm's `error`
#     target: reads fail with MEDIUM ERROR, UNRECOVERED READ ERROR
#     (3h/11h/00h), writes with WRITE ERROR (3h/0Ch/00h), the rest keeps
#     working, and the data is intact once the table is restored;
#  3. the image is unlinked while served: it keeps working (the daemon
#     holds it open); a hand-made backstore whose image cannot be opened is
#     refused at once with the reason logged; at the next restart the
#     unlinked device is refused the same way and the others are served;
#  4. SIGKILL at a random point under fio verify load, TL_FAULT_KILLS (20)
#     times, restarted each time: fio passes on a fast-path file device
#     and a fast=false one, each writing a region of its own with crc32c
#     headers and verifying it, are killed after a random number of
#     requests; fio must see no error at all (the kernel's retries of BUSY
#     are the only recovery allowed);
#  5. a final read pass verifies every region of every pass (no write
#     acknowledged before a later kill was lost or overwritten; a corrupted
#     block is caught), no ring has a command left in flight, and dmesg
#     shows no hung task, warning or BUG.
#
# TL_FAULT_PARTS picks parts while working on one ("full dm kill"; the
# default is all three; the unlinked image and the refusals always run).
# TL_DAEMON overrides the daemon command ("$TL_BUILD_DIR/tcmu-lua daemon").

. "${TL_VM_DIR:-$(dirname "$0")}/guest-lib.sh"

[ "${TL_IN_VM:-0}" = 1 ] || { echo "e2e_faults.sh runs inside the VM: use run-vm.sh" >&2; exit 2; }
tl_need_cmd modprobe sg_raw dd cmp blockdev fio losetup mount

LOG=$TL_OUT/daemon.log
CFG=/tmp/faults.yaml
SOCK=/run/tcmu-lua-faults.sock
KILLS=${TL_FAULT_KILLS:-20}
PARTS=" ${TL_FAULT_PARTS:-full dm kill} "
part() { [[ $PARTS == *" $1 "* ]]; }
REGION=$((16 << 20))	# what one fio pass writes on each device
MAXPASS=$KILLS		# passes the kill devices have room for (one a kill at worst)
KILL_SIZE=$(((MAXPASS + 1) * REGION))
DM_SIZE=$((32 << 20))
DM_SECTORS=$((DM_SIZE / 512))
HAVE_DM=0
command -v dmsetup >/dev/null && HAVE_DM=1
export DM_DISABLE_UDEV=1	# no udev in the guest: dmsetup makes the nodes
LOOPS=()

wwn() { printf 'naa.5001405fa%07x' "$1"; }

cleanup() {
    local d l
    if tl_daemon_running; then
        tl_warn "daemon still running at exit: stopping it"
        tl_daemon_stop TERM
    fi
    for d in tlfault0 tlfault1; do
        [ ! -e "/dev/mapper/$d" ] || dmsetup remove "$d"
    done
    for l in "${LOOPS[@]}"; do losetup -d "$l"; done
    umount /tmp/fault-full0 /tmp/fault-full1 2>/dev/null
    tl_log "daemon log: $LOG"
}
tl_on_exit cleanup

ctl() { tl_ctl "$@"; }
rings_idle() { tl_rings_idle; }
daemon_log_has() { grep -q -- "$1" "$LOG"; }

pattern() { dd if=/dev/urandom of="$1" bs=1M count="$2" status=none; }

# roundtrip DEV SEEK_MIB FILE: write FILE at SEEK_MIB MiB, read it back.
roundtrip() {
    dd if="$3" of="$1" bs=1M seek="$2" oflag=direct status=none &&
        readback "$@"
}
# readback DEV SKIP_MIB FILE: the device holds FILE at SKIP_MIB MiB.
readback() {
    local mib=$(($(stat -c %s "$3") >> 20))
    dd if="$1" bs=1M skip="$2" count="$mib" iflag=direct status=none | cmp - "$3"
}

# The four bytes of a 32-bit number as sg_raw arguments.
be32() { printf '%02x %02x %02x %02x' $(($1 >> 24 & 255)) $(($1 >> 16 & 255)) \
    $(($1 >> 8 & 255)) $(($1 & 255)); }

# sense_is DEV KEY ASC READ|WRITE LBA BLOCKS: the command fails with CHECK
# CONDITION and sg_raw's decoded sense names KEY and ASC (its own words,
# e.g. "Data protect" and "Space allocation failed write protect").
sense_is() {
    local dev=$1 key=$2 asc=$3 op=$4 lba=$5 n=$6 out
    # shellcheck disable=SC2046  # be32 prints four words
    if [ "$op" = READ ]; then
        out=$(sg_raw -r $((n * 512)) -o /dev/null "$dev" 28 00 $(be32 "$lba") 00 00 "$(printf %02x "$n")" 00 2>&1)
    else
        head -c $((n * 512)) /dev/urandom >/tmp/fault-blk
        out=$(sg_raw -s $((n * 512)) -i /tmp/fault-blk "$dev" 2a 00 $(be32 "$lba") 00 00 "$(printf %02x "$n")" 00 2>&1)
    fi
    printf '%s\n' "$out"
    grep -qi "check condition" <<<"$out" && grep -qi "sense key: $key" <<<"$out" &&
        grep -qi "additional sense: $asc" <<<"$out"
}

# fio_region DEV N [FIO ARGS...]: pass N of the kill test on DEV: random
# writes of 4 KiB..64 KiB with a crc32c header in every 4 KiB, then a
# verify of the whole region (region N of the device).
fio_region() {
    local dev=$1 n=$2
    shift 2
    fio --name="kill$n" --filename="$dev" --ioengine=libaio --direct=1 \
        --rw=randwrite --bsrange=4k-64k --verify_interval=4k --iodepth=16 \
        --offset=$((n * REGION)) --size=$REGION --randseed=$((4242 + n)) \
        --verify=crc32c --verify_fatal=1 --do_verify=1 "$@"
}

# ---------------------------------------------------------------------------
tl_section "setup"
check "target modules load" tl_load_target_modules || tl_finish
modprobe loop 2>/dev/null
if [ $HAVE_DM = 1 ] && ! modprobe dm_mod; then
    tl_warn "no dm_mod: the failing-medium part is skipped"
    HAVE_DM=0
fi
: >"$LOG"
for i in 0 1; do
    mkdir -p /tmp/fault-full$i
    check "40 MiB tmpfs $i" mount -t tmpfs -o size=40m tmpfs /tmp/fault-full$i
done
if [ $HAVE_DM = 1 ]; then
    for i in 0 1; do
        truncate -s $DM_SIZE /tmp/fault-dm$i.backing
        LOOP=$(losetup -f --show /tmp/fault-dm$i.backing) || { HAVE_DM=0; break; }
        LOOPS+=("$LOOP")
        check "dm device tlfault$i over $LOOP" \
            dmsetup create tlfault$i --table "0 $DM_SECTORS linear $LOOP 0" || HAVE_DM=0
    done
    [ $HAVE_DM = 0 ] || check "dm nodes exist" test -b /dev/mapper/tlfault0 -a -b /dev/mapper/tlfault1 || HAVE_DM=0
fi
rm -f /tmp/fault-kill0.img /tmp/fault-kill1.img
# Without create: at the restart after it is unlinked, nothing re-creates
# an empty image in its place.
rm -f /tmp/fault-gone.img
truncate -s 32M /tmp/fault-gone.img

{
    cat <<EOF
daemon:
  workers: 2
  log_level: info
  control_socket: $SOCK
devices:
  - name: f_ram
    handler: ram
    size: 32M
    exports: {loop: {wwn: $(wwn 1)}}
  - name: f_full0
    handler: file
    size: 128M
    options: {path: /tmp/fault-full0/img, create: true}
    exports: {loop: {wwn: $(wwn 2)}}
  - name: f_full1
    handler: file
    size: 128M
    options: {path: /tmp/fault-full1/img, create: true, fast: false}
    exports: {loop: {wwn: $(wwn 3)}}
  - name: f_gone
    handler: file
    size: 32M
    options: {path: /tmp/fault-gone.img}
    exports: {loop: {wwn: $(wwn 4)}}
EOF
    [ $HAVE_DM = 0 ] || cat <<EOF
  - name: f_dm0
    handler: file
    size: $DM_SIZE
    options: {path: /dev/mapper/tlfault0, direct: true}
    exports: {loop: {wwn: $(wwn 7)}}
  - name: f_dm1
    handler: file
    size: $DM_SIZE
    options: {path: /dev/mapper/tlfault1, direct: true, fast: false}
    exports: {loop: {wwn: $(wwn 8)}}
EOF
} >"$CFG"

tl_daemon_start_or_finish
declare -A SD
# The kill devices are made by hand (as with targetcli) in hba user_2:
# their cmd_time_out has to be set before they are exported, and the YAML
# has no key for it.  The kernel fails a command that waited that long in
# the ring with NOT READY, LOGICAL UNIT COMMUNICATION FAILURE, which sd
# does not retry: a restart has to finish within cmd_time_out minus the
# age of the oldest command.  The default 30 s is too short under a
# loaded TCG guest (a restart took 20-25 s there), so 120 s here.
KBS=()
for i in 0 1; do
    cfg="file/path=/tmp/fault-kill$i.img;create=true"
    [ $i = 0 ] || cfg="$cfg;fast=false"
    BS=$(TL_USER_HBA=2 tl_user_create f_kill$i "$cfg" $KILL_SIZE) &&
        tl_write "$BS/attrib/cmd_time_out" 120 &&
        tl_loop_create "$BS" "$(wwn $((5 + i)))" >/dev/null ||
        tl_die "kill device $i made by hand"
    KBS+=("$BS")
done
kill_devs_remove() { # before the daemon stops: it did not make them
    local i
    for i in 0 1; do
        tl_loop_remove "$(wwn $((5 + i)))"
        tl_backstore_remove "${KBS[i]}"
    done
}
for i in 1 2 3 4 5 6 7 8; do
    [ $i -lt 7 ] || [ $HAVE_DM = 1 ] || continue
    SD[$i]=$(tl_loop_dev "$(wwn $i)" 0 60) || tl_die "LUN $(wwn $i) appeared"
done
RAM=${SD[1]}
tl_log "devices: ${SD[*]}"
pattern /tmp/fault-pat 1
check "ram device works" roundtrip "$RAM" 0 /tmp/fault-pat

# ---------------------------------------------------------------------------
part full && for i in 0 1; do
    DEV=${SD[$((2 + i))]}
    what="full fs, fast path $([ $i = 0 ] && echo on || echo off)"
    tl_section "$what"
    FS=/tmp/fault-full$i
    check "$what: data written at 0 MiB" roundtrip "$DEV" 0 /tmp/fault-pat
    # Ballast to free later (the image itself can only grow).
    check "$what: 6 MiB of ballast" dd if=/dev/zero of=$FS/ballast bs=1M count=6 status=none
    OUT=$(dd if=/dev/urandom of="$DEV" bs=1M seek=4 count=100 oflag=direct 2>&1)
    RC=$?
    tl_log "filling: $(tail -n 3 <<<"$OUT" | tr '\n' ' ')"
    check "$what: filling the device fails" test $RC -ne 0
    check "$what: with ENOSPC, not EIO" grep -q "No space left on device" <<<"$OUT"
    check "$what: the file system is full" sh -c "[ \$(df --output=avail $FS | tail -n 1) -lt 1024 ]"
    check "$what: WRITE(10) answers DATA PROTECT, SPACE ALLOCATION FAILED WRITE PROTECT" \
        sense_is "$DEV" "data protect" "space allocation failed write protect" WRITE $((120 << 11)) 8
    check "$what: data written before reads back" readback "$DEV" 0 /tmp/fault-pat
    check "$what: reading where nothing was written works" \
        dd if="$DEV" of=/dev/null bs=1M skip=110 count=8 iflag=direct status=none
    check "$what: the ram device is unaffected" readback "$RAM" 0 /tmp/fault-pat
    check "$what: ballast removed" rm $FS/ballast
    check "$what: writes work again once space is free" roundtrip "$DEV" 120 /tmp/fault-pat
    check "$what: data at 0 MiB still there" readback "$DEV" 0 /tmp/fault-pat
done
if part full; then
    check "the kernel saw SPACE ALLOCATION FAILED" sh -c "dmesg | grep -qi 'space allocation failed write protect'"
    check "daemon still running after the full file systems" tl_daemon_running
fi

# ---------------------------------------------------------------------------
if [ $HAVE_DM = 1 ] && part dm; then
    BAD=$((8 << 11))		# 8 MiB..9 MiB of the image fails
    for i in 0 1; do
        DEV=${SD[$((7 + i))]}
        DM=tlfault$i
        LOOP=${LOOPS[i]}
        what="failing medium, fast path $([ $i = 0 ] && echo on || echo off)"
        tl_section "$what"
        check "$what: data written at 0 MiB" roundtrip "$DEV" 0 /tmp/fault-pat
        check "$what: data written at 12 MiB" roundtrip "$DEV" 12 /tmp/fault-pat
        check "$what: 1 MiB of the medium fails" sh -c "printf '%s\n' \
            '0 $BAD linear $LOOP 0' \
            '$BAD 2048 error' \
            '$((BAD + 2048)) $((DM_SECTORS - BAD - 2048)) linear $LOOP $((BAD + 2048))' |
            dmsetup load $DM && dmsetup resume $DM"
        check "$what: READ(10) there: MEDIUM ERROR, UNRECOVERED READ ERROR" \
            sense_is "$DEV" "medium error" "unrecovered read error" READ $((BAD + 16)) 8
        check "$what: WRITE(10) there: MEDIUM ERROR, WRITE ERROR" \
            sense_is "$DEV" "medium error" "write error" WRITE $((BAD + 16)) 8
        check "$what: a read through the block layer fails" \
            sh -c "! dd if=$DEV of=/dev/null bs=4k skip=$((BAD / 8 + 4)) count=1 iflag=direct status=none"
        check "$what: the rest of the image reads" readback "$DEV" 0 /tmp/fault-pat
        check "$what: the whole medium fails" sh -c \
            "dmsetup load $DM --table '0 $DM_SECTORS error' && dmsetup resume $DM"
        check "$what: READ(10) at 0: MEDIUM ERROR" \
            sense_is "$DEV" "medium error" "unrecovered read error" READ 0 8
        check "$what: the ram device is unaffected" readback "$RAM" 0 /tmp/fault-pat
        check "$what: daemon still running" tl_daemon_running
        check "$what: the medium is back" sh -c \
            "dmsetup load $DM --table '0 $DM_SECTORS linear $LOOP 0' && dmsetup resume $DM"
        check "$what: data at 0 MiB intact" readback "$DEV" 0 /tmp/fault-pat
        check "$what: data at 12 MiB intact" readback "$DEV" 12 /tmp/fault-pat
        check "$what: the failed range takes writes again" roundtrip "$DEV" 8 /tmp/fault-pat
    done
    check "the kernel saw the medium errors" sh -c "dmesg | grep -qi 'unrecovered read error'"
else
    part dm && tl_log "SKIP: failing medium (dmsetup or dm_mod missing)"
fi

# ---------------------------------------------------------------------------
tl_section "image unlinked while served"
GONE=${SD[4]}
check "data written" roundtrip "$GONE" 0 /tmp/fault-pat
check "image unlinked" rm /tmp/fault-gone.img
check "still reads" readback "$GONE" 0 /tmp/fault-pat
check "still takes writes: fio crc32c verify" \
    fio --name=gone --filename="$GONE" --ioengine=libaio --direct=1 --rw=randwrite \
        --bs=4k --size=4M --offset=8M --iodepth=8 --verify=crc32c --verify_fatal=1 \
        --output="$TL_OUT/fio-gone.txt"

tl_section "an image that cannot be opened"
export TL_USER_HBA=2
if tl_user_create nofile file//tmp/fault-nodir/x.img $((1 << 20)) >/dev/null 2>&1; then
    fail "a hand-made backstore without its image is refused"
else
    pass "a hand-made backstore without its image is refused"
fi
rmdir "$TL_CFS/core/user_2/nofile" 2>/dev/null
rmdir "$TL_CFS/core/user_2" 2>/dev/null
unset TL_USER_HBA
check "the daemon logged why" \
    daemon_log_has "nofile: handler file refused the device: .*cannot open /tmp/fault-nodir/x.img: No such file"
check "daemon still running" tl_daemon_running
check "the others still serve" readback "$RAM" 0 /tmp/fault-pat

# ---------------------------------------------------------------------------
if part kill; then
    tl_section "SIGKILL under fio verify load, $KILLS times"
    K0=${SD[5]}
    K1=${SD[6]}
    for d in "$K0" "$K1"; do
        # The SCSI layer must not give up while the daemon restarts.
        tl_write "/sys/block/${d#/dev/}/device/timeout" 180
    done
    PASS=0
    PASSES_OK=0
    UNDER_LOAD1=0
    RESTARTS=0
    F0=
    mkfifo /tmp/fault-nap
    exec {NAP}<>/tmp/fault-nap	# read -t on it: a sleep without a fork
    # ios DEV: requests the block device completed (reads + writes).
    ios() { local s; read -ra s <"/sys/block/${1#/dev/}/stat"; echo $((s[0] + s[4])); }

    # A pass: fio on both devices, each writing and verifying region PASS.
    start_pass() {
        PASS=$((PASS + 1))
        fio_region "$K0" $PASS --output="$TL_OUT/fio-kill0-$PASS.txt" >/dev/null 2>&1 &
        F0=$!
        fio_region "$K1" $PASS --output="$TL_OUT/fio-kill1-$PASS.txt" >/dev/null 2>&1 &
        F1=$!
    }
    end_pass() {
        local r0 r1
        if ! tl_wait 900 sh -c "! kill -0 $F0 2>/dev/null && ! kill -0 $F1 2>/dev/null"; then
            fail "pass $PASS: fio finished"
            kill -9 $F0 $F1 2>/dev/null
        fi
        wait $F0; r0=$?
        wait $F1; r1=$?
        F0=
        tl_log "pass $PASS: fio exit $r0 (fast path) / $r1 (Lua)"
        if [ $r0 = 0 ] && [ $r1 = 0 ]; then
            PASSES_OK=$((PASSES_OK + 1))
        else
            fail "pass $PASS: fio verify (fast path $r0, Lua $r1)"
            grep -hE "err=|verify|crc|error" "$TL_OUT/fio-kill0-$PASS.txt" \
                "$TL_OUT/fio-kill1-$PASS.txt" | head -8
        fi
    }

    for n in $(seq 1 "$KILLS"); do
        # The kill point: after a random number (8..167) of completed requests
        # on the fast-path disk.  A pass does about 960 (16 MiB of writes of
        # 4..64 KiB, then the same reads), so kills land in the write and in
        # the verify phase; when a pass ends first, the next one starts and
        # the count begins again.  The kill always finds fio running.
        while :; do
            [ -n "$F0" ] || start_pass
            at=$(($(ios "$K0") + 8 + RANDOM % 160))
            while [ "$(ios "$K0")" -lt $at ] && kill -0 $F0 2>/dev/null; do
                read -r -t 0.02 -u "$NAP"
            done
            kill -0 $F0 2>/dev/null && break
            end_pass
            [ $PASS -lt $MAXPASS ] || break 2
        done
        kill -0 $F1 2>/dev/null && UNDER_LOAD1=$((UNDER_LOAD1 + 1))
        tl_daemon_stop KILL
        if [ "$DSTATUS" != 137 ]; then
            fail "kill $n: daemon killed (status $DSTATUS)"
            break
        fi
        if ! tl_daemon_start; then
            fail "kill $n: daemon restarts"
            tail -n 20 "$LOG"
            break
        fi
        RESTARTS=$((RESTARTS + 1))
        tl_log "kill $n: in pass $PASS at request $at, restarted"
        if [ $n = 1 ]; then
            check "restart: the unlinked image's device is refused, with the reason" \
                daemon_log_has "f_gone: handler file refused the device: .*cannot open /tmp/fault-gone.img: No such file"
            check "restart: the other devices are adopted" \
                tl_wait 30 daemon_log_has "f_kill1: uio.*(not in the config file)"
        fi
    done
    [ -z "$F0" ] || end_pass
    check_eq "kills under fio load, each followed by a restart" "$KILLS" "$RESTARTS"
    check_eq "fio passes with a clean verify on both devices" "$PASS" "$PASSES_OK"
    tl_log "$RESTARTS kills in $PASS passes; the Lua-path fio was running at $UNDER_LOAD1 of them"

    tl_section "final pass: every region of every pass"
    for i in 0 1; do
        dev=${SD[$((5 + i))]}
        check "device $i: $PASS regions read back with valid crc32c headers" \
            fio --name=final$i --filename="$dev" --ioengine=libaio --direct=1 --rw=read \
                --bs=256k --verify_interval=4k --iodepth=4 --offset=$REGION \
                --size=$((PASS * REGION)) --verify=crc32c --verify_fatal=1 \
                --output="$TL_OUT/fio-final$i.txt"
    done
    # The pass above can fail: a block changed behind the daemon's back is caught.
    dd if=/dev/urandom of=/tmp/fault-kill0.img bs=4k seek=$((REGION / 4096 + 5)) count=1 \
        conv=notrunc status=none
    if fio --name=control --filename="$K0" --ioengine=libaio --direct=1 --rw=read \
        --bs=64k --verify_interval=4k --offset=$REGION --size=$REGION \
        --verify=crc32c --verify_fatal=1 --output="$TL_OUT/fio-control.txt" >/dev/null 2>&1; then
        fail "the final pass catches a corrupted block (negative control)"
    else
        pass "the final pass catches a corrupted block (negative control)"
    fi
fi
check "the rings are idle and whole: nothing in flight, none broken" rings_idle
check "no hung task in dmesg" sh -c "! dmesg | grep -q 'blocked for more than'"
check "no kernel warning or BUG" sh -c "! dmesg | grep -qE 'WARNING:|BUG:|Oops'"
N=$(dmesg | grep -c 'I/O error' || true)
tl_log "kernel I/O error lines (expected: the fault sections above): $N"

# ---------------------------------------------------------------------------
tl_section "stop"
check "the hand-made kill devices removed" kill_devs_remove
tl_daemon_stop TERM
check_eq "SIGTERM: daemon exits 0" 0 "$DSTATUS"
check "backstores removed" test ! -e "$TL_CFS/core/user_1"
tl_finish
