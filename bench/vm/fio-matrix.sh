#!/bin/bash
#
# Runs inside the VM (bench/vm-bench.sh boots it): the same fio matrix, in
# one boot, against the kernel's own backstores, tcmu-lua's handlers and
# (when installed) tcmu-runner's file handler.  Writes $TL_OUT/results.tsv:
#   target  workload  read_iops  read_kib_s  write_iops  write_kib_s  pass
#
# TL_BENCH_RUNTIME (s, default 8), TL_BENCH_SIZE_MB (default 256),
# TL_BENCH_TARGETS and TL_BENCH_WORKLOADS (default: all) pick what to run.
# TL_BENCH_FS=ext4 puts the image on ext4 over a RAM block device (brd)
# instead of the guest's tmpfs (which in Linux 6.1 refuses RWF_NOWAIT).
# TL_BENCH_PASSES (default 1) repeats the whole matrix, every target in
# turn, so slow drift in the guest spreads over all targets alike; the
# table then shows the median of the passes.
# TL_BENCH_PERF=1 profiles every run with perf (a separate use: the
# profiler's own cost changes the figures): $TL_OUT/perf/TARGET-WORKLOAD.txt
# holds the daemon's system calls, context switches and CPU time per I/O,
# and where the guest's CPUs spent their time (by command, by symbol) -
# which under TCG is useless: the samples land only in the idle loop.

. "${TL_VM_DIR:-$(dirname "$0")/../../tests/vm}/guest-lib.sh"

[ "${TL_IN_VM:-0}" = 1 ] || { echo "runs inside the VM: use bench/vm-bench.sh" >&2; exit 2; }
tl_need_cmd fio modprobe

RUNTIME=${TL_BENCH_RUNTIME:-8}
PASSES=${TL_BENCH_PASSES:-1}
PERF=${TL_BENCH_PERF:-0}
[ "$PERF" = 1 ] && tl_need_cmd perf
SIZE=$(( ${TL_BENCH_SIZE_MB:-256} << 20 ))
TARGETS=${TL_BENCH_TARGETS:-"fileio rd_mcp rd_nullio file_fast file_fast@1000 file_sync lua_ram lua_ram@1000 lua_file runner_file"}
OUT=$TL_OUT/results.tsv
IMG=/tmp/bench.img
MAX_SECTORS=2048	# 1 MiB commands: large I/O is not split

# name  fio arguments (on top of the common ones)
WORKLOADS=(
	"randread-4k-qd1|--rw=randread --bs=4k --iodepth=1 --numjobs=1"
	"randread-4k-qd32|--rw=randread --bs=4k --iodepth=32 --numjobs=1"
	"randwrite-4k-qd32|--rw=randwrite --bs=4k --iodepth=32 --numjobs=1"
	"randread-4k-4x16|--rw=randread --bs=4k --iodepth=16 --numjobs=4"
	"randrw70-4k-2x16|--rw=randrw --rwmixread=70 --bs=4k --iodepth=16 --numjobs=2"
	"read-128k-qd8|--rw=read --bs=128k --iodepth=8 --numjobs=1"
	"read-1m-qd4|--rw=read --bs=1m --iodepth=4 --numjobs=1"
	"write-1m-qd4|--rw=write --bs=1m --iodepth=4 --numjobs=1"
)

wanted() { # workload name: in TL_BENCH_WORKLOADS (or that is unset)
	[ -z "${TL_BENCH_WORKLOADS:-}" ] && return 0
	case " $TL_BENCH_WORKLOADS " in *" $1 "*) return 0 ;; esac
	return 1
}

# perf_start NAME / perf_stop IOS: record every CPU of the guest while one
# fio run goes on, then write what it saw, per I/O where that helps.
perf_start() {
	PERF_BASE=$TL_OUT/perf/$CUR-$1
	mkdir -p "$TL_OUT/perf"
	perf record -q -a -g -F 499 -o "$PERF_BASE.data" -- \
		sleep $((RUNTIME + 2)) 2>/dev/null &
	PERF_REC=$!
	PERF_STAT=
	local pid=${DPID:-${RPID:-}}
	if [ -n "$pid" ]; then
		perf stat -x, -e raw_syscalls:sys_enter,context-switches,task-clock \
			-p "$pid" -o "$PERF_BASE.stat" -- sleep $((RUNTIME + 2)) &
		PERF_STAT=$!
	fi
}

perf_stop() { # I/Os fio completed while perf was recording
	local ios=$1 f=$PERF_BASE.txt
	wait "$PERF_REC"
	[ -n "$PERF_STAT" ] && wait "$PERF_STAT"
	{
		echo "# $CUR $(basename "$PERF_BASE" | sed "s/^$CUR-//"): $ios I/Os"
		if [ -s "$PERF_BASE.stat" ]; then
			echo "## the daemon (every thread), per I/O"
			awk -F, -v n="$ios" '/^[0-9.]/ && n > 0 {
				printf "%-28s %10.2f\n", $3, $1 / n }' "$PERF_BASE.stat"
		fi
		echo "## guest CPU time by command"
		perf report -i "$PERF_BASE.data" --stdio --no-children \
			--sort comm 2>/dev/null | grep -E '^ +[0-9]' | head -12
		echo "## by symbol"
		perf report -i "$PERF_BASE.data" --stdio --no-children -g none \
			--sort comm,sym 2>/dev/null | grep -E '^ +[0-9]' | head -40
	} >"$f"
	rm -f "$PERF_BASE.data"
}

run_matrix() { # target /dev/sdX pass
	local target=$1 dev=$2 pass=$3 w name args line
	for w in "${WORKLOADS[@]}"; do
		name=${w%%|*}
		args=${w#*|}
		wanted "$name" || continue
		[ "$PERF" = 1 ] && perf_start "$name"
		# shellcheck disable=SC2086  # args is a word list
		line=$(fio --name="$name" --filename="$dev" --direct=1 \
			--ioengine=libaio --time_based --runtime="$RUNTIME" \
			--ramp_time=2 --group_reporting --norandommap \
			--randrepeat=0 --minimal $args 2>>"$TL_OUT/fio.err")
		# terse v3: 7 read KiB/s, 8 read IOPS, 48 write KiB/s, 49 write IOPS
		echo "$line" | awk -F';' -v t="$target" -v n="$name" -v p="$pass" \
			'{ printf "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t, n, $8, $7, $49, $48, p }' >>"$OUT"
		tl_log "$target $name: $(tail -n1 "$OUT" | cut -f3-)"
		[ "$PERF" = 1 ] && perf_stop "$(tail -n1 "$OUT" |
			awk -v r="$RUNTIME" '{ printf "%d", ($3 + $5) * r }')"
	done
	return 0
}

# lun BACKSTORE_PATH: export through tcm_loop (WWN in LUN_WWN), set DEV.
lun() {
	LUN_WWN=$(tl_new_wwn)
	tl_loop_create "$1" "$LUN_WWN" >/dev/null || return 1
	DEV=$(tl_loop_dev "$LUN_WWN")
}

unlun() { tl_loop_remove "$LUN_WWN"; }

daemon_start() { # [POLL_US [IO_URING]]
	printf 'daemon:\n  poll_us: %s\n  io_uring: %s\n  control_socket: /run/tcmu-lua.sock\n' \
		"${1:-0}" "${2:-true}" >/tmp/bench.yaml
	DAEMON_LOG=$TL_OUT/daemon-$CUR.log
	"$TL_BUILD_DIR/tcmu-lua" daemon -c /tmp/bench.yaml >"$DAEMON_LOG" 2>&1 &
	DPID=$!
	tl_wait 60 grep -q ' ready' "$DAEMON_LOG"
}

daemon_stop() {
	[ -n "${DPID:-}" ] || return 0
	kill -TERM "$DPID" 2>/dev/null
	wait "$DPID" 2>/dev/null
	DPID=
}

# user_target NAME DEV_CONFIG: a TCMU backstore served by whoever listens.
user_target() {
	local bs
	mkdir -p "$TL_CFS/core/user_1/$1" || return 1
	tl_write "$TL_CFS/core/user_1/$1/attrib/emulate_write_cache" 1 2>/dev/null
	bs=$(tl_user_create "$1" "$2" "$SIZE" "hw_max_sectors=$MAX_SECTORS" \
		"max_data_area_mb=256") || return 1
	echo "$bs"
}

# A tcmu-lua target may end in @N: the daemon polls its rings for N µs
# (daemon.poll_us) before sleeping, e.g. file_fast@1000.
one() { # target pass
	local t=$1 pass=$2 bs= poll=0 kind
	CUR=$t
	kind=${t%@*}
	[ "$kind" != "$t" ] && poll=${t#*@}
	case $kind in
	fileio)
		bs=$(tl_fileio_create bench "$IMG" "$SIZE" fd_buffered_io=1) ;;
	rd_mcp)
		bs=$(tl_rd_create bench $((SIZE >> 20))) ;;
	rd_nullio)
		mkdir -p "$TL_CFS/core/rd_mcp_0/bench" &&
		tl_write "$TL_CFS/core/rd_mcp_0/bench/control" "rd_pages=$((SIZE >> 12)),rd_nullio=1" &&
		tl_write "$TL_CFS/core/rd_mcp_0/bench/enable" 1 &&
		bs=$TL_CFS/core/rd_mcp_0/bench ;;
	file_fast)
		daemon_start "$poll" && bs=$(user_target bench "file/$IMG") ;;
	file_sync)	# the fast path without io_uring: one command at a time
		daemon_start "$poll" false &&
			bs=$(user_target bench "file/$IMG") ;;
	lua_ram)
		daemon_start "$poll" && bs=$(user_target bench "ram/") ;;
	lua_file)
		daemon_start "$poll" && bs=$(user_target bench "file/path=$IMG;fast=false") ;;
	runner_file)
		command -v tcmu-runner >/dev/null || { tl_log "no tcmu-runner: skipped"; return 0; }
		# Debian's package ships no file handler (only file_optical,
		# file_zbc, qcow, rbd).
		ls /usr/lib/*/tcmu-runner/handler_file.so /usr/lib*/tcmu-runner/handler_file.so \
			>/dev/null 2>&1 || {
			tl_log "tcmu-runner has no file handler (handler_file.so): skipped"
			return 0
		}
		tcmu-runner >"$TL_OUT/tcmu-runner.log" 2>&1 &
		RPID=$!
		sleep 2
		bs=$(user_target bench "file/$IMG") ;;
	*)
		fail "$t: no such target"
		return 1 ;;
	esac
	if [ -z "${bs:-}" ] || ! lun "$bs"; then
		fail "$t: could not set up"
		daemon_stop
		return 1
	fi
	tl_section "$t on $DEV"
	run_matrix "$t" "$DEV" "$pass"
	unlun
	tl_backstore_remove "$bs"
	daemon_stop
	if [ -n "${RPID:-}" ]; then kill "$RPID"; wait "$RPID" 2>/dev/null; RPID=; fi
	pass "$t measured"
}

tl_load_target_modules || tl_die "target modules"
: >"$OUT"
if [ "${TL_BENCH_FS:-tmpfs}" = ext4 ]; then
	tl_need_cmd mkfs.ext4
	modprobe brd rd_nr=1 rd_size=$(((SIZE >> 10) + 65536)) || tl_die "brd"
	mkfs.ext4 -q -F /dev/ram0 || tl_die "mkfs.ext4 /dev/ram0"
	mkdir -p /tmp/bench-ext4 && mount /dev/ram0 /tmp/bench-ext4 || tl_die "mount"
	tl_on_exit rmmod brd		# cleanups run last-in, first-out
	tl_on_exit umount /tmp/bench-ext4
	IMG=/tmp/bench-ext4/bench.img
fi
tl_log "image $IMG on $(stat -f -c %T "$(dirname "$IMG")")"
dd if=/dev/zero of="$IMG" bs=1M count=$((SIZE >> 20)) status=none
for pass in $(seq "$PASSES"); do
	for t in $TARGETS; do
		one "$t" "$pass"
	done
done
tl_finish
