#!/bin/bash
#
# Boot the tcmu-lua test VM and run one guest script in it.
#
#   run-vm.sh [options] GUEST_SCRIPT [ARGS...]
#
# The guest is Debian's kernel under qemu (TCG unless TL_VM_KVM=1) with the
# host's root file system shared read-only over virtio 9p, so the script runs
# the host's own binaries (the daemon from the build dir, fio, sg3_utils).
# Writable in the guest: tmpfs on /tmp /run /var/log /var/tmp /dev/shm, and
# the output directory, which is shared read-write at the same path as on the
# host and passed to the script as $TL_OUT.
#
# Exit status: the guest script's; 124 on timeout; 125 when the guest did not
# report a status (kernel panic, crash, broken setup); 2 on usage errors or a
# missing qemu/kernel/busybox (77 instead when TL_VM_ALLOW_SKIP=1).
# A kernel BUG/Oops in the guest turns a 0 into 1 (TL_VM_ALLOW_OOPS=1: no).
#
# Options (environment variable in brackets):
#   -o DIR         output directory [TL_VM_OUT]; default a fresh temporary
#                  directory, removed after a successful run unless -k
#   -k             keep the temporary output directory
#   -b DIR         build directory, passed as $TL_BUILD_DIR [TL_BUILD_DIR];
#                  default <source>/build if it exists
#   -t SECS        hard timeout of the whole run [TL_VM_TIMEOUT, 600]
#   -m MiB         guest memory [TL_VM_MEM, 2048]
#   -c N           guest CPUs [TL_VM_SMP, 2]
#   -e VAR=VALUE   extra environment for the guest script (repeatable); all
#                  TL_* variables except TL_VM_* are passed on as well
#   -r DIR         extra host directory to show in the guest at the same path
#                  (read-only); needed only below /tmp, /run, /var/tmp,
#                  /var/log, which the guest covers with tmpfs.  The script's
#                  directory and the build directory are added automatically.
#   -q             console only to OUT/console.log, not to stdout [TL_VM_QUIET]
#   -a ARGS        extra kernel command line [TL_VM_APPEND]
#   --shell        start a shell on the console after the script (interactive)
#   --kernel IMG   kernel image [TL_VM_KERNEL]; default newest /boot/vmlinuz-*
#   --cache DIR    where the initramfs and the unpacked kernel are cached
#                  [TL_VM_CACHE_DIR]; default $TL_BUILD_DIR/vm-cache, else
#                  ${XDG_CACHE_HOME:-~/.cache}/tcmu-lua-vm
#   --no-pvh       boot the compressed bzImage, not the unpacked ELF kernel
#                  [TL_VM_PVH=0]
# Other environment: TL_VM_KVM=1 use KVM if /dev/kvm is usable (nested KVM
# hangs or aborts on some hosts, so TCG is the default); TL_VM_CPU qemu -cpu
# model (default max under TCG, host under KVM); TL_VM_QEMU qemu binary.

set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
SRC_DIR=$(cd "$HERE/../.." && pwd -P)

say() { echo "run-vm: $*" >&2; }
usage() {
    awk 'NR > 2 && /^#/ { sub(/^# ?/, ""); print; next } NR > 2 { exit }' "${BASH_SOURCE[0]}" >&2
    exit 2
}
missing() {
    say "ERROR: $*"
    if [ "${TL_VM_ALLOW_SKIP:-0}" = 1 ]; then
        say "TL_VM_ALLOW_SKIP=1: reporting the test as skipped (77)"
        exit 77
    fi
    exit 2
}

OUT=${TL_VM_OUT:-}
KEEP=0
BUILD_DIR=${TL_BUILD_DIR:-}
TIMEOUT=${TL_VM_TIMEOUT:-600}
MEM=${TL_VM_MEM:-2048}
SMP=${TL_VM_SMP:-2}
QUIET=${TL_VM_QUIET:-0}
APPEND=${TL_VM_APPEND:-}
KERNEL=${TL_VM_KERNEL:-}
CACHE=${TL_VM_CACHE_DIR:-}
PVH=${TL_VM_PVH:-1}
SHELL_AFTER=0
EXTRA_ENV=()
EXTRA_RO=()

while [ $# -gt 0 ]; do
    case $1 in
        -o) OUT=${2:?}; shift 2 ;;
        -k) KEEP=1; shift ;;
        -b) BUILD_DIR=${2:?}; shift 2 ;;
        -t) TIMEOUT=${2:?}; shift 2 ;;
        -m) MEM=${2:?}; shift 2 ;;
        -c) SMP=${2:?}; shift 2 ;;
        -e) case ${2:?} in
                [A-Za-z_]*=*) EXTRA_ENV+=("$2") ;;
                *) say "-e wants VAR=VALUE, got '$2'"; exit 2 ;;
            esac
            shift 2 ;;
        -r) EXTRA_RO+=("${2:?}"); shift 2 ;;
        -q) QUIET=1; shift ;;
        -a) APPEND="$APPEND ${2:?}"; shift 2 ;;
        --shell) SHELL_AFTER=1; shift ;;
        --kernel) KERNEL=${2:?}; shift 2 ;;
        --cache) CACHE=${2:?}; shift 2 ;;
        --no-pvh) PVH=0; shift ;;
        -h|--help) usage ;;
        --) shift; break ;;
        -*) say "unknown option $1"; usage ;;
        *) break ;;
    esac
done
[ $# -ge 1 ] || usage
SCRIPT=$1
shift

case $TIMEOUT in ''|*[!0-9]*) say "bad timeout '$TIMEOUT'"; exit 2 ;; esac
[ -f "$SCRIPT" ] || { say "guest script $SCRIPT not found"; exit 2; }
SCRIPT=$(readlink -f "$SCRIPT")

# --- tools, kernel, initramfs -----------------------------------------------

QEMU=${TL_VM_QEMU:-qemu-system-x86_64}
command -v "$QEMU" >/dev/null 2>&1 ||
    missing "$QEMU not found: install qemu-system-x86 (Debian) to run the VM tests"
command -v timeout >/dev/null 2>&1 || missing "timeout (coreutils) not found"

KERNEL=$("$HERE/mkinitramfs.sh" ${KERNEL:+-k "$KERNEL"} --print-kernel) ||
    missing "no guest kernel: install linux-image-amd64 (Debian) or set TL_VM_KERNEL"
KREL=$(basename "$KERNEL")
KREL=${KREL#vmlinuz-}

if [ -n "$BUILD_DIR" ]; then
    [ -d "$BUILD_DIR" ] || { say "build directory $BUILD_DIR does not exist"; exit 2; }
    BUILD_DIR=$(readlink -f "$BUILD_DIR")
elif [ -d "$SRC_DIR/build" ]; then
    BUILD_DIR=$SRC_DIR/build
fi
if [ -z "$CACHE" ]; then
    if [ -n "$BUILD_DIR" ] && [ -w "$BUILD_DIR" ]; then
        CACHE=$BUILD_DIR/vm-cache
    else
        CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/tcmu-lua-vm
    fi
fi
mkdir -p "$CACHE" || { say "cannot create cache directory $CACHE"; exit 2; }
CACHE=$(readlink -f "$CACHE")

INITRD=$CACHE/initramfs-$KREL.cpio.gz
"$HERE/mkinitramfs.sh" -k "$KERNEL" "$INITRD" ||
    missing "building the initramfs failed (see above)"

BOOT_KERNEL=$KERNEL
if [ "$PVH" = 1 ] && "$HERE/mkinitramfs.sh" -k "$KERNEL" --vmlinux "$CACHE/vmlinux-$KREL"; then
    BOOT_KERNEL=$CACHE/vmlinux-$KREL
fi

# --- output directory -------------------------------------------------------

TEMP_OUT=0
if [ -z "$OUT" ]; then
    OUT=$(mktemp -d "${TMPDIR:-/tmp}/tl-vm.XXXXXX") || exit 2
    TEMP_OUT=1
else
    mkdir -p "$OUT" || exit 2
fi
OUT=$(readlink -f "$OUT")
LOG=$OUT/console.log
rm -f "$OUT/exit-status" "$OUT/boot-seconds" "$OUT/dmesg.txt" "$OUT/init-error" \
      "$OUT/job.env" "$OUT/mounts" "$OUT/results.txt" "$LOG"

# Single quotes for /bin/sh (dash) in the guest.
shq() { printf "'%s'" "${1//\'/\'\\\'\'}"; }

# Paths the guest hides under tmpfs need their own read-only share.
shadowed() {
    case $1 in
        /tmp|/tmp/*|/run|/run/*|/var/tmp|/var/tmp/*|/var/log|/var/log/*) return 0 ;;
    esac
    return 1
}

SHARES=()        # host dirs with their own read-only 9p share
add_share() {
    local d s
    d=$(readlink -f "$1") || return 0
    shadowed "$d" || return 0
    for s in "${SHARES[@]}"; do
        case $d/ in "$s"/*) return 0 ;; esac
    done
    SHARES+=("$d")
}
# The whole source tree: the daemon loads its Lua from there.
add_share "$(dirname "$(dirname "$HERE")")"
add_share "$(dirname "$SCRIPT")"
[ -z "$BUILD_DIR" ] || add_share "$BUILD_DIR"
for d in "${EXTRA_RO[@]}"; do
    [ -d "$d" ] || { say "-r $d: not a directory"; exit 2; }
    add_share "$d"
done

VIRTFS=(-virtfs "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap"
        -virtfs "local,path=$OUT,mount_tag=work,security_model=none,multidevs=remap")
{
    i=0
    for d in "${SHARES[@]}"; do
        echo "ro$i $d"
        i=$((i + 1))
    done
    echo "work $OUT"
} | awk '{ n = gsub("/", "/"); print n, $0 }' | sort -n -s -k1,1 | cut -d' ' -f2- >"$OUT/mounts"
i=0
for d in "${SHARES[@]}"; do
    case $d in *,*) say "cannot share $d: qemu -virtfs paths must not contain ','"; exit 2 ;; esac
    VIRTFS+=(-virtfs "local,path=$d,mount_tag=ro$i,security_model=none,readonly=on,multidevs=remap")
    i=$((i + 1))
done
case $OUT in *,*) say "output directory $OUT must not contain ','"; exit 2 ;; esac

{
    echo "# written by run-vm.sh"
    for name in $(compgen -e | grep -E '^TL_' | sort); do
        case $name in TL_VM_*|TL_OUT|TL_IN_VM|TL_SCRIPT|TL_SRC_DIR|TL_BUILD_DIR) continue ;; esac
        echo "$name=$(shq "${!name}")"
    done
    echo "TL_SCRIPT=$(shq "$SCRIPT")"
    echo "TL_SRC_DIR=$(shq "$SRC_DIR")"
    echo "TL_VM_DIR=$(shq "$HERE")"
    echo "TL_BUILD_DIR=$(shq "$BUILD_DIR")"
    echo "TL_KERNEL_RELEASE=$(shq "$KREL")"
    for kv in "${EXTRA_ENV[@]}"; do
        echo "${kv%%=*}=$(shq "${kv#*=}")"
    done
    printf 'set --'
    for a in "$@"; do printf ' %s' "$(shq "$a")"; done
    echo
} >"$OUT/job.env"

# --- qemu -------------------------------------------------------------------

# -cpu max: host binaries built with -march=native may use instructions
# (SSE4.2, AVX2) that the default qemu64 model lacks.
# shellcheck disable=SC2054  # the commas are qemu's
ACCEL=(-accel tcg,thread=multi -cpu "${TL_VM_CPU:-max}")
if [ "${TL_VM_KVM:-0}" = 1 ]; then
    if [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
        ACCEL=(-accel kvm -cpu "${TL_VM_CPU:-host}")
    else
        say "TL_VM_KVM=1 but /dev/kvm is not usable: using TCG"
    fi
fi

# The guest watchdog fires first so that it can still save dmesg and the
# blocked tasks; the host timeout is the backstop.
GUEST_TIMEOUT=0
[ "$TIMEOUT" -le 60 ] || GUEST_TIMEOUT=$((TIMEOUT - 30))

# no_timer_check: under TCG on a busy host the kernel's early check that
# the timer interrupt arrives can time out and panic ("IO-APIC + timer
# doesn't work"); the emulated timer is fine, only slow to show up.
CMDLINE="console=ttyS0 panic=-1 quiet mitigations=off tsc=reliable no_timer_check"
CMDLINE="$CMDLINE tl.script=$(printf %s "$SCRIPT" | tr -c 'A-Za-z0-9_./-' '?')"
CMDLINE="$CMDLINE tl.timeout=$GUEST_TIMEOUT"
[ "$SHELL_AFTER" = 0 ] || CMDLINE="$CMDLINE tl.shell=1"
CMDLINE="$CMDLINE $APPEND"

if [ "$SHELL_AFTER" = 1 ]; then
    CONSOLE=(-chardev "stdio,id=con,logfile=$LOG,signal=off")
elif [ "$QUIET" = 1 ]; then
    CONSOLE=(-chardev "file,id=con,path=$LOG")
else
    CONSOLE=(-chardev "stdio,id=con,logfile=$LOG,signal=off")
fi

QEMU_CMD=("$QEMU" -nodefaults -no-user-config -display none -no-reboot
          "${ACCEL[@]}" -m "$MEM" -smp "$SMP"
          -kernel "$BOOT_KERNEL" -initrd "$INITRD" -append "$CMDLINE"
          "${CONSOLE[@]}" -serial chardev:con
          "${VIRTFS[@]}")

say "kernel $KREL ($(basename "$BOOT_KERNEL")), ${ACCEL[1]}, ${MEM} MiB, $SMP CPUs, timeout ${TIMEOUT}s"
say "guest script $SCRIPT $*"
say "output in $OUT"

START=$(date +%s.%N)
QPID=
# shellcheck disable=SC2317  # invoked by the trap
on_signal() {
    say "interrupted: stopping qemu"
    [ -z "$QPID" ] || kill -TERM "$QPID" 2>/dev/null
    wait 2>/dev/null
    exit 130
}
trap on_signal INT TERM
if [ "$SHELL_AFTER" = 1 ]; then
    # An asynchronous command gets /dev/null as stdin unless told otherwise.
    exec 3<&0
    timeout --foreground -k 10 "$TIMEOUT" "${QEMU_CMD[@]}" <&3 3<&- &
else
    timeout -k 10 "$TIMEOUT" "${QEMU_CMD[@]}" </dev/null &
fi
QPID=$!
wait "$QPID"
QRC=$?
QPID=
trap - INT TERM
END=$(date +%s.%N)
ELAPSED=$(awk -v a="$START" -v b="$END" 'BEGIN { printf "%.1f", b - a }')

# --- verdict ----------------------------------------------------------------

RC=125
if [ "$QRC" = 124 ] || [ "$QRC" = 137 ]; then
    say "TIMEOUT: the VM did not finish within ${TIMEOUT}s"
    RC=124
elif [ -s "$OUT/exit-status" ]; then
    RC=$(cat "$OUT/exit-status")
    case $RC in ''|*[!0-9]*) say "garbage exit status '$RC'"; RC=125 ;; esac
    [ "$RC" != 124 ] || say "TIMEOUT: the guest watchdog stopped the script after ${GUEST_TIMEOUT}s"
else
    say "the guest reported no exit status (qemu exit $QRC): boot failure, panic or crash"
    [ ! -s "$OUT/init-error" ] || say "init: $(cat "$OUT/init-error")"
fi

KLOG=$OUT/dmesg.txt
[ -s "$KLOG" ] || KLOG=$LOG
if [ -f "$KLOG" ]; then
    if grep -qE 'BUG:|Oops|general protection fault|Kernel panic|KASAN|UBSAN|kernel BUG' "$KLOG"; then
        say "the guest kernel reported a bug:"
        grep -E -A3 'BUG:|Oops|general protection fault|Kernel panic|KASAN|UBSAN|kernel BUG' "$KLOG" | head -n 40 >&2
        if [ "$RC" = 0 ] && [ "${TL_VM_ALLOW_OOPS:-0}" != 1 ]; then
            say "failing the run because of it (TL_VM_ALLOW_OOPS=1 to ignore)"
            RC=1
        fi
    fi
    if grep -qE 'WARNING:|blocked for more than' "$KLOG"; then
        say "guest kernel warnings:"
        grep -E -A2 'WARNING:|blocked for more than' "$KLOG" | head -n 20 >&2
    fi
fi

BOOT=$(cat "$OUT/boot-seconds" 2>/dev/null || echo '?')
say "exit status $RC; guest ready after ${BOOT}s of kernel uptime; total ${ELAPSED}s"
if [ "$RC" != 0 ]; then
    if [ -f "$LOG" ]; then
        say "last lines of $LOG:"
        tail -n 60 "$LOG" | sed 's/^/  | /' >&2
    fi
    say "output kept in $OUT"
elif [ "$TEMP_OUT" = 1 ] && [ "$KEEP" = 0 ]; then
    rm -rf "$OUT"
fi
exit "$RC"
