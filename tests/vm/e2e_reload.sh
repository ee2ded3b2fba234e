#!/bin/bash
#
# Reloads under I/O, against the real kernel (runs inside the VM):
#   tests/vm/run-vm.sh -b build -o build/vm-out/reload tests/vm/e2e_reload.sh
#
#  A. Handler hot reload: fio writes and verifies (crc32c) a Lua-handled
#     RAM disk while its handler file is rewritten 50 times, valid versions
#     (a new version constant, the memory kept by migrate()) alternating
#     with broken ones (a syntax error, an error at load).  fio must see no
#     error and no verify failure; every broken version must be reported
#     ("hot reload failed"); the last valid version must be the one running
#     (it is the INQUIRY product revision).
#  B. Config reload: with fio verifying one device, the YAML is edited and
#     applied with `tcmu-lua ctl reload` (and once by hot_reload alone):
#     a device is added, its options change, it grows, it is removed, a bad
#     file changes nothing; configfs and /dev/sdX follow, fio stays clean.
#
# TL_DAEMON overrides the daemon command ("$TL_BUILD_DIR/tcmu-lua daemon").
# TL_RELOAD_VERSIONS: how many handler rewrites in part A (default 50).

. "${TL_VM_DIR:-$(dirname "$0")}/guest-lib.sh"

[ "${TL_IN_VM:-0}" = 1 ] || { echo "e2e_reload.sh runs inside the VM: use run-vm.sh" >&2; exit 2; }
tl_need_cmd modprobe sg_inq blockdev fio dd cmp

CTL=("${DAEMON[0]%/*}/tcmu-lua" ctl -s /run/tcmu-lua-reload.sock)
LOG=$TL_OUT/daemon.log
CFG=/tmp/reload.yaml
HDIR=/tmp/rl-handlers
NVERSIONS=${TL_RELOAD_VERSIONS:-50}
WWN_HOT=naa.5001405a10ad0001
WWN_A=naa.5001405a10ad000a
WWN_B=naa.5001405a10ad000b
WWN_C=naa.5001405a10ad000c
U=$TL_CFS/core/user_1

# --- the daemon (as in e2e_basic.sh) ----------------------------------------------




cleanup() {
    [ -n "$FIOLOOP" ] && kill "$FIOLOOP" 2>/dev/null
    if tl_daemon_running; then
        tl_warn "daemon still running at exit: stopping it"
        tl_daemon_stop TERM
    fi
    tl_log "daemon log: $LOG"
}
tl_on_exit cleanup

log_count() { grep -c -- "$1" "$LOG"; }

# fio_loop NAME DEV STOPFILE: run write+verify passes until STOPFILE exists;
# each pass's status goes to $TL_OUT/fio-NAME.status, its report to
# fio-NAME-<n>.txt.
fio_pass() { # NAME DEV N: one write+verify pass
    fio --name="$1" --filename="$2" --ioengine=libaio --direct=1 \
        --rw=randwrite --bs=4k --size=8M --iodepth=8 \
        --verify=crc32c --verify_fatal=1 --do_verify=1 --randrepeat=0 \
        --output="$TL_OUT/fio-$1-$3.txt" >/dev/null 2>&1
}
fio_loop() {
    local name=$1 dev=$2 stop=$3 n=0 rc
    : >"$TL_OUT/fio-$name.status"
    while [ ! -e "$stop" ]; do
        n=$((n + 1))
        fio_pass "$name" "$dev" "$n"
        rc=$?
        echo "$n $rc" >>"$TL_OUT/fio-$name.status"
        [ $rc -eq 0 ] || break
    done
}

# fio_judge NAME: every pass ended 0 (and there was at least one).
fio_judge() {
    local f=$TL_OUT/fio-$1.status
    [ -s "$f" ] && ! awk '$2 != 0 { bad = 1 } END { exit !bad }' "$f"
}

# The longest completion latency fio saw over all passes, in usec.
fio_max_lat() {
    cat "$TL_OUT"/fio-"$1"-*.txt 2>/dev/null | awk '
        /^ *clat \((nsec|usec|msec)\)/ {
            u = $2; gsub(/[():]/, "", u)
            m = $0; sub(/.*max=/, "", m); sub(/[,k ].*/, "", m)
            if ($0 ~ /max= *[0-9.]+k/) m *= 1000
            f = u == "nsec" ? 0.001 : u == "msec" ? 1000 : 1
            if (m * f > best) best = m * f
        }
        END { printf "%d\n", best }'
}

# --- the handler versions for part A ------------------------------------------

# rlram_valid N: a copy of ram.lua whose version constant is vNNN (INQUIRY
# revision by default) and whose migrate() keeps the memory.  Even and odd
# versions differ in shape, not only in the constant.
rlram_valid() {
    local v
    v=$(printf 'v%03d' "$1")
    cat <<EOF
-- rlram: lua/handlers/ram.lua with a version, rewritten by e2e_reload.sh.
local C = require('tl.abi').C
local sys = require 'tl.sys'
local log = require 'tl.log'
local VERSION = '$v'

EOF
    if [ $(($1 % 2)) = 0 ]; then
        echo "local function keep(dev, old_state) log.info('rlram %s: migrated to ' .. VERSION, dev.name); return old_state end"
    else
        echo "local keep = function(dev, old_state)"
        echo "  log.info('rlram %s: migrated to %s', dev.name, VERSION)"
        echo "  return old_state"
        echo "end"
    fi
    cat <<'EOF'

return {
  description = 'memory-backed disk with a version',
  schema = { revision = { type = 'string', default = VERSION } },
  unmap_zeroes = true,

  open = function(dev)
    local mem, err = sys.lazy_alloc(dev.info.size)
    if not mem then return nil, 'cannot allocate: ' .. err end
    log.info('rlram %s: opened at ' .. VERSION, dev.name)
    return { mem = mem, size = dev.info.size }
  end,

  migrate = keep,

  close = function(dev)
    sys.free(dev.state.mem, dev.state.size)
  end,

  read = function(dev, cmd, offset, length, cmd_off)
    C.tl_ffi_copy_to(cmd, cmd_off, dev.state.mem + offset, length)
  end,

  write = function(dev, cmd, offset, length, cmd_off)
    C.tl_ffi_copy_from(cmd, cmd_off, dev.state.mem + offset, length)
  end,

  resize = function(dev, size)
    local mem, err = sys.lazy_resize(dev.state.mem, dev.state.size, size)
    if not mem then error('cannot resize: ' .. err) end
    dev.state.mem, dev.state.size = mem, size
  end,

  unmap = function(dev, cmd, offset, length)
    sys.discard(dev.state.mem, offset, length)
  end,
}
EOF
}

# rlram_broken N: a syntax error (N/2 even) or an error at load (odd).
rlram_broken() {
    if [ $(($1 / 2 % 2)) = 0 ]; then
        printf -- '-- broken %d: syntax\nreturn { read = function(dev) end\n' "$1"
    else
        printf -- '-- broken %d: load\nerror("broken version %d on purpose")\nreturn {}\n' "$1" "$1"
    fi
}

# put_handler FILE TEXT-PRODUCER...: alternately written in place and
# replaced by a rename, as editors do.
WRITES=0
put_handler() {
    local f=$HDIR/rlram.lua
    WRITES=$((WRITES + 1))
    if [ $((WRITES % 2)) = 0 ]; then
        "$@" >"$f"
    else
        "$@" >"$HDIR/.rlram.lua.tmp" && mv "$HDIR/.rlram.lua.tmp" "$f"
    fi
}

revision_of() { sg_inq "$1" 2>/dev/null | sed -n 's/^ *Product revision level: *//p' | tr -d ' '; }

# ---------------------------------------------------------------------------
tl_section "setup"
check "target modules load" tl_load_target_modules || tl_finish
check "the daemon binary exists" test -x "${DAEMON[0]}" || tl_finish
: >"$LOG"
mkdir -p "$HDIR"
cp "$TL_SRC_DIR/lua/handlers/ram.lua" "$HDIR/ram.lua"
rlram_valid 0 >"$HDIR/rlram.lua"

write_cfg() { # extra device YAML on stdin, appended after the fixed ones
    {
        cat <<EOF
daemon:
  workers: 2
  log_level: info
  hot_reload: true
  control_socket: /run/tcmu-lua-reload.sock
  handler_dirs: [$HDIR]
devices:
  - name: rl_hot
    handler: rlram
    size: 64M
    exports:
      loop: {wwn: $WWN_HOT}
  - name: rl_a
    handler: ram
    size: 32M
    exports:
      loop: {wwn: $WWN_A}
EOF
        cat
    } >"$CFG.new" && mv "$CFG.new" "$CFG"
}
DEV_B="  - name: rl_b
    handler: ram
    size: 16M
    exports:
      loop: {wwn: $WWN_B}"
echo "$DEV_B" | write_cfg

tl_section "start"
if tl_daemon_start; then pass "daemon starts"; else
    fail "daemon starts"; tail -n 30 "$LOG"; tl_finish
fi
SD_HOT=$(tl_loop_dev $WWN_HOT 0 60) && pass "rl_hot is $SD_HOT" || fail "rl_hot appeared"
SD_A=$(tl_loop_dev $WWN_A 0 60) && pass "rl_a is $SD_A" || fail "rl_a appeared"
SD_B=$(tl_loop_dev $WWN_B 0 60) && pass "rl_b is $SD_B" || fail "rl_b appeared"
[ -n "$SD_HOT" ] && [ -n "$SD_A" ] && [ -n "$SD_B" ] || tl_finish
check_eq "rl_hot runs version v000" v000 "$(revision_of "$SD_HOT")"
# The same I/O without reloads, to compare latencies with.
check "baseline fio pass on rl_hot (no reloads)" fio_pass base "$SD_HOT" 1
BASE_MAX=$(fio_max_lat base)
tl_log "longest fio completion latency without reloads: ${BASE_MAX} usec"
echo "$BASE_MAX" >"$TL_OUT/max-lat-base-usec"

# ---------------------------------------------------------------------------
tl_section "A. handler hot reload x$NVERSIONS under fio verify"
rm -f /tmp/rl-stop-hot
fio_loop hot "$SD_HOT" /tmp/rl-stop-hot &
FIOLOOP=$!
sleep 2
# Reload verdicts so far (one line per reload, good or bad).
verdicts() { grep -c -e 'hot reload failed' -e 'hot reload: handlers reloaded' "$LOG"; }
verdict_after() { [ "$(verdicts)" -gt "$1" ]; }
BROKEN=0 LAST_VALID=0 LOST=0
T0=$(date +%s)
for i in $(seq 1 "$NVERSIONS"); do
    before=$(verdicts)
    if [ $((i % 2)) = 0 ]; then
        put_handler rlram_broken "$i"
        BROKEN=$((BROKEN + 1))
    else
        put_handler rlram_valid "$i"
        LAST_VALID=$i
    fi
    # One reload per write: wait for its verdict before the next one.
    if ! tl_wait 30 verdict_after "$before"; then
        LOST=$((LOST + 1))
        tl_warn "version $i: no reload reported within 30 s"
    fi
    sleep 0.5
done
tl_log "$NVERSIONS versions written in $(( $(date +%s) - T0 )) s"
touch /tmp/rl-stop-hot
wait $FIOLOOP
FIOLOOP=
check_eq "every write was followed by one reload" 0 "$LOST"
check_eq "'hot reload failed' lines = broken versions" "$BROKEN" "$(log_count 'hot reload failed')"
check "a syntax error was reported with file:line" grep -q "hot reload failed.*rlram.lua:[0-9]*:" "$LOG"
check "an error at load was reported" grep -q "hot reload failed.*broken version" "$LOG"
check "migrate() ran for the last valid version" \
    grep -q "rlram rl_hot: migrated to $(printf 'v%03d' $LAST_VALID)" "$LOG"
check_eq "the last valid version runs (INQUIRY revision)" \
    "$(printf 'v%03d' $LAST_VALID)" "$(revision_of "$SD_HOT")"
check "fio passes ran: $(wc -l <"$TL_OUT/fio-hot.status")" test -s "$TL_OUT/fio-hot.status"
check "fio: no error, no verify failure" fio_judge hot
check "the daemon never failed a command" sh -c "! grep -q 'handler error' '$LOG'"
HOT_MAX=$(fio_max_lat hot)
tl_log "longest fio completion latency during handler reloads: ${HOT_MAX} usec"
echo "$HOT_MAX" >"$TL_OUT/max-lat-hot-usec"
# Once more, the handler back to a valid version that stays.
put_handler rlram_valid 99
check "version v099 is picked up" tl_wait 20 sh -c "[ \"\$(sg_inq $SD_HOT 2>/dev/null | sed -n 's/^ *Product revision level: *//p' | tr -d ' ')\" = v099 ]"

# ---------------------------------------------------------------------------
tl_section "B. config reload under fio verify on rl_a"
rm -f /tmp/rl-stop-a
fio_loop a "$SD_A" /tmp/rl-stop-a &
FIOLOOP=$!
sleep 2

# reload_wait: wait for the job of the last reload to report.
reload_done_after() { [ "$(log_count 'reload: done')" -gt "$1" ]; }
reload_wait() { # COUNT-BEFORE
    tl_wait 120 reload_done_after "$1"
}

# B1: add a device.
DEV_C="  - name: rl_c
    handler: ram
    size: 8M
    exports:
      loop: {wwn: $WWN_C}"
DONE=$(log_count 'reload: done')
printf '%s\n%s\n' "$DEV_B" "$DEV_C" | write_cfg
OUT=$("${CTL[@]}" reload 2>&1)
check "ctl reload (add rl_c) succeeds" test $? = 0
check "add: the reload job finished" reload_wait "$DONE"
check "add: rl_c in configfs, enabled" grep -q 1 "$U/rl_c/enable"
SD_C=$(tl_loop_dev $WWN_C 0 60) && pass "add: rl_c appeared as $SD_C" || fail "add: rl_c appeared"
dd if=/dev/urandom of=/tmp/rl-pat bs=1M count=2 status=none
[ -n "$SD_C" ] && check "add: rl_c keeps data" sh -c \
    "dd if=/tmp/rl-pat of=$SD_C bs=1M oflag=direct status=none && dd if=$SD_C bs=1M count=2 iflag=direct status=none | cmp - /tmp/rl-pat"

# B2: change an option of rl_b (the INQUIRY revision: the handler reopens).
check_eq "options: rl_b revision before" 0001 "$(revision_of "$SD_B")"
DEV_B2="$DEV_B
    options: {revision: opt2}"
printf '%s\n%s\n' "$DEV_B2" "$DEV_C" | write_cfg
OUT=$("${CTL[@]}" reload 2>&1)
check "ctl reload (rl_b options) succeeds" test $? = 0
check "options: the daemon reopened rl_b" grep -q "rl_b: reopened with new options" "$LOG"
check_eq "options: rl_b answers INQUIRY with the new revision" opt2 "$(revision_of "$SD_B")"

# B3: an option the handler does not know is refused and changes nothing.
printf '%s\n%s\n' "$DEV_B
    options: {revision: opt3, no_such_option: 1}" "$DEV_C" | write_cfg
OUT=$("${CTL[@]}" reload 2>&1)
RC=$?
tl_log "ctl reload with a bad option: $OUT"
check "bad option: ctl reload fails" test $RC != 0
check "bad option: the error names the file, line and option" \
    grep -q "$CFG:[0-9]*: rl_b:.*no_such_option" <<<"$OUT"
check_eq "bad option: rl_b keeps the old options" opt2 "$(revision_of "$SD_B")"

# B4: grow rl_b through the kernel.
DONE=$(log_count 'reload: done')
printf '%s\n%s\n' "$(sed 's/size: 16M/size: 24M/' <<<"$DEV_B2")" "$DEV_C" | write_cfg
OUT=$("${CTL[@]}" reload 2>&1)
check "ctl reload (rl_b 16M -> 24M) succeeds" test $? = 0
check "size: the reload job finished" reload_wait "$DONE"
check_eq "size: attrib/dev_size" $((24 << 20)) "$(cat "$U/rl_b/attrib/dev_size")"
check "size: the worker was told (RECONFIG)" grep -q "rl_b: resized from" "$LOG"
tl_write "/sys/block/${SD_B#/dev/}/device/rescan" 1
check "size: /dev capacity after a rescan" tl_wait 10 sh -c "[ \$(blockdev --getsize64 $SD_B) = $((24 << 20)) ]"

# B5: a broken file changes nothing; the error comes back to ctl.
cp "$CFG" /tmp/rl-good.yaml
printf 'devices:\n  - name: x\n    handler: ram\n    size: lots\n' >"$CFG.new" && mv "$CFG.new" "$CFG"
OUT=$("${CTL[@]}" reload 2>&1)
RC=$?
tl_log "ctl reload with a broken file: $OUT"
check "broken file: ctl reload fails" test $RC != 0
check_eq "broken file: file:line:column in the answer" \
    "tcmu-lua ctl: $CFG:4:11: devices[0].size: expected a size like 64M" "$OUT"
check "broken file: rl_c still there" test -e "$U/rl_c/enable"
cp /tmp/rl-good.yaml "$CFG.new" && mv "$CFG.new" "$CFG"
sleep 1    # the hot reload of the good file again: nothing to do

# B6: remove rl_c.
DONE=$(log_count 'reload: done')
printf '%s\n' "$(sed 's/size: 16M/size: 24M/' <<<"$DEV_B2")" | write_cfg
OUT=$("${CTL[@]}" reload 2>&1)
check "ctl reload (remove rl_c) succeeds" test $? = 0
check "remove: the reload job finished" reload_wait "$DONE"
check "remove: rl_c gone from configfs" test ! -e "$U/rl_c"
check "remove: its loop target is gone" test ! -e "$TL_CFS/loopback/$WWN_C"
[ -n "$SD_C" ] && check "remove: $SD_C is gone" tl_wait 20 test ! -e "$SD_C"
check "remove: the daemon let go of rl_c" grep -q "rl_c: no longer served" "$LOG"

# B7: hot_reload alone (no ctl): rl_c comes back.
DONE=$(log_count 'reload: done')
printf '%s\n%s\n' "$(sed 's/size: 16M/size: 24M/' <<<"$DEV_B2")" "$DEV_C" | write_cfg
check "hot_reload: the file change alone applies it" reload_wait "$DONE"
SD_C=$(tl_loop_dev $WWN_C 0 60) && pass "hot_reload: rl_c is back as $SD_C" || fail "hot_reload: rl_c is back"

# B8: a start-time setting is reported, not applied.
sed 's/workers: 2/workers: 3/' "$CFG" >"$CFG.new" && mv "$CFG.new" "$CFG"
OUT=$("${CTL[@]}" reload 2>&1)
check "workers change: reported as needing a restart" \
    grep -q "daemon.workers changed (2 -> 3): needs a restart" "$LOG"

touch /tmp/rl-stop-a
wait $FIOLOOP
FIOLOOP=
check "fio on rl_a: $(wc -l <"$TL_OUT/fio-a.status") passes, no error, no verify failure" fio_judge a
A_MAX=$(fio_max_lat a)
tl_log "longest fio completion latency on rl_a during config reloads: ${A_MAX} usec"
echo "$A_MAX" >"$TL_OUT/max-lat-a-usec"
if tl_daemon_running; then pass "daemon still running"; else fail "daemon still running"; fi

# ---------------------------------------------------------------------------
tl_section "stop"
tl_daemon_stop TERM
check_eq "SIGTERM: daemon exits 0" 0 "$DSTATUS"
check "backstores removed" test ! -e "$U"
check "loop targets removed" sh -c "! ls $TL_CFS/loopback 2>/dev/null | grep -q naa"
check "modules unload (nothing left holding them)" tl_unload_target_modules
tl_finish
