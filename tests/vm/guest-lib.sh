# shellcheck shell=bash
#
# Helpers for guest test scripts of the tcmu-lua VM harness.  Source it from a
# bash script that run-vm.sh runs inside the VM:
#
#   . "$TL_VM_DIR/guest-lib.sh"
#   tl_load_target_modules || tl_die "no target modules"
#   check "something works" some_command args
#   tl_finish            # prints "N passed, N failed", exits 0 or 1
#
# Environment set up by the VM (see README.md): TL_OUT (writable, shared with
# the host), TL_BUILD_DIR, TL_SRC_DIR, TL_VM_DIR, TL_SCRIPT, TL_IN_VM=1.
# Check results also go to $TL_OUT/results.txt (one "ok"/"FAIL" line each).
# Registered cleanups (tl_on_exit) run in reverse order when the script exits,
# and the summary is printed then if tl_finish was not called.

TL_CFS=/sys/kernel/config/target
TL_PASSED=0
TL_FAILED=0
TL_FAILED_NAMES=()
TL_CLEANUPS=()
TL_FINISHED=0
TL_RESULTS=${TL_OUT:+$TL_OUT/results.txt}

# --- logging ------------------------------------------------------------------

tl_uptime() { cut -d' ' -f1 /proc/uptime; }
tl_log() { printf '[%8s] %s\n' "$(tl_uptime)" "$*"; }
tl_warn() { printf '[%8s] WARNING: %s\n' "$(tl_uptime)" "$*" >&2; }
tl_section() { printf '\n[%8s] ==== %s ====\n' "$(tl_uptime)" "$*"; }

# --- results ------------------------------------------------------------------

tl_record() { # ok|FAIL description
    [ -z "$TL_RESULTS" ] || printf '%s %s\n' "$1" "$2" >>"$TL_RESULTS" 2>/dev/null
}

pass() { # description
    TL_PASSED=$((TL_PASSED + 1))
    tl_record ok "$*"
    tl_log "ok   - $*"
}

fail() { # description [detail...]
    TL_FAILED=$((TL_FAILED + 1))
    TL_FAILED_NAMES+=("$1")
    tl_record FAIL "$1"
    tl_log "FAIL - $*"
}

# check DESCRIPTION COMMAND [ARGS...]: run the command, pass if it succeeds.
# Its output is shown, indented, only when it fails.
check() {
    local desc=$1 out rc
    shift
    out=$("$@" 2>&1)
    rc=$?
    if [ $rc -eq 0 ]; then
        pass "$desc"
        return 0
    fi
    fail "$desc" "(exit $rc: $*)"
    [ -z "$out" ] || printf '%s\n' "$out" | tail -n 20 | sed 's/^/           | /'
    return 1
}

# check_eq DESCRIPTION EXPECTED ACTUAL
check_eq() {
    if [ "$2" = "$3" ]; then
        pass "$1"
        return 0
    fi
    fail "$1" "(expected '$2', got '$3')"
    return 1
}

tl_summary() {
    tl_log "$TL_PASSED passed, $TL_FAILED failed"
    local n
    for n in "${TL_FAILED_NAMES[@]}"; do
        tl_log "  failed: $n"
    done
    [ "$TL_FAILED" -eq 0 ]
}

# tl_finish: run the cleanups, print the summary and exit (1 if any check
# failed or none passed).
tl_finish() {
    tl_run_cleanups
    TL_FINISHED=1
    if tl_summary && [ "$TL_PASSED" -gt 0 ]; then
        exit 0
    fi
    exit 1
}

# tl_die MESSAGE: count a failure and finish now.
tl_die() {
    fail "$*"
    tl_finish
}

# tl_skip MESSAGE: nothing can be tested here (exit 77, like automake).
tl_skip() {
    tl_log "SKIP: $*"
    tl_run_cleanups
    TL_FINISHED=1
    exit 77
}

tl_need_cmd() { # command...: skip the test when one is missing
    local c
    for c in "$@"; do
        command -v "$c" >/dev/null 2>&1 || tl_skip "$c is not installed on the host"
    done
}

# tl_on_exit COMMAND [ARGS...]: register a cleanup; run LIFO at exit.
tl_on_exit() {
    local q
    printf -v q '%q ' "$@"
    TL_CLEANUPS+=("$q")
}

tl_run_cleanups() {
    local i
    for ((i = ${#TL_CLEANUPS[@]} - 1; i >= 0; i--)); do
        eval "${TL_CLEANUPS[i]}" || tl_warn "cleanup failed: ${TL_CLEANUPS[i]}"
    done
    TL_CLEANUPS=()
}

tl__exit_trap() {
    local rc=$?
    [ "$TL_FINISHED" = 0 ] || return
    TL_FINISHED=1
    tl_run_cleanups
    tl_summary
    if [ "$rc" -eq 0 ] && [ "$TL_FAILED" -gt 0 ]; then
        exit 1
    fi
    exit "$rc"
}
trap tl__exit_trap EXIT

# --- small utilities --------------------------------------------------------

# tl_wait SECS COMMAND [ARGS...]: poll (every 0.1 s) until the command succeeds.
tl_wait() {
    local deadline=$(( $(date +%s) + $1 ))
    shift
    until "$@"; do
        [ "$(date +%s)" -lt "$deadline" ] || return 1
        sleep 0.1
    done
}

# tl_write FILE VALUE: write a configfs/sysfs attribute, loudly on failure.
tl_write() {
    if ! printf '%s' "$2" >"$1"; then
        tl_warn "writing '$2' to $1 failed"
        return 1
    fi
}

tl_hex() { # N: N random hex digits
    od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n' | cut -c "1-$1"
}

# --- kernel modules -----------------------------------------------------------

# sd_mod and sg: there is no udev in the guest to load them on demand, and
# without sd_mod a tcm_loop LUN never becomes a /dev/sdX.
TL_TARGET_MODULES="target_core_mod target_core_user tcm_loop target_core_file target_core_iblock iscsi_target_mod crc32c_generic sd_mod sg"
TL_FABRIC_MODULES="tcm_loop iscsi_target_mod"
# Where LIO keeps persistent reservation (APTPL) and ALUA metadata; the
# default /etc/target is on the read-only root.
TL_TARGET_DBROOT=${TL_TARGET_DBROOT:-/tmp/target}

# tl_load_target_modules [MODULE...]: load the LIO modules (default: all of
# TL_TARGET_MODULES; crc32c_generic must be there before the first iSCSI
# login), point dbroot at $TL_TARGET_DBROOT (only possible before a fabric
# module registers) and check that configfs shows the target tree.
tl_load_target_modules() {
    local m rc=0
    # shellcheck disable=SC2086  # a word list
    [ $# -gt 0 ] || set -- $TL_TARGET_MODULES
    if ! grep -q ' /sys/kernel/config configfs' /proc/mounts; then
        modprobe configfs || rc=1
        mount -t configfs configfs /sys/kernel/config || rc=1
    fi
    modprobe target_core_mod || { tl_warn "modprobe target_core_mod failed"; return 1; }
    if [ -n "$TL_TARGET_DBROOT" ] &&
       [ "$(cat "$TL_CFS/dbroot" 2>/dev/null)" != "$TL_TARGET_DBROOT" ]; then
        if ! mkdir -p "$TL_TARGET_DBROOT" ||
           ! tl_write "$TL_CFS/dbroot" "$TL_TARGET_DBROOT"; then
            tl_warn "could not set dbroot to $TL_TARGET_DBROOT"
        fi
    fi
    for m in "$@"; do
        modprobe "$m" || { tl_warn "modprobe $m failed"; rc=1; }
    done
    [ -d "$TL_CFS/core" ] || { tl_warn "$TL_CFS/core missing"; rc=1; }
    return $rc
}

# tl_unload_target_modules: remove the fabric directories (they pin their
# modules) and unload the fabric and backend modules.  All targets and
# backstores must be gone already.
tl_unload_target_modules() {
    local f
    for f in loopback iscsi; do
        [ ! -d "$TL_CFS/$f" ] || rmdir "$TL_CFS/$f" || return 1
    done
    local m mods=()
    for m in $TL_FABRIC_MODULES target_core_user target_core_file \
             target_core_iblock target_core_pscsi; do
        [ ! -d "/sys/module/$m" ] || mods+=("$m")
    done
    [ ${#mods[@]} -eq 0 ] || modprobe -r "${mods[@]}"
}

# --- backstores ---------------------------------------------------------------

# tl_backstore_create HBA_DIR NAME [TOKEN...]: make core/HBA_DIR/NAME (e.g.
# user_1, rd_mcp_0, fileio_0, iblock_0), write each TOKEN to its control
# file, enable it and print its configfs path.
tl_backstore_create() {
    local hba=$1 name=$2 path t
    shift 2
    path=$TL_CFS/core/$hba/$name
    mkdir -p "$path" || return 1
    for t in "$@"; do
        tl_write "$path/control" "$t" || return 1
    done
    tl_write "$path/enable" 1 || return 1
    echo "$path"
}

# tl_user_create NAME DEV_CONFIG SIZE_BYTES [TOKEN...]: a TCMU backstore
# (hba user_${TL_USER_HBA:-1}); DEV_CONFIG is "<subtype>/<config>".
tl_user_create() {
    local name=$1 cfg=$2 size=$3
    shift 3
    tl_backstore_create "user_${TL_USER_HBA:-1}" "$name" \
        "dev_config=$cfg" "dev_size=$size" "$@"
}

# tl_rd_create NAME SIZE_MIB: a kernel RAM disk backstore.
tl_rd_create() {
    tl_backstore_create rd_mcp_0 "$1" "rd_pages=$(($2 * 256))"
}

# tl_fileio_create NAME FILE SIZE_BYTES [TOKEN...]: a kernel fileio backstore.
tl_fileio_create() {
    local name=$1 file=$2 size=$3
    shift 3
    tl_backstore_create fileio_0 "$name" "fd_dev_name=$file" "fd_dev_size=$size" "$@"
}

# tl_backstore_remove PATH: remove a backstore, and its HBA if now empty.
tl_backstore_remove() {
    rmdir "$1" || return 1
    rmdir "$(dirname "$1")" 2>/dev/null
    return 0
}

# tl_uio_of BACKSTORE_PATH: print uioN of a TCMU backstore (name
# tcm-user/<hba>/<dev>/<dev_config>), fail if there is none.
tl_uio_of() {
    local dev hba n f
    dev=$(basename "$1")
    hba=$(basename "$(dirname "$1")")
    hba=${hba#user_}
    for f in /sys/class/uio/uio*/name; do
        [ -r "$f" ] || continue
        n=$(cat "$f")
        case $n in
            "tcm-user/$hba/$dev/"*) basename "$(dirname "$f")"; return 0 ;;
        esac
    done
    return 1
}

# --- tcm_loop LUNs --------------------------------------------------------------

tl_new_wwn() { echo "naa.5001405$(tl_hex 9)"; }

# tl_loop_create BACKSTORE_PATH [WWN] [LUN]: export the backstore through a
# new tcm_loop target port (nexus first, then the LUN) and print the WWN.
tl_loop_create() {
    local bs=$1 wwn=${2:-$(tl_new_wwn)} lun=${3:-0} tpg
    tpg=$TL_CFS/loopback/$wwn/tpgt_1
    mkdir -p "$tpg/lun/lun_$lun" || return 1
    if [ -z "$(cat "$tpg/nexus" 2>/dev/null)" ]; then
        tl_write "$tpg/nexus" "$(tl_new_wwn)" || return 1
    fi
    ln -s "$bs" "$tpg/lun/lun_$lun/$(basename "$bs")" || return 1
    echo "$wwn"
}

# tl_loop_block WWN [LUN]: print the block device name (sdX) of a tcm_loop
# LUN, found through tpgt_1/address ("host:channel:target") and sysfs.
tl_loop_block() {
    local addr d
    addr=$(cat "$TL_CFS/loopback/$1/tpgt_1/address" 2>/dev/null) || return 1
    for d in /sys/class/scsi_device/"$addr:${2:-0}"/device/block/*; do
        [ -e "$d" ] || return 1
        basename "$d"
        return 0
    done
    return 1
}

# tl_loop_dev WWN [LUN] [TIMEOUT]: wait for the LUN's /dev/sdX and print it.
tl_loop_dev() {
    local end b
    end=$(( $(date +%s) + ${3:-60} ))
    while :; do
        b=$(tl_loop_block "$1" "${2:-0}") && [ -b "/dev/$b" ] && { echo "/dev/$b"; return 0; }
        [ "$(date +%s)" -lt "$end" ] || return 1
        sleep 0.1
    done
}

# tl_loop_remove WWN: tear a tcm_loop target down in reverse order: LUN
# links, LUN directories, the nexus, the TPG, the WWN.
tl_loop_remove() {
    local w=$TL_CFS/loopback/$1 l x rc=0
    [ -d "$w" ] || return 0
    for l in "$w"/tpgt_1/lun/lun_*; do
        [ -d "$l" ] || continue
        for x in "$l"/*; do
            [ -L "$x" ] && { rm -f "$x" || rc=1; }
        done
        rmdir "$l" || rc=1
    done
    if [ -n "$(cat "$w/tpgt_1/nexus" 2>/dev/null)" ]; then
        tl_write "$w/tpgt_1/nexus" NULL || rc=1
    fi
    rmdir "$w/tpgt_1" || rc=1
    rmdir "$w" || rc=1
    return $rc
}

# --- the daemon under test ----------------------------------------------------
#
# A script sets CFG (its YAML config) and LOG (where the daemon's output goes)
# and may override the command with TL_DAEMON (default: "$TL_BUILD_DIR/tcmu-lua
# daemon").  DPID is the running daemon's pid, DSTATUS its exit status after
# tl_daemon_stop ("none" if it was not running, "hung" if it did not exit).

read -ra DAEMON <<<"${TL_DAEMON:-${TL_BUILD_DIR:-.}/tcmu-lua daemon}"
DPID=

tl_daemon_running() { [ -n "$DPID" ] && kill -0 "$DPID" 2>/dev/null; }

# tl_daemon_start [ARGS...]: start it on $CFG and wait (120 s) for "ready" in
# the lines it adds to $LOG.  Fails if it exits first or never gets ready.
tl_daemon_start() {
    local from
    from=$(($(wc -l <"$LOG" 2>/dev/null || echo 0) + 1))
    "${DAEMON[@]}" -c "$CFG" "$@" >>"$LOG" 2>&1 &
    DPID=$!
    tl_wait 120 sh -c "tail -n +$from '$LOG' | grep -q ' ready' || ! kill -0 $DPID 2>/dev/null"
    tl_daemon_running && tail -n +"$from" "$LOG" | grep -q ' ready'
}

# tl_daemon_stop [SIGNAL]: signal it (TERM) and wait (90 s) for it to exit.
# Not from a subshell: $DPID is this shell's child.
tl_daemon_stop() {
    DSTATUS=none
    tl_daemon_running || return 1
    kill -"${1:-TERM}" "$DPID"
    if ! tl_wait 90 sh -c "! kill -0 $DPID 2>/dev/null"; then
        DSTATUS=hung
        return 1
    fi
    wait "$DPID"
    DSTATUS=$?
    DPID=
}

# tl_daemon_start_or_finish: tl_daemon_start as a check; without a daemon
# nothing else can run, so a failure shows the log's end and finishes.
tl_daemon_start_or_finish() {
    if tl_daemon_start; then
        pass "daemon starts and reports ready"
    else
        fail "daemon starts and reports ready"
        tail -n 30 "$LOG"
        tl_finish
    fi
}

# tl_ctl ARGS...: tcmu-lua ctl on the script's control socket ($SOCK).
tl_ctl() { "${DAEMON[0]%/*}/tcmu-lua" ctl -s "$SOCK" "$@"; }

# tl_rings_idle: the daemon lists its devices, none with a command in
# flight or a ring marked broken (prints the listing).
tl_rings_idle() {
    local j
    j=$(tl_ctl --json devices) || return 1
    printf '%s\n' "$j"
    grep -q '"inflight":0' <<<"$j" && ! grep -qE '"inflight":[1-9]' <<<"$j" &&
        grep -q '"ring_broken":false' <<<"$j" && ! grep -q '"ring_broken":true' <<<"$j"
}
