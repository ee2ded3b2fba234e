#!/bin/busybox sh
# shellcheck shell=dash
#
# /init of the tcmu-lua test VM (runs as PID 1 under busybox ash).
#
# Boots into the *host's* root file system, shared read-only over virtio 9p,
# with tmpfs on the writable paths, and runs one guest test script there.
# The script's exit status is written to the writable 9p share (tag "work")
# as "exit-status", then the VM powers off.
#
# Kernel command line parameters read here (all optional):
#   tl.script=PATH    guest script (host path).  Overridden by job.env.
#   tl.args=A,B,C     comma separated arguments (no spaces); job.env wins.
#   tl.out=PATH       where the writable share appears in the guest when the
#                     share has no "mounts" file.  Default /run/tl-out.
#   tl.timeout=SECS   guest-side watchdog; on expiry dump blocked tasks, save
#                     dmesg and report status 124.  0 = none.
#   tl.msize=BYTES    9p msize (default 512000).
#   tl.shell=1        start a busybox shell on the console before powering off
#                     (interactive debugging).
#
# Files in the writable share (tag "work"), written by run-vm.sh:
#   mounts    lines "TAG PATH", parents first: where to mount each 9p share
#             (read-only) inside the new root; tag "work" is the writable
#             share itself.  run-vm.sh passes the host paths, so every path is
#             the same on both sides.
#   job.env   sourced by /bin/sh inside the chroot with `set -a`: plain
#             VAR='value' assignments plus an optional `set -- 'arg' ...`.
# Files written back: exit-status, boot-seconds, dmesg.txt, init-error.

/bin/busybox mkdir -p /proc /sys /dev /newroot /tl-out /bin /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin

mount -t devtmpfs devtmpfs /dev
# The cpio has no /dev/console node, so PID 1 starts without stdio.
exec </dev/console >/dev/console 2>&1
mount -t proc proc /proc
mount -t sysfs sysfs /sys

log() { echo "tl-init: $*"; }

T0=$(cut -d' ' -f1 /proc/uptime)
log "kernel up after ${T0}s"

OUT=/run/tl-out
SCRIPT=
ARGS=
GTIMEOUT=0
MSIZE=512000
SHELL_ON_FAIL=0
# shellcheck disable=SC2013
for w in $(cat /proc/cmdline); do
    case $w in
        tl.out=*) OUT=${w#*=} ;;
        tl.script=*) SCRIPT=${w#*=} ;;
        tl.args=*) ARGS=${w#*=} ;;
        tl.timeout=*) GTIMEOUT=${w#*=} ;;
        tl.msize=*) MSIZE=${w#*=} ;;
        tl.shell=*) SHELL_ON_FAIL=${w#*=} ;;
    esac
done
R=/newroot
SHARE_OK=0

halt_now() {
    sync
    if [ "$SHELL_ON_FAIL" = 1 ]; then
        log "tl.shell=1: starting a shell; exit it to power off"
        setsid cttyhack sh
    fi
    poweroff -f
    # poweroff -f should not return; fall back to sysrq.
    echo o >/proc/sysrq-trigger
    sleep 10
}

die() {
    log "FATAL: $*"
    if [ "$SHARE_OK" = 1 ]; then
        echo "init: $*" >/tl-out/init-error 2>/dev/null
    fi
    halt_now
}

# Stage 1: modules listed by mkinitramfs.sh, dependencies first.
while read -r m; do
    [ -n "$m" ] || continue
    insmod "/lib/modules/$m" || die "insmod $m failed"
done </lib/modules/load-order

# Stage 2: host root read-only over 9p.  The virtio device may need a moment
# after virtio_pci binds before its mount tag is known.
mnt9p() { # tag dir options
    i=0
    while ! mount -t 9p -o "trans=virtio,version=9p2000.L,msize=$MSIZE,$3" "$1" "$2" 2>/dev/null; do
        i=$((i + 1))
        if [ $i -ge 50 ]; then  # 5 s: once more, loudly
            mount -t 9p -o "trans=virtio,version=9p2000.L,msize=$MSIZE,$3" "$1" "$2"
            return
        fi
        sleep 0.1
    done
}
mnt9p hostroot $R ro,cache=loose || die "cannot mount the 9p tag hostroot"

mount -t tmpfs -o mode=1777 tmpfs $R/tmp || die "tmpfs /tmp"
mount -t tmpfs -o mode=755 tmpfs $R/run || die "tmpfs /run"
mount -t tmpfs -o mode=755 tmpfs $R/var/log || die "tmpfs /var/log"
mount -t tmpfs -o mode=1777 tmpfs $R/var/tmp || die "tmpfs /var/tmp"

# Stage 3: the writable share, first in the initramfs (to read "mounts"),
# then bound into place together with any extra read-only shares.  A mount
# point below one of the tmpfs mounts has to be created first.
mnt9p work /tl-out rw || die "cannot mount the 9p tag work"
SHARE_OK=1
if [ ! -f /tl-out/mounts ]; then
    echo "work $OUT" >/tl-out/mounts
fi
while read -r tag path; do
    [ -n "$tag" ] || continue
    mkdir -p "$R$path" 2>/dev/null
    if [ "$tag" = work ]; then
        OUT=$path
        mount -o bind /tl-out "$R$path" || die "cannot bind the work share at $path"
    else
        mnt9p "$tag" "$R$path" ro,cache=loose || die "cannot mount the 9p tag $tag at $path"
    fi
done </tl-out/mounts

mount -o bind /proc $R/proc || die "bind /proc"
mount -o bind /sys $R/sys || die "bind /sys"
mount -o bind /dev $R/dev || die "bind /dev"
mkdir -p /dev/pts /dev/shm
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts $R/dev/pts
mount -t tmpfs -o mode=1777 tmpfs $R/dev/shm
if [ -d /sys/kernel/config ]; then
    mount -t configfs configfs $R/sys/kernel/config || die "configfs"
else
    die "configfs is not available (configfs.ko missing from the initramfs?)"
fi
mount -t debugfs debugfs $R/sys/kernel/debug 2>/dev/null
mount -t tracefs tracefs $R/sys/kernel/tracing 2>/dev/null

# Module autoloading (request_module: fabric and backend modules, crypto
# algorithms...) runs /proc/sys/kernel/modprobe from the root of the kernel
# threads, which is this initramfs, not the chroot.  Point it at a wrapper that
# runs the host's modprobe inside the new root, where /lib/modules is.
printf '#!/bin/busybox sh\nexec /bin/busybox chroot %s /sbin/modprobe "$@"\n' "$R" >/sbin/tl-modprobe
chmod 755 /sbin/tl-modprobe
# (Debian: /sbin/modprobe is an absolute symlink to /bin/kmod, dangling from here.)
if [ -L $R/sbin/modprobe ] || [ -e $R/sbin/modprobe ]; then
    echo /sbin/tl-modprobe >/proc/sys/kernel/modprobe
else
    log "warning: no /sbin/modprobe on the host (kmod): module autoloading will fail"
fi

hostname tl-vm
ip link set lo up || log "warning: cannot bring up lo"

# Stage 4: the job.  Build job.env from the command line if run-vm.sh did not.
JOB=/tl-out/job.env
if [ ! -f "$JOB" ]; then
    [ -n "$SCRIPT" ] || die "no tl.script= on the command line and no job.env in the share"
    {
        echo "TL_SCRIPT='$SCRIPT'"
        printf "set --"
        oldifs=$IFS
        IFS=,
        for a in $ARGS; do printf " '%s'" "$a"; done
        IFS=$oldifs
        echo
    } >"$JOB"
fi
rm -f /tl-out/exit-status /tl-out/dmesg.txt

T1=$(cut -d' ' -f1 /proc/uptime)
log "guest ready after ${T1}s, running job"
echo "$T1" >/tl-out/boot-seconds

WDPID=
finish() { # status
    if [ -n "$WDPID" ]; then   # only set in PID 1, not in the watchdog
        kill "$WDPID" 2>/dev/null
    fi
    # Leftover processes (a daemon a test forgot) get TERM, then KILL.
    if kill -s TERM -1 2>/dev/null; then
        sleep 1
        kill -s KILL -1 2>/dev/null
    fi
    T2=$(cut -d' ' -f1 /proc/uptime)
    log "job finished with status $1 at ${T2}s"
    dmesg >/tl-out/dmesg.txt 2>/dev/null
    echo "$1" >/tl-out/exit-status
    halt_now
}

# Runs inside the chroot with the host's /bin/sh.  A clean environment:
# TL_* variables come from job.env.
# shellcheck disable=SC2016
chroot $R /usr/bin/env -i \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/tmp TMPDIR=/tmp TERM=dumb LANG=C.UTF-8 \
    TL_IN_VM=1 TL_OUT="$OUT" \
    /bin/sh -c '
        set -a
        . "$TL_OUT/job.env"
        set +a
        cd /tmp || exit 125
        if [ -x "$TL_SCRIPT" ]; then
            exec "$TL_SCRIPT" "$@"
        elif [ -f "$TL_SCRIPT" ]; then
            exec /bin/bash "$TL_SCRIPT" "$@"
        fi
        echo "tl-init: guest script $TL_SCRIPT not found" >&2
        exit 127
    ' tl-job &
JOBPID=$!

if [ "$GTIMEOUT" -gt 0 ] 2>/dev/null; then
    (
        sleep "$GTIMEOUT"
        : >/tl-timedout
        log "guest timeout (${GTIMEOUT}s): dumping blocked tasks"
        echo w >/proc/sysrq-trigger
        sleep 1
        finish 124
    ) &
    WDPID=$!
fi

wait "$JOBPID"
rc=$?
# The watchdog fired and is finishing: leave the report to it.
while [ -e /tl-timedout ]; do sleep 60; done
finish $rc
