#!/bin/bash
#
# Build the tiny busybox initramfs of the tcmu-lua test VM.
#
#   mkinitramfs.sh [-k KERNEL_IMAGE] [-f] OUT.cpio.gz
#   mkinitramfs.sh [-k KERNEL_IMAGE] --print-kernel
#   mkinitramfs.sh [-k KERNEL_IMAGE] --vmlinux OUT.elf
#
# The initramfs holds a static busybox, the modules needed to mount the host's
# root over virtio 9p (plus configfs), and /init (initramfs-init.sh).
# Modules are resolved through the kernel's modules.dep; built-in ones are
# skipped.  OUT is only rebuilt when its inputs change (OUT.stamp holds a hash
# of them); -f forces a rebuild.
#
# Kernel: -k, else $TL_VM_KERNEL, else the newest /boot/vmlinuz-*.
# Extra modules: $TL_VM_INITRD_MODULES (space separated module names).
# Busybox: $TL_VM_BUSYBOX, else /bin/busybox or /usr/bin/busybox; it must be
# statically linked (Debian: busybox-static).
#
# --vmlinux extracts the uncompressed ELF kernel from the bzImage (cached the
# same way) and exits 0, or exits 1 when that is not possible (kernel without
# CONFIG_PVH, unknown compression).  qemu boots such an ELF through its PVH
# entry point, which skips the in-guest decompression: Debian's kernel is XZ
# compressed and unpacking it under TCG costs about 4 s of every boot.

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
INIT_SRC=$HERE/initramfs-init.sh
BASE_MODULES="virtio_pci 9pnet_virtio 9p configfs"

err() { echo "mkinitramfs: $*" >&2; }
die() { err "$*"; exit 2; }

usage() {
    awk 'NR > 2 && /^#/ { sub(/^# ?/, ""); print; next } NR > 2 { exit }' "${BASH_SOURCE[0]}"
    exit "${1:-2}"
}

KERNEL=${TL_VM_KERNEL:-}
FORCE=0
PRINT_KERNEL=0
VMLINUX=
OUT=
while [ $# -gt 0 ]; do
    case $1 in
        -k) KERNEL=${2:?-k needs an argument}; shift 2 ;;
        -f) FORCE=1; shift ;;
        --print-kernel) PRINT_KERNEL=1; shift ;;
        --vmlinux) VMLINUX=${2:?--vmlinux needs an argument}; shift 2 ;;
        -h|--help) usage 0 ;;
        -*) err "unknown option $1"; usage ;;
        *) [ -z "$OUT" ] || usage; OUT=$1; shift ;;
    esac
done

newest_kernel() {
    local k
    k=$(find /boot -maxdepth 1 -name 'vmlinuz-*' 2>/dev/null | sort -V | tail -n 1)
    [ -n "$k" ] || die "no /boot/vmlinuz-* found (install linux-image-amd64 or set TL_VM_KERNEL)"
    echo "$k"
}

[ -n "$KERNEL" ] || KERNEL=$(newest_kernel)
[ -r "$KERNEL" ] || die "kernel image $KERNEL missing or unreadable"
if [ "$PRINT_KERNEL" = 1 ]; then
    echo "$KERNEL"
    exit 0
fi
KREL=${TL_VM_KREL:-$(basename "$KERNEL")}
KREL=${KREL#vmlinuz-}

BUSYBOX=${TL_VM_BUSYBOX:-}
if [ -z "$BUSYBOX" ]; then
    for b in /bin/busybox /usr/bin/busybox; do
        [ -x "$b" ] && { BUSYBOX=$b; break; }
    done
fi
[ -n "$BUSYBOX" ] || die "busybox not found (install busybox-static)"
if command -v file >/dev/null 2>&1 && ! file -L "$BUSYBOX" | grep -q 'statically linked'; then
    die "$BUSYBOX is not statically linked (install busybox-static)"
fi

# --- uncompressed kernel for PVH boot ---------------------------------------

extract_vmlinux() { # bzImage out
    local img=$1 out=$2 magic off cmd stamp
    grep -q '^CONFIG_PVH=y' "/boot/config-$KREL" 2>/dev/null || {
        err "no CONFIG_PVH=y in /boot/config-$KREL: cannot boot an ELF kernel"
        return 1
    }
    stamp=$(stat -L -c '%n %s %Y' "$img"; sha256sum "${BASH_SOURCE[0]}" | cut -d' ' -f1)
    if [ -s "$out" ] && [ "$(cat "$out.stamp" 2>/dev/null)" = "$stamp" ]; then
        return 0
    fi
    # The payload is the first compressed stream inside the bzImage.
    for magic in 'xz:\xfd7zXZ\x00' 'zstd:\x28\xb5\x2f\xfd' 'gzip:\x1f\x8b\x08'; do
        off=$(LC_ALL=C grep -obUaP "${magic#*:}" "$img" 2>/dev/null | head -n 1 | cut -d: -f1) || true
        [ -n "$off" ] || continue
        case ${magic%%:*} in
            # busybox xzcat lacks the x86 BCJ filter the kernel uses
            xz)   command -v xz >/dev/null || continue; cmd="xz -dc --single-stream" ;;
            zstd) command -v zstd >/dev/null || continue; cmd="zstd -qdc" ;;
            gzip) cmd="gzip -dc" ;;
        esac
        mkdir -p "$(dirname "$out")"
        # Trailing data after the stream makes some decompressors complain:
        # judge the result by its ELF header instead of the exit status.
        tail -c "+$((off + 1))" "$img" | $cmd >"$out.tmp.$$" 2>/dev/null || true
        if [ "$(head -c 4 "$out.tmp.$$" | od -An -c | tr -d ' ')" = '177ELF' ]; then
            mv -f "$out.tmp.$$" "$out"
            echo "$stamp" >"$out.stamp"
            return 0
        fi
        rm -f "$out.tmp.$$"
    done
    err "could not extract an ELF kernel from $img"
    return 1
}

if [ -n "$VMLINUX" ]; then
    extract_vmlinux "$KERNEL" "$VMLINUX" || exit 1
    exit 0
fi

[ -n "$OUT" ] || usage
MODDIR=/lib/modules/$KREL
[ -r "$MODDIR/modules.dep" ] || die "$MODDIR/modules.dep missing: modules of kernel $KREL not installed (or set TL_VM_KREL)"

# --- module resolution ------------------------------------------------------

# Module name of a modules.dep path, '-' folded to '_' (in $REPLY; no
# subshells: modules.dep has thousands of lines).
modname() {
    REPLY=${1##*/}
    REPLY=${REPLY%%.ko*}
    REPLY=${REPLY//-/_}
}

declare -A DEP_OF=()     # relative module path -> its dependency list
declare -A PATH_OF=()    # normalised module name -> relative path
declare -A BUILTIN=()    # normalised module name -> 1
while IFS= read -r line; do
    mod=${line%%:*}
    DEP_OF[$mod]=${line#*:}
    modname "$mod"
    PATH_OF[$REPLY]=$mod
done <"$MODDIR/modules.dep"
if [ -r "$MODDIR/modules.builtin" ]; then
    while IFS= read -r mod; do
        modname "$mod"
        BUILTIN[$REPLY]=1
    done <"$MODDIR/modules.builtin"
fi

declare -A SEEN=()
ORDER=()
add_module_path() { # relative path; dependencies first (post-order DFS)
    local mod=$1 d
    [ -z "${SEEN[$mod]:-}" ] || return 0
    SEEN[$mod]=1
    for d in ${DEP_OF[$mod]}; do
        add_module_path "$d"
    done
    ORDER+=("$mod")
}
for name in $BASE_MODULES ${TL_VM_INITRD_MODULES:-}; do
    modname "$name"
    n=$REPLY
    if [ -n "${PATH_OF[$n]:-}" ]; then
        add_module_path "${PATH_OF[$n]}"
    elif [ -n "${BUILTIN[$n]:-}" ]; then
        :   # built in: nothing to load
    else
        die "module $name is neither in $MODDIR/modules.dep nor built in"
    fi
done

# --- cache check --------------------------------------------------------------

stamp_input() {
    echo "kernel $KERNEL $KREL"
    sha256sum "$INIT_SRC" "${BASH_SOURCE[0]}" "$BUSYBOX" | cut -d' ' -f1
    local m
    for m in "${ORDER[@]}"; do
        stat -c '%n %s %Y' "$MODDIR/$m"
    done
}
STAMP=$(stamp_input | sha256sum | cut -d' ' -f1)
if [ "$FORCE" = 0 ] && [ -s "$OUT" ] && [ -f "$OUT.stamp" ] &&
   [ "$(cat "$OUT.stamp")" = "$STAMP" ]; then
    exit 0
fi

# --- build ------------------------------------------------------------------

mkdir -p "$(dirname "$OUT")"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/tl-initramfs.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
ROOT=$WORK/root
mkdir -p "$ROOT"/{bin,dev,proc,sys,newroot,lib/modules}
cp "$BUSYBOX" "$ROOT/bin/busybox"
ln -s busybox "$ROOT/bin/sh"
cp "$INIT_SRC" "$ROOT/init"
chmod 755 "$ROOT/init" "$ROOT/bin/busybox"

: >"$ROOT/lib/modules/load-order"
for m in "${ORDER[@]}"; do
    src=$MODDIR/$m
    base=$(basename "$m")
    case $base in
        *.ko) cp "$src" "$ROOT/lib/modules/$base" ;;
        *.ko.xz) base=${base%.xz}; xz -dc "$src" >"$ROOT/lib/modules/$base" ;;
        *.ko.zst) base=${base%.zst}; zstd -qdc "$src" >"$ROOT/lib/modules/$base" ;;
        *.ko.gz) base=${base%.gz}; gzip -dc "$src" >"$ROOT/lib/modules/$base" ;;
        *) die "unsupported module file $m" ;;
    esac
    echo "$base" >>"$ROOT/lib/modules/load-order"
done
echo "$KREL" >"$ROOT/lib/modules/kernel-release"

(cd "$ROOT" && find . | LC_ALL=C sort | "$BUSYBOX" cpio -o -H newc 2>/dev/null) |
    gzip -6 >"$WORK/initramfs.cpio.gz"
mv -f "$WORK/initramfs.cpio.gz" "$OUT.tmp.$$"
mv -f "$OUT.tmp.$$" "$OUT"
echo "$STAMP" >"$OUT.stamp"
echo "mkinitramfs: built $OUT for $KREL ($(du -k "$OUT" | cut -f1) KiB);" \
     "modules: $(tr '\n' ' ' <"$ROOT/lib/modules/load-order")" >&2
