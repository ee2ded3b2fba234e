#!/bin/bash
#
# A soak: several devices and handlers under a mixed fio workload with
# verify for TL_SOAK_SECONDS (default 600), against the real kernel (runs
# inside the VM):
#   tests/vm/run-vm.sh -t 1700 tests/vm/e2e_soak.sh
#   bench/soak.sh 14400            # four hours (see docs/faults.md)
#
# Devices: file with the fast path, file with fast=false, ram, qcow2 and
# null, each behind tcm_loop with its own fio job (crc32c verify of what
# was written, except null).  While fio runs, every ~30 s one of:
#   - the file and null handlers are rewritten and `tcmu-lua ctl reload`
#     reloads them (the file devices reopen their image under load);
#   - the ram device is resized through the YAML file + `ctl reload`
#     (attrib/dev_size, netlink RECONFIG), the null device by writing
#     attrib/dev_size itself; the SCSI disks are rescanned;
#   - `tcmu-lua ctl trace` runs on a device until it shows a command.
# The daemon's VmRSS and RssAnon are sampled every ~10 s (more when the
# guest is slow).  The bound is on RssAnon, the daemon's own memory (heap,
# Lua states, stacks): VmRSS also counts the pages of the rings' data areas
# the daemon has touched, which grow with the I/O up to max_data_area_mb
# per device and are the kernel's, not a leak.  Passes when: every fio job
# ends with no error and no verify failure; after warm-up (the first
# sample at or after 20% of the run, at least 60 s) RssAnon never exceeds
# that sample by more than TL_SOAK_RSS_MIB (32) MiB; when idle no device
# has a command in flight or a broken ring; the daemon logged no error;
# the kernel logged no warning, BUG or hung task.
#
# TL_DAEMON overrides the daemon command ("$TL_BUILD_DIR/tcmu-lua daemon").

. "${TL_VM_DIR:-$(dirname "$0")}/guest-lib.sh"

[ "${TL_IN_VM:-0}" = 1 ] || { echo "e2e_soak.sh runs inside the VM: use run-vm.sh" >&2; exit 2; }
tl_need_cmd modprobe fio qemu-img blockdev

SECS=${TL_SOAK_SECONDS:-600}
RSS_BOUND_MIB=${TL_SOAK_RSS_MIB:-32}
LOG=$TL_OUT/daemon.log
CFG=/tmp/soak.yaml
SOCK=/run/tcmu-lua-soak.sock
HDIR=/tmp/soak-handlers
RSS_LOG=$TL_OUT/rss.txt
RAM_A=64M
RAM_B=96M
NULL_A=$((256 << 20))
NULL_B=$((384 << 20))
NAMES=(s_file s_lua s_ram s_qcow2 s_null)

wwn() { printf 'naa.5001405500%06x' "$1"; }
ctl() { tl_ctl "$@"; }
rings_idle() { tl_rings_idle; }

cleanup() {
    [ -z "$FIOS" ] || kill $FIOS 2>/dev/null
    if tl_daemon_running; then
        tl_warn "daemon still running at exit: stopping it"
        tl_daemon_stop TERM
    fi
    tl_log "daemon log: $LOG"
}
tl_on_exit cleanup

# config RAM_SIZE: the YAML file (written to a new file renamed over the
# old one, as an editor does).
config() {
    cat >"$CFG.new" <<EOF
daemon:
  workers: 2
  log_level: info
  control_socket: $SOCK
  handler_dirs: [$HDIR, $TL_SRC_DIR/lua/handlers]
devices:
  - name: s_file
    handler: file
    size: 128M
    hw_max_sectors: 1024
    options: {path: /tmp/soak-file.img, create: true}
    exports: {loop: {wwn: $(wwn 1)}}
  - name: s_lua
    handler: file
    size: 128M
    options: {path: /tmp/soak-lua.img, create: true, fast: false}
    exports: {loop: {wwn: $(wwn 2)}}
  - name: s_ram
    handler: ram
    size: $1
    exports: {loop: {wwn: $(wwn 3)}}
  - name: s_qcow2
    handler: qcow2
    size: 128M
    options: {path: /tmp/soak.qcow2}
    exports: {loop: {wwn: $(wwn 4)}}
  - name: s_null
    handler: 'null'   # quoted: a bare null is YAML's null
    size: $NULL_A
    exports: {loop: {wwn: $(wwn 5)}}
EOF
    mv "$CFG.new" "$CFG"
}

# status_kib FIELD: a field of the daemon's /proc status, in KiB.
status_kib() {
    local k v u
    while read -r k v u; do
        [ "$k" != "$1:" ] || { echo "$v"; return 0; }
    done <"/proc/$DPID/status"
    return 1
}

rescan() { # DEV: the SCSI disk reads its capacity again
    tl_write "/sys/block/${1#/dev/}/device/rescan" 1
}

# ---------------------------------------------------------------------------
tl_section "setup"
check "target modules load" tl_load_target_modules || tl_finish
: >"$LOG"
rm -f /tmp/soak-file.img /tmp/soak-lua.img /tmp/soak.qcow2
check "qcow2 image" qemu-img create -q -f qcow2 /tmp/soak.qcow2 128M
mkdir -p $HDIR
# version H N: a copy of the shipped handler H that logs "soak: H version
# N" when it is loaded, so the log shows each reload took.
version() {
    { echo "require('tl.log').info('soak: $1 version $2')"
      cat "$TL_SRC_DIR/lua/handlers/$1.lua"; } >"$HDIR/$1.lua.new" &&
        mv "$HDIR/$1.lua.new" "$HDIR/$1.lua"
}
version file 0
version null 0
config $RAM_A
tl_daemon_start_or_finish
declare -A SD
for i in 1 2 3 4 5; do
    SD[$i]=$(tl_loop_dev "$(wwn $i)" 0 60) || tl_die "LUN of ${NAMES[i - 1]} appeared"
    # Retries must outlast a reload or resize pause, never give up.
    tl_write "/sys/block/${SD[$i]#/dev/}/device/timeout" 120
done
tl_log "devices: ${SD[*]}"
check "handlers come from $HDIR" grep -q "s_file: serving with handler file ($HDIR/file.lua)" "$LOG"

# ---------------------------------------------------------------------------
# The ram device's data is the daemon's own memory: write its whole fio
# region first, so that what fio stores later does not count as growth.
check "ram device: its 48 MiB fio region written before the soak" \
    dd if=/dev/zero of="${SD[3]}" bs=1M count=48 oflag=direct status=none

tl_section "soak: $SECS s"
# One job per device, each with its own mix; the verify backlog checks
# blocks written a moment ago while writes go on, and the end of each job
# verifies what is left.
common=(--ioengine=libaio --direct=1 --time_based --runtime="$SECS"
        --verify=crc32c --verify_fatal=1 --verify_backlog=512 --randrepeat=0)
fio --name=file "${common[@]}" --filename="${SD[1]}" --rw=randwrite \
    --bsrange=4k-256k --size=96M --iodepth=16 --output="$TL_OUT/fio-file.txt" >/dev/null &
FIOS=$!
fio --name=lua "${common[@]}" --filename="${SD[2]}" --rw=write \
    --bs=64k --size=96M --iodepth=8 --output="$TL_OUT/fio-lua.txt" >/dev/null &
FIOS="$FIOS $!"
fio --name=ram "${common[@]}" --filename="${SD[3]}" --rw=randwrite \
    --bs=4k --size=48M --iodepth=32 --output="$TL_OUT/fio-ram.txt" >/dev/null &
FIOS="$FIOS $!"
fio --name=qcow2 "${common[@]}" --filename="${SD[4]}" --rw=randwrite \
    --bsrange=4k-128k --size=96M --iodepth=8 --output="$TL_OUT/fio-qcow2.txt" >/dev/null &
FIOS="$FIOS $!"
fio --name=null --ioengine=libaio --direct=1 --time_based --runtime="$SECS" \
    --filename="${SD[5]}" --rw=randrw --bsrange=4k-1m --size=200M --iodepth=16 \
    --output="$TL_OUT/fio-null.txt" >/dev/null &
FIOS="$FIOS $!"

JOBS=(file lua ram qcow2 null)
START=$(date +%s)
WARM=$((SECS / 5 < 60 ? 60 : SECS / 5))
BASE=
RSS_MIN=
RSS_MAX=0
AFTER_MAX=0
SAMPLES=0
RELOADS=0
RESIZES=0
TRACES=0
NEXT_ACT=$((START + 30))
ACT=0
ram=$RAM_A
null=$NULL_A
echo "# seconds VmRSS_KiB RssAnon_KiB" >"$RSS_LOG"
while :; do
    now=$(date +%s)
    el=$((now - START))
    [ $el -lt "$SECS" ] || break
    if ! rss=$(status_kib VmRSS); then
        tl_daemon_running || { fail "the daemon is gone"; break; }
        tl_warn "no VmRSS in /proc/$DPID/status this time"
        sleep 10
        continue
    fi
    anon=$(status_kib RssAnon)
    echo "$el $rss $anon" >>"$RSS_LOG"
    SAMPLES=$((SAMPLES + 1))
    [ -n "$RSS_MIN" ] && [ "$RSS_MIN" -le "$rss" ] || RSS_MIN=$rss
    [ "$RSS_MAX" -ge "$rss" ] || RSS_MAX=$rss
    if [ $el -ge $WARM ] && [ -n "$anon" ]; then
        [ -n "$BASE" ] || { BASE=$anon; tl_log "warm-up over at ${el} s: VmRSS $rss KiB, RssAnon $anon KiB"; }
        [ "$AFTER_MAX" -ge "$anon" ] || AFTER_MAX=$anon
    fi
    if [ "$now" -ge $NEXT_ACT ] && [ $((SECS - el)) -gt 20 ]; then
        case $((ACT % 3)) in
        0)  # the live trace of a device, for a few seconds
            dev=${NAMES[TRACES % 5]}
            # The binary itself in the background (not the ctl function: $!
            # would be a subshell, and killing it would leave the tracer).
            "${DAEMON[0]%/*}/tcmu-lua" ctl -s "$SOCK" trace "$dev" \
                >"$TL_OUT/trace-$TRACES.txt" 2>&1 &
            tp=$!
            # Until it shows a command (ctl starts slowly on a busy guest).
            tl_wait 60 grep -qE 'READ|WRITE' "$TL_OUT/trace-$TRACES.txt"
            # TERM: a background job of a script ignores SIGINT.
            kill $tp 2>/dev/null
            wait $tp 2>/dev/null
            if grep -qE 'READ|WRITE' "$TL_OUT/trace-$TRACES.txt"; then
                TRACES=$((TRACES + 1))
            else
                fail "ctl trace $dev showed no READ or WRITE"
            fi ;;
        1)  # handler reload: a changed file and null handler, under load
            version file $((RELOADS + 1))
            version null $((RELOADS + 1))
            if out=$(ctl reload 2>&1); then
                RELOADS=$((RELOADS + 1))
            else
                fail "ctl reload ($out)"
            fi ;;
        2)  # resize: ram through the config, null through configfs
            if [ $ram = $RAM_A ]; then ram=$RAM_B; else ram=$RAM_A; fi
            if [ $null = $NULL_A ]; then null=$NULL_B; else null=$NULL_A; fi
            config $ram
            if out=$(ctl reload 2>&1) &&
               tl_write "$TL_CFS/core/user_1/s_null/attrib/dev_size" $null; then
                RESIZES=$((RESIZES + 1))
            else
                fail "resize to $ram / $null ($out)"
            fi
            rescan "${SD[3]}"
            rescan "${SD[5]}"
            tl_wait 60 sh -c "[ \$(blockdev --getsize64 ${SD[3]}) = $((${ram%M} << 20)) ] &&
                [ \$(blockdev --getsize64 ${SD[5]}) = $null ]" ||
                fail "the disks show the new sizes ($ram, $null)" ;;
        esac
        ACT=$((ACT + 1))
        NEXT_ACT=$((now + 30))
    fi
    sleep 10
done

tl_section "results"
i=0
for p in $FIOS; do
    name=${JOBS[i]}
    i=$((i + 1))
    if ! tl_wait 900 sh -c "! kill -0 $p 2>/dev/null"; then
        fail "fio $name finished"
        kill -9 $p
        continue
    fi
    wait $p
    check_eq "fio $name: exit status (no I/O or verify error)" 0 $?
    grep -hE "err=|IOPS" "$TL_OUT/fio-$name.txt" | sed 's/^/    /'
done
FIOS=
tl_log "VmRSS: $SAMPLES samples, min $RSS_MIN KiB, max $RSS_MAX KiB; RssAnon after warm-up: first $BASE KiB, max $AFTER_MAX KiB"
tl_log "reloads $RELOADS, resizes $RESIZES, traces $TRACES"
check "RSS was sampled after warm-up" test -n "$BASE"
check "RssAnon growth after warm-up within $RSS_BOUND_MIB MiB" \
    test $((AFTER_MAX - ${BASE:-0})) -le $((RSS_BOUND_MIB * 1024))
check "at least one reload, resize and trace each" \
    test $RELOADS -ge 1 -a $RESIZES -ge 1 -a $TRACES -ge 1
check_eq "every reload loaded the new file handler (versions seen)" $((RELOADS + 1)) \
    "$(grep -o 'soak: file version [0-9]*' "$LOG" | sort -u | wc -l)"
check "idle: nothing in flight, no ring broken" rings_idle
check "the daemon logged no error" sh -c "! grep -E '^[0-9:.]+ error ' '$LOG'"
check "no hung task in dmesg" sh -c "! dmesg | grep -q 'blocked for more than'"
check "no kernel warning or BUG" sh -c "! dmesg | grep -qE 'WARNING:|BUG:|Oops'"
check "no I/O error in the kernel log" sh -c "! dmesg | grep -q 'I/O error'"

tl_section "stop"
tl_daemon_stop TERM
check_eq "SIGTERM: daemon exits 0" 0 "$DSTATUS"
tl_finish
