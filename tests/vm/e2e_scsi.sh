#!/bin/bash
#
# End-to-end test of the SCSI library (lua/lib/scsi) against the real kernel
# (runs inside the VM):
#   tests/vm/run-vm.sh tests/vm/e2e_scsi.sh
#
#  1. the daemon serves four devices from YAML through tcm_loop: a `ram`
#     disk, a `file` disk (it flushes, so WCE is changeable), a read-only
#     `ram` disk and a `minimal` disk (a handler with only read and write);
#  2. sg3_utils (sg_inq, sg_vpd, sg_readcap, sg_modes, sg_wr_mode, sg_unmap,
#     sg_write_same, sg_compare_and_write, sg_opcodes, sg_verify,
#     sg_get_lba_status, sg_sync, sg_prevent, sg_start, sg_format,
#     sg_requests, sg_rtpg, sg_xcopy, sg_copy_results, sg_sat_identify,
#     sg_dd) talk to the ram disk; every answer is also checked byte by byte
#     with a small SG_IO tool (sgio below): status, residual, data and the
#     exact sense bytes.  A failing check explains the sense it got with
#     `tcmu-lua decode --sense`;
#  3. errors: LBA out of range, INVALID FIELD IN CDB / PARAMETER LIST with
#     the field pointer, MISCOMPARE with the offset, INVALID COMMAND
#     OPERATION CODE (ATA PASS-THROUGH), DATA PROTECT on the read-only disk,
#     NOT READY after START STOP UNIT, descriptor sense after D_SENSE=1,
#     UNIT ATTENTION after MODE SELECT and after a resize, each seen once;
#  4. the kernel itself: sd switches the file disk's write cache through
#     MODE SELECT (cache_type), and formats (mkfs.ext4), mounts, fills,
#     trims (fstrim) and checks (e2fsck) the minimal disk without a single
#     kernel warning about it.
#
# Sense bytes checked are listed next to each check; sgio.log in $TL_OUT
# has every command sent and everything it got back.
# TL_DAEMON overrides the daemon command ("$TL_BUILD_DIR/tcmu-lua daemon").

. "${TL_VM_DIR:-$(dirname "$0")}/guest-lib.sh"

[ "${TL_IN_VM:-0}" = 1 ] || { echo "e2e_scsi.sh runs inside the VM: use run-vm.sh" >&2; exit 2; }
tl_need_cmd modprobe sg_inq sg_vpd sg_readcap sg_modes sg_wr_mode sg_unmap \
    sg_write_same sg_compare_and_write sg_opcodes sg_verify sg_get_lba_status \
    sg_sync sg_prevent sg_start sg_format sg_requests sg_rtpg sg_xcopy \
    sg_copy_results sg_sat_identify sg_dd sg_turs blockdev mkfs.ext4 e2fsck \
    fstrim mount od cmp

TCMU_LUA=${DAEMON[0]%/*}/tcmu-lua
LOG=$TL_OUT/daemon.log
SGLOG=$TL_OUT/sgio.log
CFG=/tmp/e2e_scsi.yaml
MNT=/tmp/e2e_scsi_mnt
W_RAM=naa.5001405e2e5c5101
W_FILE=naa.5001405e2e5c5102
W_RO=naa.5001405e2e5c5103
W_MIN=naa.5001405e2e5c5104
RAM_BLOCKS=131072               # 64 MiB of 512-byte blocks
MIN_SIZE=$((128 << 20))

cleanup() {
    umount "$MNT" 2>/dev/null
    if tl_daemon_running; then
        tl_warn "daemon still running at exit: stopping it"
        tl_daemon_stop TERM
    fi
    tl_log "daemon log: $LOG, commands: $SGLOG"
}
tl_on_exit cleanup

# --- one SCSI command through SG_IO -------------------------------------------
# sgio DEV [-i N | -o FILE] CDB...: sets R_STATUS (hex), R_RESID, R_SENSE and
# R_DATA (hex bytes, space separated) and the array B (the data bytes).
cat >/tmp/sgio.lua <<'EOF'
local ffi = require('ffi')
pcall(ffi.cdef, [[
struct e2e_sg_io_hdr {
	int interface_id; int dxfer_direction; unsigned char cmd_len, mx_sb_len;
	unsigned short iovec_count; unsigned int dxfer_len; void *dxferp;
	unsigned char *cmdp; void *sbp; unsigned int timeout, flags; int pack_id;
	void *usr_ptr; unsigned char status, masked_status, msg_status, sb_len_wr;
	unsigned short host_status, driver_status; int resid;
	unsigned int duration, info;
};]])
pcall(ffi.cdef, 'int open(const char *, int, ...);')
pcall(ffi.cdef, 'int ioctl(int, unsigned long, ...);')
pcall(ffi.cdef, 'int close(int);')
local C = ffi.C
local dev, i = arg[1], 2
local dir, len, data = -1, 0, nil
if arg[i] == '-i' then
	dir, len = -3, tonumber(arg[i + 1]); i = i + 2
	data = ffi.new('uint8_t[?]', len + 1)
elseif arg[i] == '-o' then
	local s = assert(io.open(arg[i + 1], 'rb')):read('*a')
	dir, len = -2, #s; i = i + 2
	data = ffi.new('uint8_t[?]', len + 1)
	ffi.copy(data, s, len)
end
local cdb = ffi.new('uint8_t[32]')
local n = 0
for k = i, #arg do cdb[n] = tonumber(arg[k], 16); n = n + 1 end
local sense = ffi.new('uint8_t[96]')
local h = ffi.new('struct e2e_sg_io_hdr')
h.interface_id = 83; h.dxfer_direction = dir; h.cmd_len = n; h.mx_sb_len = 96
h.dxfer_len = len; h.dxferp = data; h.cmdp = cdb; h.sbp = sense; h.timeout = 60000
local fd = C.open(dev, 2 + 0x800)	-- O_RDWR | O_NONBLOCK
if fd < 0 then io.stderr:write('sgio: cannot open ', dev, '\n') os.exit(2) end
if C.ioctl(fd, 0x2285, h) ~= 0 then io.stderr:write('sgio: SG_IO failed\n') os.exit(2) end
C.close(fd)
local function hex(p, k)
	local t = {}
	for j = 0, k - 1 do t[#t + 1] = string.format('%02x', p[j]) end
	return table.concat(t, ' ')
end
print(string.format('status=%02x', h.status))
print('resid=' .. h.resid)
print('sense=' .. hex(sense, h.sb_len_wr))
if dir == -3 then print('data=' .. hex(data, len - h.resid)) end
EOF

# Plain luajit when there is one (it starts faster than the daemon binary).
if command -v luajit >/dev/null 2>&1; then LUA=(luajit); else LUA=("$TCMU_LUA" script); fi
sgio() {
    local out k v
    out=$("${LUA[@]}" /tmp/sgio.lua "$@" 2>&1)
    printf '> %s\n%s\n' "$*" "$out" >>"$SGLOG"
    R_STATUS='' R_RESID='' R_SENSE='' R_DATA=''
    while IFS='=' read -r k v; do
        case $k in
            status) R_STATUS=$v ;;
            resid) R_RESID=$v ;;
            sense) R_SENSE=$v ;;
            data) R_DATA=$v ;;
        esac
    done <<<"$out"
    read -ra B <<<"$R_DATA"
}

# explain: the sense of the last sgio, decoded, for a failure's output.
explain() {
    [ -n "$R_SENSE" ] || { echo "           | status $R_STATUS, no sense"; return; }
    # shellcheck disable=SC2086  # hex bytes, one word each
    "$TCMU_LUA" decode --sense $R_SENSE 2>&1 | sed 's/^/           | /'
}

# bytes FROM COUNT: data bytes [FROM, FROM+COUNT) of the last sgio, hex.
bytes() { echo "${B[*]:$1:$2}"; }

# ok_cmd DESC ARGS...: the command must end GOOD.
ok_cmd() {
    local desc=$1
    shift
    sgio "$@"
    if [ "$R_STATUS" = 00 ]; then pass "$desc"; return 0; fi
    fail "$desc" "(status ${R_STATUS:-none})"
    explain
    return 1
}

# sense_is DESC SENSE-HEX ARGS...: CHECK CONDITION with exactly these sense
# bytes (given in full, or a prefix ending in "...").
sense_is() {
    local desc=$1 want=$2
    shift 2
    sgio "$@"
    local ok=1
    [ "$R_STATUS" = 02 ] || ok=0
    case $want in
        *...) [[ "$R_SENSE" == "${want% ...}"* ]] || ok=0 ;;
        *) [ "$R_SENSE" = "$want" ] || ok=0 ;;
    esac
    if [ $ok = 1 ]; then pass "$desc"; return 0; fi
    fail "$desc" "(status ${R_STATUS:-none}, sense '$R_SENSE', expected '$want')"
    explain
    return 1
}

# eq DESC EXPECTED ACTUAL (check_eq, explaining the last sense on failure)
eq() { check_eq "$@" || explain; }

# data_eq DESC EXPECTED-HEX: the last sgio's data-in equals it; a failure
# names the first differing byte instead of printing kilobytes of hex.
data_eq() {
    local -a want
    local i
    read -ra want <<<"$2"
    if [ "${want[*]}" = "${B[*]}" ]; then pass "$1"; return 0; fi
    for ((i = 0; i < ${#want[@]}; i++)); do
        [ "${want[i]}" = "${B[i]}" ] || break
    done
    fail "$1" "(${#B[@]} bytes, expected ${#want[@]}; first difference at byte $i:" \
        "got '${B[i]}', expected '${want[i]}')"
    explain
    return 1
}

hexof() { od -An -v -tx1 "$1" | tr -s ' \n' '  ' | sed 's/^ //; s/ $//'; echo; }
zeros_hex() { head -c "$1" /dev/zero >/tmp/zeros.bin; hexof /tmp/zeros.bin; }
# sg exit status names (sg3_utils sg_lib.h): 5 ILLEGAL REQUEST, 6 UNIT
# ATTENTION, 7 DATA PROTECT, 9 INVALID OPCODE, 14 MISCOMPARE, 22 LBA OUT OF
# RANGE.
exit_is() { # DESC STATUS COMMAND...
    local desc=$1 expect=$2 out rc
    shift 2
    out=$("$@" 2>&1)
    rc=$?
    echo "$ $* -> $rc" >>"$SGLOG"
    printf '%s\n' "$out" >>"$SGLOG"
    if [ "$rc" = "$expect" ]; then pass "$desc"; return 0; fi
    fail "$desc" "(exit $rc, expected $expect)"
    printf '%s\n' "$out" | tail -n 8 | sed 's/^/           | /'
    return 1
}
# out_has DESC REGEX COMMAND...: the command succeeds and prints REGEX.
out_has() {
    local desc=$1 re=$2 out rc
    shift 2
    out=$("$@" 2>&1)
    rc=$?
    echo "$ $* -> $rc" >>"$SGLOG"
    printf '%s\n' "$out" >>"$SGLOG"
    if [ "$rc" = 0 ] && grep -Eqi -- "$re" <<<"$out"; then pass "$desc"; return 0; fi
    fail "$desc" "(exit $rc, no /$re/)"
    printf '%s\n' "$out" | tail -n 12 | sed 's/^/           | /'
    return 1
}

sg_of() { # WWN: the sg node of LUN 0 of a tcm_loop target
    local a
    a=$(cat "$TL_CFS/loopback/$1/tpgt_1/address"):0
    echo "/dev/$(ls /sys/class/scsi_device/"$a"/device/scsi_generic | head -n1)"
}
sdisk_of() { # WWN: its /sys/class/scsi_disk entry
    echo "/sys/class/scsi_disk/$(cat "$TL_CFS/loopback/$1/tpgt_1/address"):0"
}

# ---------------------------------------------------------------------------
tl_section "setup"
check "target modules load" tl_load_target_modules || tl_finish
check "the daemon binary exists" test -x "${DAEMON[0]}" || tl_finish
: >"$LOG"
: >"$SGLOG"
head -c 512 /dev/urandom >/tmp/A.bin
# B shares its first 100 bytes with A, then differs at every byte.
{ head -c 100 /tmp/A.bin; head -c 412 /tmp/A.bin | tr '\000-\377' '\001-\377\000'; } >/tmp/B.bin
cat /tmp/A.bin /tmp/B.bin >/tmp/AB.bin
head -c 4096 /dev/urandom >/tmp/R8.bin

cat >"$CFG" <<EOF
daemon:
  workers: 1
  log_level: info
devices:
  - name: e2e_ram
    handler: ram
    size: 64M
    hw_max_sectors: 1024
    exports:
      loop: {wwn: $W_RAM}
  - name: e2e_file
    handler: file
    size: 16M
    write_cache: true
    options:
      path: /tmp/e2e_file.img
      create: true
    exports:
      loop: {wwn: $W_FILE}
  - name: e2e_ro
    handler: ram
    size: 8M
    options:
      read_only: true
    exports:
      loop: {wwn: $W_RO}
  - name: e2e_min
    handler: minimal
    size: $MIN_SIZE
    exports:
      loop: {wwn: $W_MIN}
EOF

tl_daemon_start_or_finish
for w in $W_RAM $W_FILE $W_RO $W_MIN; do
    tl_loop_dev "$w" 0 60 >/dev/null || { fail "disk of $w appeared"; tl_finish; }
done
pass "four disks appeared"
SD=$(tl_loop_dev $W_RAM) SG=$(sg_of $W_RAM)
SD_FILE=$(tl_loop_dev $W_FILE) SG_FILE=$(sg_of $W_FILE)
SD_RO=$(tl_loop_dev $W_RO) SG_RO=$(sg_of $W_RO)
SD_MIN=$(tl_loop_dev $W_MIN) SG_MIN=$(sg_of $W_MIN)
tl_log "ram $SD $SG, file $SD_FILE $SG_FILE, ro $SD_RO $SG_RO, minimal $SD_MIN $SG_MIN"
check "sg nodes exist" test -c "$SG" -a -c "$SG_FILE" -a -c "$SG_RO" -a -c "$SG_MIN"

# ---------------------------------------------------------------------------
tl_section "INQUIRY"
out_has "sg_inq: SPC-4, 3PC=1, CmdQue=1, TPGS=0, HiSUP=1" \
    'version=0x06.*' sg_inq "$SG"
INQ=$(sg_inq "$SG" 2>&1)
for f in 'PQual=0 +PDT=0' 'RMB=0' 'HiSUP=1' 'Resp_data_format=2' 'TPGS=0' '3PC=1' \
         'Protect=0' 'CmdQue=1' 'NormACA=0' 'length=74' 'Vendor identification: LIO-ORG'; do
    check "sg_inq: $f" grep -Eq -- "$f" <<<"$INQ"
done
ok_cmd "INQUIRY, allocation length 255" "$SG" -i 255 12 00 00 00 ff 00
eq "INQUIRY: 74 bytes returned, residual 181" "74 181" "${#B[@]} $R_RESID"
eq "INQUIRY bytes 0-7: disk, SPC-4, HISUP, RDF 2, additional length 69, 3PC, CMDQUE" \
    "00 00 06 12 45 08 00 02" "$(bytes 0 8)"
eq "INQUIRY version descriptors SAM-5 SPC-4 SBC-3" "00 a0 04 60 04 c0" "$(bytes 58 6)"
ok_cmd "INQUIRY, allocation length 36" "$SG" -i 36 12 00 00 00 24 00
eq "allocation length 36: 36 bytes, additional length still 69" "36 0 45" \
    "${#B[@]} $R_RESID ${B[4]}"
# INVALID FIELD IN CDB, field pointer byte 2 (SKSV C/D: c0 00 02).
sense_is "INQUIRY page code without EVPD: 05/24/00, field pointer byte 2" \
    "70 00 05 00 00 00 00 0a 00 00 00 00 24 00 00 c0 00 02" "$SG" -i 255 12 00 80 00 ff 00

# ---------------------------------------------------------------------------
tl_section "VPD pages"
ok_cmd "VPD 00h" "$SG" -i 255 12 01 00 00 ff 00
eq "VPD 00h lists 00 80 83 b0 b1 b2" "00 00 00 06 00 80 83 b0 b1 b2" "$R_DATA"
out_has "sg_vpd -p sv lists Block limits" 'Block limits' sg_vpd -p sv "$SG"
ok_cmd "VPD 80h" "$SG" -i 255 12 01 80 00 ff 00
SERIAL=$(for b in "${B[@]:4}"; do printf "\\x$b"; done)
eq "VPD 80h: 32-character serial" "80 32" "${B[1]} ${#SERIAL}"
out_has "sg_vpd -p sn shows the same serial" "$SERIAL" sg_vpd -p sn "$SG"
ok_cmd "VPD 83h" "$SG" -i 255 12 01 83 00 ff 00
eq "VPD 83h: NAA binary LU designator, 16 bytes, NAA 6 OUI 001405" \
    "01 03 00 10 60 01 40" "$(bytes 4 7)"
eq "VPD 83h: then a T10 vendor ID designator" "02 01 00 28" "$(bytes 24 4)"
out_has "sg_vpd -p di: NAA 6 and T10 vendor id" 'T10 vendor identification' sg_vpd -p di "$SG"
ok_cmd "VPD B0h" "$SG" -i 255 12 01 b0 00 ff 00
eq "B0h: page length 60, WSNZ=1, MAXIMUM COMPARE AND WRITE LENGTH 255" "00 3c 01 ff" "$(bytes 2 4)"
eq "B0h: MAXIMUM and OPTIMAL TRANSFER LENGTH = hw_max_sectors 1024" \
    "00 00 04 00 00 00 04 00" "$(bytes 8 8)"
eq "B0h: unmap limits: LBA count ffffffff, 256 descriptors, granularity 1" \
    "ff ff ff ff 00 00 01 00 00 00 00 01" "$(bytes 20 12)"
eq "B0h: MAXIMUM WRITE SAME LENGTH 65536" "00 00 00 00 00 01 00 00" "$(bytes 36 8)"
out_has "sg_vpd -p bl decodes the compare and write limit" \
    'compare and write length: 255' sg_vpd -p bl "$SG"
ok_cmd "VPD B1h" "$SG" -i 255 12 01 b1 00 ff 00
eq "B1h: MEDIUM ROTATION RATE 1 (non-rotating)" "b1 00 3c 00 01" "$(bytes 1 5)"
out_has "sg_vpd -p bdc: non-rotating" 'non-rotating' sg_vpd -p bdc "$SG"
ok_cmd "VPD B2h" "$SG" -i 255 12 01 b2 00 ff 00
eq "B2h: LBPU LBPWS LBPWS10 LBPRZ, thin provisioned" "00 04 00 e4 02" "$(bytes 2 5)"
out_has "sg_vpd -p lbpv: LBPU=1" 'Unmap command supported \(LBPU\): 1' sg_vpd -p lbpv "$SG"
sense_is "VPD 0x99 (none): 05/24/00 field pointer byte 2" \
    "70 00 05 00 00 00 00 0a 00 00 00 00 24 00 00 c0 00 02" "$SG" -i 255 12 01 99 00 ff 00

# ---------------------------------------------------------------------------
tl_section "READ CAPACITY"
out_has "sg_readcap: 131072 blocks of 512 bytes" \
    'Last LBA=131071 .*Number of logical blocks=131072' sh -c "sg_readcap '$SG' | tr '\n' ' '"
out_has "sg_readcap --16: lbpme=1, lbprz=1" 'lbpme=1, lbprz=1' sg_readcap --16 "$SG"
ok_cmd "READ CAPACITY(10)" "$SG" -i 8 25 00 00 00 00 00 00 00 00 00
eq "READ CAPACITY(10) data" "00 01 ff ff 00 00 02 00" "$R_DATA"
ok_cmd "READ CAPACITY(16)" "$SG" -i 32 9e 10 00 00 00 00 00 00 00 00 00 00 00 20 00 00
eq "READ CAPACITY(16): last LBA, 512, LBPME|LBPRZ" \
    "00 00 00 00 00 01 ff ff 00 00 02 00 00 00 c0 00" "$(bytes 0 16)"
check_eq "the kernel took the size" $((RAM_BLOCKS * 512)) "$(blockdev --getsize64 "$SD")"
check_eq "the kernel chose UNMAP for discard" unmap "$(cat "$(sdisk_of $W_RAM)/provisioning_mode")"

# ---------------------------------------------------------------------------
tl_section "MODE SENSE"
for p in 0x01 0x08 0x0a 0x1c 0x3f; do
    for c in 0 1 2; do
        check "sg_modes -p $p -c $c" sg_modes -p "$p" -c "$c" "$SG"
    done
done
out_has "sg_modes -a names the caching page" 'Caching' sg_modes -a "$SG"
exit_is "sg_modes -c 3 (saved): ILLEGAL REQUEST" 5 sg_modes -p 0x08 -c 3 "$SG"
ok_cmd "MODE SENSE(6) all pages, current" "$SG" -i 255 1a 00 3f 00 ff 00
eq "MODE SENSE(6): 68 bytes, DPOFUA, 8-byte block descriptor" "68 43 00 10 08" \
    "${#B[@]} $(bytes 0 4)"
eq "block descriptor: 131072 blocks of 512" "00 02 00 00 00 00 02 00" "$(bytes 4 8)"
eq "pages 01 08 0a 1c in order, right lengths" "01 0a 08 12 0a 0a 1c 0a" \
    "$(bytes 12 2) $(bytes 24 2) $(bytes 44 2) $(bytes 56 2)"
eq "caching: WCE=0 (ram has no flush); control: QAM 1; IE: DEXCPT" "00 10 08" \
    "${B[26]} ${B[47]} ${B[58]}"
ok_cmd "MODE SENSE(6) changeable values" "$SG" -i 255 1a 00 7f 00 ff 00
eq "changeable: WCE not (no flush), D_SENSE yes" "00 04" "${B[26]} ${B[46]}"
ok_cmd "MODE SENSE(6) DBD" "$SG" -i 255 1a 08 3f 00 ff 00
eq "DBD: no block descriptor, 60 bytes" "60 00" "${#B[@]} ${B[3]}"
ok_cmd "MODE SENSE(10) LLBAA" "$SG" -i 255 5a 10 08 00 00 00 00 00 ff 00
eq "MODE SENSE(10) LLBAA: LONGLBA, 16-byte descriptor, caching page" \
    "01 00 00 10 00 00 00 00 00 02 00 00 00 00 02 00 08 12" "$(bytes 4 4) $(bytes 8 8) $(bytes 20 4) $(bytes 24 2)"
sense_is "MODE SENSE saved values: 05/39/00" \
    "70 00 05 00 00 00 00 0a 00 00 00 00 39 00 00 00 00 00" "$SG" -i 255 1a 00 c8 00 ff 00

tl_section "MODE SELECT"
# Caching page with WCE=1 on a disk that cannot flush: INVALID FIELD IN
# PARAMETER LIST, field pointer byte 6 bit 2 (8a 00 06).
{ printf '\0\0\0\0\x08\x12\x04'; head -c 17 /dev/zero; } >/tmp/ms_wce.bin
sense_is "MODE SELECT WCE=1 without flush: 05/26/00, pointer byte 6 bit 2" \
    "70 00 05 00 00 00 00 0a 00 00 00 00 26 00 00 8a 00 06" "$SG" -o /tmp/ms_wce.bin 15 10 00 00 18 00
sense_is "MODE SELECT with PF=0: 05/24/00, pointer byte 1 bit 4" \
    "70 00 05 00 00 00 00 0a 00 00 00 00 24 00 00 cc 00 01" "$SG" -o /tmp/ms_wce.bin 15 00 00 00 18 00
# The whole page: sg_wr_mode zeroes the byte after short contents (QAM
# here), which is not changeable.
check "sg_wr_mode: D_SENSE=1 in the control page" \
    sg_wr_mode -p 0x0a -c 0a,0a,04,10,0,0,0,0,0,0,0,0 -m 0,0,4 "$SG"
sense_is "next command: UNIT ATTENTION MODE PARAMETERS CHANGED, descriptor format" \
    "72 06 2a 01 00 00 00 00" "$SG" 00 00 00 00 00 00
ok_cmd "seen once: the next TEST UNIT READY is GOOD" "$SG" 00 00 00 00 00 00
sense_is "descriptor sense: LBA out of range 72 05 21 00" \
    "72 05 21 00 00 00 00 00" "$SG" -i 512 28 00 00 02 00 00 00 00 01 00
sense_is "descriptor sense with the sense-key-specific descriptor" \
    "72 05 24 00 00 00 00 08 02 06 00 00 c0 00 02 00" "$SG" -i 255 12 00 80 00 ff 00
{ printf '\0\0\0\0\x0a\x0a\x00\x10'; head -c 8 /dev/zero; } >/tmp/ms_ctl.bin
ok_cmd "MODE SELECT(6): D_SENSE=0 again" "$SG" -o /tmp/ms_ctl.bin 15 10 00 00 10 00
sense_is "UNIT ATTENTION MODE PARAMETERS CHANGED, fixed format again" \
    "70 00 06 00 00 00 00 0a 00 00 00 00 2a 01 00 00 00 00" "$SG" 00 00 00 00 00 00

# ---------------------------------------------------------------------------
tl_section "READ, WRITE, range checks"
ok_cmd "WRITE(10) 8 blocks at 400" "$SG" -o /tmp/R8.bin 2a 00 00 00 01 90 00 00 08 00
ok_cmd "READ(16) them back" "$SG" -i 4096 88 00 00 00 00 00 00 00 01 90 00 00 00 08 00 00
data_eq "read data equals what was written" "$(hexof /tmp/R8.bin)"
sense_is "READ(10) past the end: 05/21/00" \
    "70 00 05 00 00 00 00 0a 00 00 00 00 21 00 00 00 00 00" "$SG" -i 1024 28 00 00 01 ff ff 00 00 02 00
sense_is "WRITE(16) at LBA 2^64-1: 05/21/00" \
    "70 00 05 00 00 00 00 0a 00 00 00 00 21 00 00 00 00 00" "$SG" -o /tmp/A.bin 8a 00 ff ff ff ff ff ff ff ff 00 00 00 01 00 00
sense_is "READ(10) with RDPROTECT: 05/24/00 pointer byte 1 bit 7" \
    "70 00 05 00 00 00 00 0a 00 00 00 00 24 00 00 cf 00 01" "$SG" -i 512 28 20 00 00 00 00 00 00 01 00
exit_is "sg_dd past the end: LBA OUT OF RANGE (sg exit 22)" 22 \
    sg_dd if="$SG" of=/dev/null bs=512 skip=$((RAM_BLOCKS - 1)) count=2
sense_is "ATA PASS-THROUGH(16) (sg_sat_identify): 05/20/00" \
    "70 00 05 00 00 00 00 0a 00 00 00 00 20 00 00 00 00 00" "$SG" -i 512 85 08 0e 00 00 00 01 00 00 00 00 00 00 00 ec 00
exit_is "sg_sat_identify fails: INVALID COMMAND OPERATION CODE" 9 sg_sat_identify "$SG"

# ---------------------------------------------------------------------------
tl_section "COMPARE AND WRITE, VERIFY"
ok_cmd "WRITE A at 300" "$SG" -o /tmp/A.bin 2a 00 00 00 01 2c 00 00 01 00
check "sg_compare_and_write A->B" sg_compare_and_write --in=/tmp/AB.bin --lba=300 --num=1 "$SG"
ok_cmd "READ 300" "$SG" -i 512 28 00 00 00 01 2c 00 00 01 00
data_eq "block 300 now holds B" "$(hexof /tmp/B.bin)"
exit_is "sg_compare_and_write A->B again: MISCOMPARE" 14 \
    sg_compare_and_write --in=/tmp/AB.bin --lba=300 --num=1 "$SG"
# MISCOMPARE DURING VERIFY OPERATION, INFORMATION = 100 (VALID: f0).
sense_is "COMPARE AND WRITE miscompare: 0e/1d/00, INFORMATION = offset 100" \
    "f0 00 0e 00 00 00 64 0a 00 00 00 00 1d 00 00 00 00 00" "$SG" -o /tmp/AB.bin 89 00 00 00 00 00 00 00 01 2c 00 00 00 01 00 00
ok_cmd "the miscompare wrote nothing" "$SG" -i 512 28 00 00 00 01 2c 00 00 01 00
data_eq "block 300 still holds B" "$(hexof /tmp/B.bin)"
check "sg_verify BYTCHK=0" sg_verify --lba=300 --count=1 "$SG"
check "sg_verify BYTCHK=1 with B" sg_verify --lba=300 --count=1 --ndo=512 --in=/tmp/B.bin "$SG"
exit_is "sg_verify BYTCHK=1 with A: MISCOMPARE" 14 \
    sg_verify --lba=300 --count=1 --ndo=512 --in=/tmp/A.bin "$SG"
sense_is "VERIFY(10) BYTCHK=1 miscompare: 0e/1d/00, INFORMATION = 100" \
    "f0 00 0e 00 00 00 64 0a 00 00 00 00 1d 00 00 00 00 00" "$SG" -o /tmp/A.bin 2f 02 00 00 01 2c 00 00 01 00
sense_is "VERIFY BYTCHK=2: 05/24/00 pointer byte 1 bit 2" \
    "70 00 05 00 00 00 00 0a 00 00 00 00 24 00 00 ca 00 01" "$SG" -o /tmp/A.bin 2f 04 00 00 01 2c 00 00 01 00

# ---------------------------------------------------------------------------
tl_section "WRITE SAME, UNMAP, GET LBA STATUS"
for _ in $(seq 16); do cat /tmp/A.bin; done >/tmp/A16.bin
A16=$(hexof /tmp/A16.bin)
check "sg_write_same --10 A x16 at 500" sg_write_same --10 --in=/tmp/A.bin --lba=500 --num=16 "$SG"
ok_cmd "READ 500..515" "$SG" -i 8192 28 00 00 00 01 f4 00 00 10 00
data_eq "16 copies of A" "$A16"
check "sg_xcopy 500..515 -> 600..615" \
    sg_xcopy if="$SG" of="$SG" bs=512 skip=500 seek=600 count=16
ok_cmd "READ 600..615" "$SG" -i 8192 28 00 00 00 02 58 00 00 10 00
data_eq "EXTENDED COPY copied them" "$A16"
out_has "sg_copy_results --params: operating parameters" 'segment descriptor' sg_copy_results --params "$SG"
check "sg_write_same --16 B x8 at 520" sg_write_same --16 --in=/tmp/B.bin --lba=520 --num=8 "$SG"
ok_cmd "READ 520" "$SG" -i 512 28 00 00 00 02 0f 00 00 01 00
data_eq "block 527 holds B" "$(hexof /tmp/B.bin)"
check "sg_write_same --16 --unmap 500..515" sg_write_same --16 --unmap --lba=500 --num=16 "$SG"
ok_cmd "READ 500..515" "$SG" -i 8192 28 00 00 00 01 f4 00 00 10 00
data_eq "unmapped blocks read zeros (LBPRZ)" "$(zeros_hex 8192)"
check "sg_write_same --16 --ndob 520..527" sg_write_same --16 --ndob --lba=520 --num=8 "$SG"
ok_cmd "READ 520..527" "$SG" -i 4096 28 00 00 00 02 08 00 00 08 00
data_eq "NDOB wrote zeros" "$(zeros_hex 4096)"
sense_is "WRITE SAME(10) of 0 blocks (WSNZ): 05/24/00 pointer byte 7" \
    "70 00 05 00 00 00 00 0a 00 00 00 00 24 00 00 c0 00 07" "$SG" -o /tmp/A.bin 41 00 00 00 01 f4 00 00 00 00
check "sg_unmap 400..407" sg_unmap --lba=400 --num=8 "$SG"
ok_cmd "READ 400..407" "$SG" -i 4096 28 00 00 00 01 90 00 00 08 00
data_eq "unmapped blocks read zeros" "$(zeros_hex 4096)"
exit_is "sg_unmap past the end: LBA OUT OF RANGE (sg exit 22)" 22 sg_unmap --lba=$((RAM_BLOCKS - 4)) --num=8 "$SG"
{ printf '\0\x16\0\x10\0\0\0\0'; printf '\0\0\0\0\0\x01\xff\xfc\0\0\0\x08\0\0\0\0'; } >/tmp/unmap_oor.bin
sense_is "UNMAP past the end: 05/21/00" \
    "70 00 05 00 00 00 00 0a 00 00 00 00 21 00 00 00 00 00" "$SG" -o /tmp/unmap_oor.bin 42 00 00 00 00 00 00 00 18 00
check "sg_get_lba_status --lba=100" sg_get_lba_status --lba=100 "$SG"
ok_cmd "GET LBA STATUS at 100" "$SG" -i 24 9e 12 00 00 00 00 00 00 00 64 00 00 00 18 00 00
eq "one descriptor: 100.., 130972 blocks, mapped" \
    "00 00 00 14 00 00 00 00 00 00 00 00 00 00 00 64 00 01 ff 9c 00 00 00 00" "$R_DATA"

# ---------------------------------------------------------------------------
tl_section "REPORT SUPPORTED OPERATION CODES / TASK MANAGEMENT FUNCTIONS"
OPS=$(sg_opcodes "$SG" 2>&1)
printf '%s\n' "$OPS" >>"$SGLOG"
for c in 'Compare and write' 'Unmap' 'Write same\(16\)' 'Extended copy' 'Read capacity\(16\)' 'Verify\(10\)'; do
    check "sg_opcodes lists $c" grep -Eqi -- "$c" <<<"$OPS"
done
if grep -qi 'ATA pass' <<<"$OPS"; then fail "sg_opcodes does not list ATA PASS-THROUGH"
else pass "sg_opcodes does not list ATA PASS-THROUGH"; fi
out_has "sg_opcodes -o 0x28: READ(10) usage data" '28 [0-9a-f]{2} ff ff ff ff' sg_opcodes -o 0x28 "$SG"
ok_cmd "REPORT SUPPORTED OPERATION CODES, one: READ(10)" "$SG" -i 64 a3 0c 01 28 00 00 00 00 00 40 00 00
eq "READ(10): supported, CDB size 10, usage starts 28" "00 03 00 0a 28" "$(bytes 0 5)"
ok_cmd "REPORT SUPPORTED OPERATION CODES, one: ATA PASS-THROUGH(16)" "$SG" -i 64 a3 0c 01 85 00 00 00 00 00 40 00 00
eq "85h: not supported" "00 01" "$(bytes 0 2)"
out_has "sg_opcodes --tmf: task management functions" 'Logical unit reset' sg_opcodes --tmf "$SG"
ok_cmd "REPORT SUPPORTED TASK MANAGEMENT FUNCTIONS" "$SG" -i 4 a3 0d 00 00 00 00 00 00 00 04 00 00
eq "ATS ATSS CTSS LURS" "d8 00 00 00" "$R_DATA"
exit_is "sg_rtpg (TPGS=0): ILLEGAL REQUEST" 5 sg_rtpg "$SG"

# ---------------------------------------------------------------------------
tl_section "SYNCHRONIZE CACHE, PREVENT, START STOP, REQUEST SENSE, FORMAT"
check "sg_sync" sg_sync "$SG"
exit_is "sg_sync past the end: LBA OUT OF RANGE (sg exit 22)" 22 sg_sync --lba=$RAM_BLOCKS --count=1 "$SG"
check "sg_prevent --prevent=1" sg_prevent --prevent=1 "$SG"
check "sg_prevent --allow" sg_prevent --allow "$SG"
sense_is "PREVENT ALLOW MEDIUM REMOVAL 2: 05/24/00 pointer byte 4 bit 1" \
    "70 00 05 00 00 00 00 0a 00 00 00 00 24 00 00 c9 00 04" "$SG" 1e 00 00 00 02 00
out_has "sg_requests: no sense" 'No Sense' sg_requests "$SG"
check "sg_start --stop" sg_start --stop "$SG"
sense_is "TEST UNIT READY when stopped: 02/04/02" \
    "70 00 02 00 00 00 00 0a 00 00 00 00 04 02 00 00 00 00" "$SG" 00 00 00 00 00 00
ok_cmd "REQUEST SENSE when stopped" "$SG" -i 18 03 00 00 00 12 00
eq "REQUEST SENSE data: NOT READY, INITIALIZING COMMAND REQUIRED" \
    "70 00 02 00 00 00 00 0a 00 00 00 00 04 02 00 00 00 00" "$R_DATA"
sense_is "READ when stopped: 02/04/02" \
    "70 00 02 00 00 00 00 0a 00 00 00 00 04 02 00 00 00 00" "$SG" -i 512 28 00 00 00 00 00 00 00 01 00
check "sg_start --start" sg_start --start "$SG"
ok_cmd "TEST UNIT READY after start" "$SG" 00 00 00 00 00 00
sense_is "FORMAT UNIT with FMTPINFO: 05/24/00 pointer byte 1 bit 7" \
    "70 00 05 00 00 00 00 0a 00 00 00 00 24 00 00 cf 00 01" "$SG" 04 c0 00 00 00 00
check "sg_format --format (no change of size or block length)" \
    timeout 120 sg_format --format --quick --wait "$SG"
ok_cmd "TEST UNIT READY after format" "$SG" 00 00 00 00 00 00
ok_cmd "READ 300 after format" "$SG" -i 512 28 00 00 00 01 2c 00 00 01 00
data_eq "format leaves the data alone" "$(hexof /tmp/B.bin)"

# ---------------------------------------------------------------------------
tl_section "read-only disk"
check_eq "the kernel sees it read-only" 1 "$(blockdev --getro "$SD_RO")"
sense_is "WRITE(10): DATA PROTECT, WRITE PROTECTED 07/27/00" \
    "70 00 07 00 00 00 00 0a 00 00 00 00 27 00 00 00 00 00" "$SG_RO" -o /tmp/A.bin 2a 00 00 00 00 00 00 00 01 00
sense_is "UNMAP: 07/27/00" \
    "70 00 07 00 00 00 00 0a 00 00 00 00 27 00 00 00 00 00" "$SG_RO" -o /tmp/unmap_oor.bin 42 00 00 00 00 00 00 00 18 00
exit_is "sg_write_same: DATA PROTECT" 7 sg_write_same --in=/tmp/A.bin --lba=0 --num=2 "$SG_RO"
ok_cmd "MODE SENSE(6)" "$SG_RO" -i 4 1a 08 3f 00 04 00
eq "WP bit in the mode parameter header" "90" "${B[2]}"
ok_cmd "reads still work" "$SG_RO" -i 512 28 00 00 00 00 00 00 00 01 00

# ---------------------------------------------------------------------------
tl_section "write cache (file disk): the kernel switches it"
SDISK_FILE=$(sdisk_of $W_FILE)
check_eq "sd: write back" "write back" "$(cat "$SDISK_FILE/cache_type")"
ok_cmd "MODE SENSE caching page" "$SG_FILE" -i 255 1a 08 08 00 ff 00
eq "WCE=1, changeable" "04" "${B[6]}"
check "sd switches to write through (MODE SELECT from the kernel)" \
    tl_write "$SDISK_FILE/cache_type" "write through"
# sd consumed the MODE PARAMETERS CHANGED unit attention, or it is still
# pending for us: take it, if it is there, before checking the page.
sgio "$SG_FILE" 00 00 00 00 00 00
ok_cmd "MODE SENSE caching page" "$SG_FILE" -i 255 1a 08 08 00 ff 00
eq "WCE=0 now" "00" "${B[6]}"
check_eq "sd: write through" "write through" "$(cat "$SDISK_FILE/cache_type")"
check "sg_wr_mode: WCE=1" \
    sg_wr_mode -p 0x08 -c 08,12,04,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0 -m 0,0,4 "$SG_FILE"
sense_is "UNIT ATTENTION MODE PARAMETERS CHANGED" \
    "70 00 06 00 00 00 00 0a 00 00 00 00 2a 01 00 00 00 00" "$SG_FILE" 00 00 00 00 00 00
ok_cmd "MODE SENSE caching page" "$SG_FILE" -i 255 1a 08 08 00 ff 00
eq "WCE=1 again" "04" "${B[6]}"
ok_cmd "a FUA write" "$SG_FILE" -o /tmp/A.bin 2a 08 00 00 00 05 00 00 01 00
check "it is in the image file" cmp -n 512 -i 2560:0 /tmp/e2e_file.img /tmp/A.bin

# ---------------------------------------------------------------------------
tl_section "resize: CAPACITY DATA HAS CHANGED, once"
RAMBS=$(ls -d "$TL_CFS"/core/user_*/e2e_ram | head -n1)
check "attrib/dev_size = 128 MiB" tl_write "$RAMBS/attrib/dev_size" $((128 << 20))
sense_is "next command: UNIT ATTENTION 06/2a/09" \
    "70 00 06 00 00 00 00 0a 00 00 00 00 2a 09 00 00 00 00" "$SG" 00 00 00 00 00 00
ok_cmd "the one after: GOOD" "$SG" 00 00 00 00 00 00
ok_cmd "READ CAPACITY(10)" "$SG" -i 8 25 00 00 00 00 00 00 00 00 00
eq "new capacity" "00 03 ff ff 00 00 02 00" "$R_DATA"
ok_cmd "the data survived" "$SG" -i 512 28 00 00 00 01 2c 00 00 01 00
data_eq "block 300 still holds B" "$(hexof /tmp/B.bin)"

# ---------------------------------------------------------------------------
tl_section "minimal handler (read and write only): mkfs, mount, trim"
dmesg >/tmp/dmesg.before
MB=$(basename "$SD_MIN")
ok_cmd "READ CAPACITY(16)" "$SG_MIN" -i 32 9e 10 00 00 00 00 00 00 00 00 00 00 00 20 00 00
eq "LBPME=1 LBPRZ=1 (UNMAP emulated with zeros)" "c0" "${B[14]}"
ok_cmd "VPD B2h" "$SG_MIN" -i 255 12 01 b2 00 ff 00
eq "B2h: LBPU LBPWS LBPWS10 LBPRZ" "e4" "${B[5]}"
ok_cmd "VPD B0h" "$SG_MIN" -i 255 12 01 b0 00 ff 00
MIN_UNMAP=$((16#$(bytes 20 4 | tr -d ' ')))
tl_log "minimal: MAXIMUM UNMAP LBA COUNT $MIN_UNMAP"
check "a bounded MAXIMUM UNMAP LBA COUNT" test "$MIN_UNMAP" -gt 0 -a "$MIN_UNMAP" -lt $((1 << 20))
check_eq "the kernel took it as discard_max_bytes" $((MIN_UNMAP * 512)) \
    "$(cat /sys/block/"$MB"/queue/discard_max_bytes)"
ok_cmd "WRITE 8 blocks at 40" "$SG_MIN" -o /tmp/R8.bin 2a 00 00 00 00 28 00 00 08 00
check "sg_unmap them" sg_unmap --lba=40 --num=8 "$SG_MIN"
ok_cmd "READ them" "$SG_MIN" -i 4096 28 00 00 00 00 28 00 00 08 00
data_eq "they read zeros" "$(zeros_hex 4096)"
check "mkfs.ext4 (discards the whole disk)" mkfs.ext4 -q -F "$SD_MIN"
mkdir -p "$MNT"
if check "mount" mount -t ext4 "$SD_MIN" "$MNT"; then
    head -c $((3 << 20)) /dev/urandom >/tmp/file1
    check "write files" sh -c "cp /tmp/file1 '$MNT/f1' && cp /tmp/R8.bin '$MNT/f2' && sync"
    check "umount" umount "$MNT"
    echo 3 >/proc/sys/vm/drop_caches
    check "mount again" mount -t ext4 "$SD_MIN" "$MNT"
    check "files read back" sh -c "cmp /tmp/file1 '$MNT/f1' && cmp /tmp/R8.bin '$MNT/f2'"
    check "rm a file, sync" sh -c "rm '$MNT/f1' && sync"
    T=$(fstrim -v "$MNT" 2>&1)
    tl_log "fstrim: $T"
    check "fstrim -v trimmed something" grep -Eq '\([1-9][0-9]* bytes\) trimmed' <<<"$T"
    check "umount" umount "$MNT"
fi
check "e2fsck -fn: clean" e2fsck -fn "$SD_MIN"
dmesg >/tmp/dmesg.after
NEW=$(diff /tmp/dmesg.before /tmp/dmesg.after | sed -n 's/^> //p')
printf '%s\n' "$NEW" >"$TL_OUT/dmesg-minimal.txt"
# Lines about the disk that say something went wrong, and any WARN_ON.  (A
# soft lockup report under a loaded TCG host is about the host, not the disk.)
BAD=$( { grep -E "\b$MB\b" <<<"$NEW" |
        grep -Ei 'warn|error|critical|Sense Key|I/O error|blk_update_request|fail|timing out|reset'
        grep -E 'WARNING: CPU|kernel BUG' <<<"$NEW"; } )
check_eq "no kernel warnings or errors about $MB" "" "$BAD"
check "dmesg saw the disk mounted" grep -q "EXT4-fs ($MB): mounted" <<<"$NEW"

# ---------------------------------------------------------------------------
tl_section "the decoder explains what the kernel got"
out_has "decode READ(10): name and LBA" 'LOGICAL BLOCK ADDRESS +300 \(0x12C\)' \
    "$TCMU_LUA" decode 28 00 00 00 01 2c 00 00 01 00
out_has "decode --sense: the COMPARE AND WRITE miscompare, information 100" \
    'information +100 \(0x64\)' "$TCMU_LUA" decode --sense f0 00 0e 00 00 00 64 0a 00 00 00 00 1d 00 00 00 00 00
out_has "decode --sense: descriptor format, field pointer" 'field pointer +CDB byte 2' \
    "$TCMU_LUA" decode --sense 72 05 24 00 00 00 00 08 02 06 00 00 c0 00 02 00

# ---------------------------------------------------------------------------
tl_section "shutdown"
tl_daemon_stop TERM
check_eq "SIGTERM: daemon exits 0" 0 "$DSTATUS"
check "no handler errors logged" sh -c "! grep -q 'handler error' '$LOG'"
tl_finish
