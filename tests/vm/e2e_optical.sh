#!/bin/bash
#
# End-to-end test of the optical handler (a CD/DVD-ROM drive over an ISO
# image) against the real kernel (runs inside the VM):
#   tests/vm/run-vm.sh tests/vm/e2e_optical.sh
#
#  1. an ISO 9660 image with one file is made in the guest (by a small Lua
#     writer below: no genisoimage needed);
#  2. the daemon exports it from YAML through tcm_loop; sr_mod (loaded by
#     hand: no udev) makes it /dev/srN;
#  3. sg_inq: peripheral device type 5, removable; capacity = the image;
#  4. mount -t iso9660 -o ro, the file's content equals the source;
#  5. PREVENT ALLOW MEDIUM REMOVAL blocks sg_start --eject;
#  6. sg_start --eject: NOT READY / MEDIUM NOT PRESENT, mount fails
#     (autoclose off); sg_start --load: ready again, mount works;
#  7. with autoclose on, mounting an ejected drive loads it (the kernel
#     closes the tray with START STOP UNIT LoEj);
#  8. the same image as a DVD (media: dvd): profile DVD-ROM, mounts;
#  9. SIGTERM: the daemon exits 0 and removes what it made.
#
# TL_DAEMON overrides the daemon command ("$TL_BUILD_DIR/tcmu-lua daemon").

. "${TL_VM_DIR:-$(dirname "$0")}/guest-lib.sh"

[ "${TL_IN_VM:-0}" = 1 ] || { echo "e2e_optical.sh runs inside the VM: use run-vm.sh" >&2; exit 2; }
tl_need_cmd modprobe sg_inq sg_start sg_turs sg_prevent sg_get_config blockdev cmp mount mountpoint

TCMU_LUA=${DAEMON[0]%/*}/tcmu-lua
LOG=$TL_OUT/daemon.log
CFG=/tmp/optical.yaml
ISO=/tmp/optical.iso
SRC=/tmp/optical-src.bin
MNT=/tmp/optical-mnt
WWN=naa.5001405e2e0000cd
WWN_DVD=naa.5001405e2e0000dd

cleanup() {
    umount "$MNT" 2>/dev/null
    if tl_daemon_running; then
        tl_warn "daemon still running at exit: stopping it"
        tl_daemon_stop TERM
    fi
    tl_log "daemon log: $LOG"
}
tl_on_exit cleanup

# mkiso OUT NAME SRC: a minimal ISO 9660 image (ECMA-119) holding the file
# SRC as NAME: system area, primary volume descriptor (16), terminator (17),
# L and M path tables (18, 19), root directory (20), the file's data (21..).
mkiso() {
    cat >/tmp/mkiso.lua <<'EOF'
local out, name, src = arg[1], arg[2], arg[3]
local data = assert(io.open(src, 'rb')):read('*a')
local B = 2048
local function le32(v)
  return string.char(v % 256, math.floor(v / 256) % 256, math.floor(v / 65536) % 256,
    math.floor(v / 16777216) % 256)
end
local function be32(v) return le32(v):reverse() end
local function both32(v) return le32(v) .. be32(v) end
local function both16(v) local l = string.char(v % 256, math.floor(v / 256)) return l .. l:reverse() end
local function pad(s, n, c) return s .. (c or ' '):rep(n - #s) end
local function block(s) assert(#s <= B) return s .. ('\0'):rep(B - #s) end
local ROOT, FILE = 20, 21
local nfile = math.max(1, math.ceil(#data / B))
local total = FILE + nfile
local DATE = string.char(126, 1, 1, 0, 0, 0, 0)
local function record(lba, len, flags, id)
  local n = 33 + #id
  if n % 2 == 1 then n = n + 1 end
  return pad(string.char(n, 0) .. both32(lba) .. both32(len) .. DATE
    .. string.char(flags, 0, 0) .. both16(1) .. string.char(#id) .. id, n, '\0')
end
local root = record(ROOT, B, 2, '\0')
local pvd = '\1CD001\1\0' .. pad('LINUX', 32) .. pad('TCMULUA', 32) .. ('\0'):rep(8)
  .. both32(total) .. ('\0'):rep(32) .. both16(1) .. both16(1) .. both16(B)
  .. both32(10) .. le32(18) .. le32(0) .. be32(19) .. be32(0) .. root
  .. (' '):rep(128 * 4) .. (' '):rep(37 * 3) .. (('0'):rep(16) .. '\0'):rep(4) .. '\1'
local f = assert(io.open(out, 'wb'))
f:write(('\0'):rep(16 * B), block(pvd), block('\255CD001\1'))
f:write(block('\1\0' .. le32(ROOT) .. '\1\0\0\0'), block('\1\0' .. be32(ROOT) .. '\0\1\0\0'))
f:write(block(root .. record(ROOT, B, 2, '\1') .. record(FILE, #data, 0, name .. ';1')))
f:write(data, ('\0'):rep(nfile * B - #data))
f:close()
EOF
    "$TCMU_LUA" script /tmp/mkiso.lua "$@"
}

# turs: what TEST UNIT READY says, with the sense decoded.  Through the sg
# node: every close of /dev/srN makes the cdrom layer unlock the door
# (PREVENT ALLOW MEDIUM REMOVAL 0), so lock tests must not go through it.
turs() { sg_turs -v "$SG" 2>&1; }

# ---------------------------------------------------------------------------
tl_section "setup"
check "target modules load" tl_load_target_modules || tl_finish
check "sr_mod loads" modprobe sr_mod || tl_finish
check "the daemon binary exists" test -x "${DAEMON[0]}" || tl_finish
: >"$LOG"
head -c 700001 /dev/urandom >"$SRC"
check "ISO image made" mkiso "$ISO" DATA.BIN "$SRC" || tl_finish
ISO_SIZE=$(stat -c %s "$ISO")
tl_log "image: $ISO_SIZE bytes"

cat >"$CFG" <<EOF
daemon:
  workers: 1
  log_level: info
devices:
  - name: e2e_cd
    handler: optical
    size: $ISO_SIZE
    block_size: 2048
    options:
      path: $ISO
      media: cd
    exports:
      loop: {wwn: $WWN}
  - name: e2e_dvd
    handler: optical
    size: $ISO_SIZE
    block_size: 2048
    options:
      path: $ISO
      media: dvd
    exports:
      loop: {wwn: $WWN_DVD}
EOF

tl_daemon_start_or_finish
SR=$(tl_loop_dev $WWN 0 60) && pass "drive $SR appeared" || { fail "drive appeared"; tl_finish; }
check "it is an sr device" grep -q '^/dev/sr' <<<"$SR"
ADDR=$(cat "$TL_CFS/loopback/$WWN/tpgt_1/address"):0
SG=$(ls /sys/class/scsi_device/"$ADDR"/device/scsi_generic 2>/dev/null | head -n1)
SG=/dev/$SG
check "its sg node $SG exists" test -c "$SG"

# ---------------------------------------------------------------------------
tl_section "identity"
INQ=$(sg_inq "$SR" 2>&1)
tl_log "$(grep -m1 PDT <<<"$INQ")"
check "sg_inq: peripheral device type 5" grep -q 'PDT=5' <<<"$INQ"
check "sg_inq: removable (RMB=1)" grep -q 'RMB=1' <<<"$INQ"
check_eq "sysfs type 5" 5 "$(cat /sys/class/scsi_device/"$ADDR"/device/type)"
check_eq "capacity is the image" "$ISO_SIZE" "$(blockdev --getsize64 "$SR")"
check "GET CONFIGURATION: current profile CD-ROM" \
    sh -c "sg_get_config -c '$SG' 2>&1 | grep -qi 'current profile: CD-ROM'"
check "the kernel read the capabilities page (scsi3-mmc, not scsi-1)" \
    sh -c "dmesg | grep -q 'scsi3-mmc drive'"
INFO=$(cat /proc/sys/dev/cdrom/info 2>&1)
check "cdrom info: can read DVD (mode page 0x2A)" grep -Eq 'Can read DVD:[[:space:]]+1' <<<"$INFO"
check "cdrom info: cannot write CD-R" grep -Eq 'Can write CD-R:[[:space:]]+0' <<<"$INFO"
check "cdrom info: can open tray" grep -Eq 'Can open tray:[[:space:]]+1' <<<"$INFO"
check "blockdev --getro: read-only" test "$(blockdev --getro "$SR")" = 1

# ---------------------------------------------------------------------------
tl_section "mount"
mkdir -p "$MNT"
if check "mount -t iso9660 -o ro" mount -t iso9660 -o ro "$SR" "$MNT"; then
    check "the file is there" test -f "$MNT/data.bin" -o -f "$MNT/DATA.BIN"
    F=$MNT/data.bin; [ -f "$F" ] || F=$MNT/DATA.BIN
    check "file content equals the source" cmp "$F" "$SRC"
    check "umount" umount "$MNT"
fi

# ---------------------------------------------------------------------------
tl_section "prevent / eject / load"
echo 0 >/proc/sys/dev/cdrom/autoclose 2>/dev/null
check "sg_prevent --prevent=1" sg_prevent --prevent=1 "$SG"
T=$(sg_start -v --eject "$SG" 2>&1)
tl_log "eject while prevented: $(tr '\n' ' ' <<<"$T")"
check "eject refused while prevented: MEDIUM REMOVAL PREVENTED" grep -qi 'removal prevented' <<<"$T"
check "still ready" sg_turs "$SG"
check "sg_prevent --allow" sg_prevent --allow "$SG"
check "sg_start --eject" sg_start --eject "$SG"
T=$(turs)
tl_log "after eject: $(tr '\n' ' ' <<<"$T")"
check "TEST UNIT READY: medium not present" grep -qi 'medium not present' <<<"$T"
check "mount fails without a disc" sh -c "! mount -t iso9660 -o ro '$SR' '$MNT' 2>/dev/null"
check "sg_start --load" sg_start --load "$SG"
T=$(turs)
tl_log "after load: $(tr '\n' ' ' <<<"$T")"
check "TEST UNIT READY after load: NOT READY TO READY CHANGE" grep -qi 'not ready to ready' <<<"$T"
check "then ready" sg_turs "$SG"
if check "mount after reload" mount -t iso9660 -o ro "$SR" "$MNT"; then
    check "file content after reload" cmp "$MNT/data.bin" "$SRC"
    check "eject refused while mounted (the kernel locks the door)" \
        sh -c "! sg_start --eject '$SR' >/dev/null 2>&1"
    check "umount" umount "$MNT"
fi

tl_section "autoclose"
if [ -w /proc/sys/dev/cdrom/autoclose ]; then
    echo 1 >/proc/sys/dev/cdrom/autoclose
    check "sg_start --eject" sg_start --eject "$SG"
    # The kernel closes the tray (START STOP UNIT LoEj+Start) on open; sr
    # then refuses I/O until it has noticed the medium change (the unit
    # attention sets sdev->changed), so the first mount may fail.
    if ! mount -t iso9660 -o ro "$SR" "$MNT" 2>/dev/null; then
        tl_log "first mount after autoclose failed (sr: medium changed); again"
    fi
    if check "mount after autoclose (the kernel loaded the disc)" \
        sh -c "mountpoint -q '$MNT' || mount -t iso9660 -o ro '$SR' '$MNT'"; then
        check "file content after autoclose" cmp "$MNT/data.bin" "$SRC"
        umount "$MNT"
    fi
fi

# ---------------------------------------------------------------------------
tl_section "the same image as a DVD"
if DVD=$(tl_loop_dev $WWN_DVD 0 60); then
    pass "DVD drive $DVD appeared"
    A=$(cat "$TL_CFS/loopback/$WWN_DVD/tpgt_1/address"):0
    SGD=/dev/$(ls /sys/class/scsi_device/"$A"/device/scsi_generic | head -n1)
    check "GET CONFIGURATION: current profile DVD-ROM" \
        sh -c "sg_get_config -c '$SGD' 2>&1 | grep -qi 'current profile: DVD-ROM'"
    if check "mount the DVD" mount -t iso9660 -o ro "$DVD" "$MNT"; then
        check "file content on the DVD" cmp "$MNT/data.bin" "$SRC"
        umount "$MNT"
    fi
else
    fail "DVD drive appeared"
fi

# ---------------------------------------------------------------------------
tl_section "shutdown"
tl_daemon_stop TERM
check_eq "SIGTERM: daemon exits 0" 0 "$DSTATUS"
check "loopback targets removed" test ! -e "$TL_CFS/loopback/$WWN" -a ! -e "$TL_CFS/loopback/$WWN_DVD"
check "no handler errors logged" sh -c "! grep -q 'handler error' '$LOG'"
tl_finish
