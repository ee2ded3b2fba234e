#!/bin/bash
#
# Smoke test of the VM harness against the real kernel (runs inside the VM):
#   run-vm.sh tests/vm/smoke.sh
#
# 1. the LIO modules load and configfs shows the target tree;
# 2. a TCMU (user) backstore gets its UIO device, named
#    tcm-user/1/smoke/null/, with a readable map0 size and an exclusive
#    /dev/uioN.  No LUN is put in front of it: without a daemon answering,
#    any command would hang until cmd_time_out;
# 3. a rd_mcp RAM disk and a fileio file in /tmp behind tcm_loop LUNs give
#    /dev/sdX devices that answer INQUIRY and READ CAPACITY and move data;
# 4. everything is torn down in reverse and the modules unload.

. "${TL_VM_DIR:-$(dirname "$0")}/guest-lib.sh"

[ "${TL_IN_VM:-0}" = 1 ] || { echo "smoke.sh runs inside the VM: use run-vm.sh" >&2; exit 2; }
tl_need_cmd modprobe sg_inq sg_readcap dd cmp blockdev

tl_section "modules"
tl_log "kernel $(uname -r), guest uptime at start $(tl_uptime)s"
check "target modules load" tl_load_target_modules || tl_finish
check "configfs target tree" test -d "$TL_CFS/core"
tl_log "$(head -n 1 "$TL_CFS/version" 2>/dev/null)"
check "tcm_loop and target_core_user loaded" test -d /sys/module/tcm_loop -a -d /sys/module/target_core_user
check_eq "dbroot moved off the read-only root" "$TL_TARGET_DBROOT" "$(cat "$TL_CFS/dbroot")"

# ---------------------------------------------------------------------------
tl_section "TCMU user backstore"
SIZE=$((64 << 20))
if BS_USER=$(tl_user_create smoke null/ "$SIZE"); then
    pass "user_1/smoke created and enabled"
    tl_on_exit tl_backstore_remove "$BS_USER"
else
    fail "user_1/smoke created and enabled"
fi
UIO=
if [ -n "${BS_USER:-}" ] && tl_wait 10 tl_uio_of "$BS_USER" >/dev/null; then
    UIO=$(tl_uio_of "$BS_USER")
    pass "UIO device $UIO appeared"
else
    fail "UIO device for tcm-user/1/smoke appeared"
fi
if [ -n "$UIO" ]; then
    check_eq "$UIO name" "tcm-user/1/smoke/null/" "$(cat "/sys/class/uio/$UIO/name")"
    MAPSZ=$(cat "/sys/class/uio/$UIO/maps/map0/size" 2>/dev/null)
    tl_log "map0 size $MAPSZ ($((MAPSZ >> 20)) MiB), offset $(cat "/sys/class/uio/$UIO/maps/map0/offset" 2>/dev/null)"
    check "map0 size readable and non-zero" test "$((MAPSZ))" -gt 0
    check "/dev/$UIO is a character device" test -c "/dev/$UIO"
    check_eq "attrib/dev_size" "$SIZE" "$(cat "$BS_USER/attrib/dev_size" 2>/dev/null)"
    tl_log "cmd_time_out $(cat "$BS_USER/attrib/cmd_time_out" 2>/dev/null)s," \
           "max_data_area_mb $(cat "$BS_USER/attrib/max_data_area_mb" 2>/dev/null)," \
           "hw_max_sectors $(cat "$BS_USER/attrib/hw_max_sectors" 2>/dev/null)"
    # The uio device is exclusive: a second open fails with EBUSY.
    if exec 3<>"/dev/$UIO"; then
        pass "open /dev/$UIO"
        if (exec 4<>"/dev/$UIO") 2>/dev/null; then
            fail "second open of /dev/$UIO is refused"
        else
            pass "second open of /dev/$UIO is refused"
        fi
        exec 3<&-
        check "reopen after close" sh -c "exec 4<>/dev/$UIO"
    else
        fail "open /dev/$UIO"
    fi
fi
if command -v genl >/dev/null 2>&1; then
    check "generic netlink family TCM-USER exists" sh -c 'genl ctrl list | grep -q TCM-USER'
fi

# ---------------------------------------------------------------------------
tl_section "rd_mcp behind tcm_loop"
if BS_RD=$(tl_rd_create smoke_rd 16); then
    pass "rd_mcp_0/smoke_rd created"
    tl_on_exit tl_backstore_remove "$BS_RD"
else
    fail "rd_mcp_0/smoke_rd created"
fi
WWN_RD=
if [ -n "${BS_RD:-}" ] && WWN_RD=$(tl_loop_create "$BS_RD"); then
    pass "tcm_loop port $WWN_RD"
    tl_on_exit tl_loop_remove "$WWN_RD"
else
    fail "tcm_loop port for smoke_rd"
fi
DEV_RD=
if [ -n "$WWN_RD" ] && DEV_RD=$(tl_loop_dev "$WWN_RD"); then
    pass "block device $DEV_RD appeared"
else
    fail "block device for $WWN_RD appeared"
fi

PAT=/tmp/smoke-pattern
dd if=/dev/urandom of=$PAT bs=64k count=16 status=none
if [ -n "$DEV_RD" ]; then
    INQ=$(sg_inq "$DEV_RD" 2>&1)
    check "sg_inq answers" test -n "$INQ"
    check_eq "INQUIRY vendor" "LIO-ORG" \
        "$(sed -n 's/^ *Vendor identification: *//p' <<<"$INQ" | tr -d ' ')"
    check_eq "INQUIRY product" "RAMDISK-MCP" \
        "$(sed -n 's/^ *Product identification: *//p' <<<"$INQ" | tr -d ' ')"
    check_eq "capacity (blockdev)" $((16 << 20)) "$(blockdev --getsize64 "$DEV_RD")"
    check "sg_readcap" sg_readcap "$DEV_RD"
    check "dd write 1 MiB (O_DIRECT)" \
        dd if=$PAT of="$DEV_RD" bs=64k seek=8 oflag=direct status=none
    check "dd read back matches" \
        sh -c "dd if=$DEV_RD bs=64k skip=8 count=16 iflag=direct status=none | cmp - $PAT"
fi

# ---------------------------------------------------------------------------
tl_section "fileio (/tmp) behind tcm_loop"
FILE=/tmp/smoke-fileio.img
truncate -s 32M $FILE
if BS_FILE=$(tl_fileio_create smoke_file $FILE $((32 << 20))); then
    pass "fileio_0/smoke_file created"
    tl_on_exit tl_backstore_remove "$BS_FILE"
else
    fail "fileio_0/smoke_file created"
fi
WWN_FILE=
if [ -n "${BS_FILE:-}" ] && WWN_FILE=$(tl_loop_create "$BS_FILE"); then
    tl_on_exit tl_loop_remove "$WWN_FILE"
fi
DEV_FILE=
if [ -n "$WWN_FILE" ] && DEV_FILE=$(tl_loop_dev "$WWN_FILE"); then
    pass "block device $DEV_FILE appeared"
    check "dd write through fileio" \
        dd if=$PAT of="$DEV_FILE" bs=64k seek=32 oflag=direct conv=fsync status=none
    check "backing file holds the data" \
        sh -c "dd if=$FILE bs=64k skip=32 count=16 status=none | cmp - $PAT"
else
    fail "fileio LUN block device appeared"
fi

# ---------------------------------------------------------------------------
tl_section "teardown"
if [ -n "$WWN_FILE" ]; then
    check "remove fileio LUN" tl_loop_remove "$WWN_FILE"
    check "fileio /dev node gone" tl_wait 10 test ! -e "$DEV_FILE"
fi
check "remove fileio backstore" tl_backstore_remove "$BS_FILE"
if [ -n "$WWN_RD" ]; then
    check "remove rd_mcp LUN" tl_loop_remove "$WWN_RD"
    check "rd_mcp /dev node gone" tl_wait 10 test ! -e "$DEV_RD"
fi
check "remove rd_mcp backstore" tl_backstore_remove "$BS_RD"
check "remove user backstore" tl_backstore_remove "$BS_USER"
[ -z "$UIO" ] || check "UIO device gone" tl_wait 10 test ! -e "/sys/class/uio/$UIO"
TL_CLEANUPS=()   # all done by hand above
check "loopback tree empty" sh -c "[ -z \"\$(ls $TL_CFS/loopback | grep '^naa')\" ]"
check "modules unload" tl_unload_target_modules
check "tcm_loop and target_core_user gone" test ! -d /sys/module/tcm_loop -a ! -d /sys/module/target_core_user
tl_log "guest uptime at end $(tl_uptime)s"
tl_finish
