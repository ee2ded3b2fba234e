#!/bin/bash
#
# The control socket against a running daemon on the real kernel (runs
# inside the VM):   tests/vm/run-vm.sh tests/vm/e2e_ctl.sh
#
# A RAM disk behind tcm_loop under fio; `tcmu-lua ctl` status, devices,
# stats, metrics, log-level, reload and trace all answer, with figures
# that move as I/O runs; the socket is root-only (by its mode, and by
# SO_PEERCRED when the mode is loosened); errors are errors.  The daemon
# runs with no_new_privs and only the capabilities docs/security.md lists,
# in every thread, and all of the above works that way.

. "${TL_VM_DIR:-$(dirname "$0")}/guest-lib.sh"

[ "${TL_IN_VM:-0}" = 1 ] || { echo "e2e_ctl.sh runs inside the VM: use run-vm.sh" >&2; exit 2; }
tl_need_cmd modprobe fio setpriv

TL=$TL_BUILD_DIR/tcmu-lua
LOG=$TL_OUT/daemon.log
CFG=/tmp/ctl.yaml
SOCK=/run/tcmu-lua-ctl.sock
WWN=naa.5001405c71000001
DPID=

ctl() { "$TL" ctl -s "$SOCK" "$@"; }
# has TEXT COMMAND...: the command succeeds and prints TEXT.
has() { local t=$1 o; shift; o=$("$@" 2>&1) && grep -q -- "$t" <<<"$o"; }
# refuses TEXT COMMAND...: the command fails and says TEXT.
refuses() { local t=$1 o; shift; ! o=$("$@" 2>&1) && grep -q -- "$t" <<<"$o"; }


cleanup() {
	[ -z "$DPID" ] || { kill -TERM "$DPID" 2>/dev/null; wait "$DPID" 2>/dev/null; }
}
tl_on_exit cleanup

tl_section "setup"
check "target modules load" tl_load_target_modules || tl_finish
cat >"$CFG" <<EOF
daemon:
  control_socket: $SOCK
devices:
  - name: ctl_ram
    handler: ram
    size: 64M
    exports:
      loop: {wwn: $WWN}
EOF
"$TL" daemon -c "$CFG" >"$LOG" 2>&1 &
DPID=$!
check "the daemon is ready" tl_wait 60 grep -q ' ready' "$LOG" || tl_finish
DEV=$(tl_loop_dev "$WWN") || { fail "no /dev/sdX for the LUN"; tl_finish; }
check_eq "the socket is root-only" srw------- "$(stat -c %A "$SOCK")"

tl_section "privileges"
# CAP_DAC_OVERRIDE 1, CAP_DAC_READ_SEARCH 2, CAP_NET_ADMIN 12, CAP_IPC_LOCK 14
KEEP=0000000000005006
grep -E 'Cap|NoNewPrivs' "/proc/$DPID/status"
check_eq "no_new_privs is set" 1 "$(awk '/^NoNewPrivs:/ {print $2}' "/proc/$DPID/status")"
check_eq "the bounding set holds only what is needed" $KEEP \
	"$(awk '/^CapBnd:/ {print $2}' "/proc/$DPID/status")"
check_eq "every thread's effective and permitted sets are the same" \
	"$(ls /proc/$DPID/task | wc -l)" \
	"$(cat /proc/$DPID/task/*/status | grep -cE "^Cap(Eff|Prm):[[:space:]]+$KEEP$" | awk '{print $1 / 2}')"
check_eq "no inheritable or ambient capabilities" 0 \
	"$(grep -E '^Cap(Inh|Amb):' /proc/$DPID/task/*/status | grep -vc ':[[:space:]]*0000000000000000$')"
check "the daemon logged what it kept" grep -q 'privileges: no_new_privs; capabilities kept: net_admin dac_override dac_read_search ipc_lock' "$LOG"

tl_section "root only"
nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
check "a non-root user cannot connect (socket mode)" \
	refuses 'the control socket is for root only' nobody "$TL" ctl -s "$SOCK" status
# Loosen the mode by hand: SO_PEERCRED still says no, and the daemon logs it.
chmod 0666 "$SOCK"
check "a non-root user is refused by the daemon (SO_PEERCRED)" \
	refuses 'permission denied: the control socket is for root only' \
	nobody "$TL" ctl -s "$SOCK" status
check "the refusal is logged with the peer's uid" \
	tl_wait 10 grep -q 'control: refused a client that is not root (pid [0-9]*, uid 65534, gid 65534)' "$LOG"
chmod 0600 "$SOCK"
check "root still gets answers" has 'tcmu-lua ' ctl status

tl_section "commands"
ctl status
check "status names the version and one device" has 'tcmu-lua .*1 devices' ctl status
ctl devices
check "devices lists ctl_ram with its handler" has '^ctl_ram  *ram ' ctl devices

fio --name=load --filename="$DEV" --ioengine=libaio --direct=1 --rw=randrw \
	--bs=4k --iodepth=8 --runtime=6 --time_based --output="$TL_OUT/fio.txt" &
FPID=$!
sleep 2
# The binary, not the ctl function: $! must be the tracer, not a subshell.
"$TL" ctl -s "$SOCK" trace ctl_ram >"$TL_OUT/trace.txt" 2>"$TL_OUT/trace.err" &
TPID=$!
sleep 2
kill "$TPID" 2>/dev/null
wait "$TPID" 2>/dev/null
wait "$FPID"
check "fio ran without errors" grep -q 'err= 0' "$TL_OUT/fio.txt"
head -5 "$TL_OUT/trace.txt"
check "trace shows decoded READs and WRITEs" \
	sh -c "grep -q '^READ(10)' '$TL_OUT/trace.txt' && grep -q '^WRITE(10)' '$TL_OUT/trace.txt'"
check "trace shows status and latency" grep -q 'GOOD .* us' "$TL_OUT/trace.txt"

ctl stats ctl_ram | tee "$TL_OUT/stats.txt"
# At least what fio issued (the kernel's partition scan reads some more);
# how many that is depends on the machine's speed, not on us.
IOS=$(sed -n 's/.*issued rwts: total=\([0-9]*\),\([0-9]*\),.*/\1 \2/p' "$TL_OUT/fio.txt")
check "stats counts the reads and writes fio issued ($IOS)" awk -v ios="$IOS" \
	'BEGIN {split(ios, n, " ")} $1=="read" && $2>=n[1] && n[1]>0 {r=1}
	 $1=="write" && $2>=n[2] && n[2]>0 {w=1} END {exit !(r&&w)}' \
	"$TL_OUT/stats.txt"
check "stats --json has percentiles" has '"p99_ns":[1-9]' ctl --json stats ctl_ram
ctl metrics >"$TL_OUT/metrics.txt"
check "metrics is Prometheus text" \
	grep -q '^tcmu_lua_commands_total{device="ctl_ram",kind="read"} [1-9]' "$TL_OUT/metrics.txt"
check "metrics has latency quantiles" \
	grep -q '^tcmu_lua_latency_ns{device="ctl_ram",kind="write",quantile="0.99"}' "$TL_OUT/metrics.txt"

check "log-level debug is accepted" has 'log level debug' ctl log-level debug
check "status reports the new level" has 'log level debug' ctl status
check "a bad level is refused" refuses 'level must be' ctl log-level loud
check "reload answers" has reloaded ctl reload
check "stats of an unknown device is an error" refuses 'no such device' ctl stats nosuch
check "a missing socket is a clear error" \
	refuses 'No such file' "$TL" ctl -s /run/nothing.sock status

tl_section "stop"
kill -TERM "$DPID"
wait "$DPID"
check_eq "the daemon exits 0 on SIGTERM" 0 $?
DPID=
check "the socket is removed at exit" test ! -e "$SOCK"
tl_finish
