// SPDX-License-Identifier: MIT
/*
 * ffi.c - the C functions Lua calls through the FFI (tl_ffi_*).
 *
 * Conventions: status codes are 0 or a negative errno; tl_ffi_strerror()
 * turns one into a static string.  Nothing here allocates, and every data
 * function stays inside the command's iovecs whatever offset and length
 * Lua passes.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "device.h"
#include "log.h"
#include "tl_abi.h"
#include "uring.h"
#include "worker.h"

int tl_ffi_abi_version(void)
{
	return TL_ABI_VERSION;
}

extern const struct tl_layout_entry tl_abi_layout[];

const struct tl_layout_entry *tl_ffi_abi_layout(void)
{
	return tl_abi_layout;
}

const char *tl_ffi_strerror(int err)
{
	return strerror(err < 0 ? -err : err);
}

/*
 * A device shut down under the handler (memory limit, or taken from a
 * stuck worker whose thread may still run Lua) is no longer the
 * handler's: its ring belongs to whoever serves it now.
 */
struct tl_cmd *tl_ffi_next(struct tl_dev *dev)
{
	if (!__atomic_load_n(&dev->opened, __ATOMIC_ACQUIRE))
		return NULL;
	return tl_dev_queue_pop(dev);
}

int tl_ffi_complete(struct tl_dev *dev, struct tl_cmd *cmd)
{
	if (!__atomic_load_n(&dev->opened, __ATOMIC_ACQUIRE))
		return -EPERM;
	/* Another device's command: refuse before it is counted here. */
	if (cmd != &dev->ring.reject &&
	    (cmd < dev->ring.slots || cmd >= dev->ring.slots + RING_MAX_CMDS))
		return -EINVAL;
	return tl_dev_complete(dev, cmd);
}

void tl_ffi_lua_for(struct tl_worker *w, struct tl_dev *dev)
{
	w->lua_dev = dev;
}

struct tl_dev_info *tl_ffi_dev_info(struct tl_dev *dev)
{
	return &dev->info;
}

const struct tl_dev_stats *tl_ffi_dev_stats(struct tl_dev *dev)
{
	return &dev->stats;
}

/*
 * Walk the iovecs from byte offset off for up to len bytes, calling fn on
 * each piece.  The shape of every data mover below.
 */
#define FOR_EACH_PIECE(cmd, off, len, piece, plen, body)		\
	do {								\
		size_t _skip = (off), _left = (len);			\
		for (uint32_t _i = 0; _i < (cmd)->iov_cnt && _left; _i++) { \
			size_t _l = (cmd)->iov[_i].len;			\
			if (_skip >= _l) {				\
				_skip -= _l;				\
				continue;				\
			}						\
			uint8_t *piece = (cmd)->iov[_i].base + _skip;	\
			size_t plen = _l - _skip;			\
			if (plen > _left)				\
				plen = _left;				\
			_skip = 0;					\
			body;						\
			_left -= plen;					\
		}							\
	} while (0)

size_t tl_ffi_copy_to(struct tl_cmd *cmd, size_t off, const void *src,
		      size_t len)
{
	const uint8_t *s = src;
	size_t done = 0;

	FOR_EACH_PIECE(cmd, off, len, p, n, {
		memcpy(p, s + done, n);
		done += n;
	});
	return done;
}

size_t tl_ffi_copy_from(struct tl_cmd *cmd, size_t off, void *dst, size_t len)
{
	uint8_t *d = dst;
	size_t done = 0;

	FOR_EACH_PIECE(cmd, off, len, p, n, {
		memcpy(d + done, p, n);
		done += n;
	});
	return done;
}

size_t tl_ffi_fill(struct tl_cmd *cmd, size_t off, int byte, size_t len)
{
	size_t done = 0;

	FOR_EACH_PIECE(cmd, off, len, p, n, {
		memset(p, byte, n);
		done += n;
	});
	return done;
}

int tl_ffi_memcmp(struct tl_cmd *cmd, size_t off, const void *buf, size_t len,
		  size_t *mismatch)
{
	const uint8_t *b = buf;
	size_t done = 0;

	FOR_EACH_PIECE(cmd, off, len, p, n, {
		if (memcmp(p, b + done, n)) {
			size_t k = 0;

			while (p[k] == b[done + k])
				k++;
			if (mismatch)
				*mismatch = done + k;
			return 1;
		}
		done += n;
	});
	if (done < len) {
		/* The command holds less data than asked: that differs. */
		if (mismatch)
			*mismatch = done;
		return 1;
	}
	return 0;
}

/* Build an iovec array for [off, off+len) of the command's data. */
static int slice(struct tl_cmd *cmd, size_t off, size_t len,
		 struct iovec *out, int max)
{
	int n = 0;

	FOR_EACH_PIECE(cmd, off, len, p, l, {
		if (n == max)
			return -E2BIG;
		out[n].iov_base = p;
		out[n].iov_len = l;
		n++;
	});
	return n;
}

int64_t tl_ffi_pread(struct tl_cmd *cmd, size_t off, size_t len, int fd,
		     uint64_t file_off)
{
	struct iovec iov[TL_IOV_MAX];
	int n = slice(cmd, off, len, iov, TL_IOV_MAX);
	ssize_t got;
	int64_t total = 0;

	if (n < 0)
		return n;
	while (n > 0) {
		got = preadv(fd, iov, n > IOV_MAX ? IOV_MAX : n,
			     (off_t)(file_off + (uint64_t)total));
		if (got < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (got == 0)
			break;	/* end of file: the caller decides */
		total += got;
		while (n > 0 && (size_t)got >= iov[0].iov_len) {
			got -= (ssize_t)iov[0].iov_len;
			memmove(iov, iov + 1, (size_t)(n - 1) * sizeof(*iov));
			n--;
		}
		if (n > 0) {
			iov[0].iov_base = (uint8_t *)iov[0].iov_base + got;
			iov[0].iov_len -= (size_t)got;
		}
	}
	return total;
}

int64_t tl_ffi_pwrite(struct tl_cmd *cmd, size_t off, size_t len, int fd,
		      uint64_t file_off)
{
	struct iovec iov[TL_IOV_MAX];
	int n = slice(cmd, off, len, iov, TL_IOV_MAX);
	ssize_t put;
	int64_t total = 0;

	if (n < 0)
		return n;
	while (n > 0) {
		put = pwritev(fd, iov, n > IOV_MAX ? IOV_MAX : n,
			      (off_t)(file_off + (uint64_t)total));
		if (put < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (put == 0)
			return -EIO;
		total += put;
		while (n > 0 && (size_t)put >= iov[0].iov_len) {
			put -= (ssize_t)iov[0].iov_len;
			memmove(iov, iov + 1, (size_t)(n - 1) * sizeof(*iov));
			n--;
		}
		if (n > 0) {
			iov[0].iov_base = (uint8_t *)iov[0].iov_base + put;
			iov[0].iov_len -= (size_t)put;
		}
	}
	return total;
}

int tl_ffi_fast_enable(struct tl_dev *dev, int fd, uint32_t flags)
{
	if (fd < 0)
		return -EBADF;
	dev->fast.fd = fd;
	dev->fast.flags = flags;
	dev->fast.no_nowait_read = false;
	dev->fast.no_nowait_write = false;
	return 0;
}

void tl_ffi_fast_disable(struct tl_dev *dev)
{
	/* The handler is about to close the file: let its I/O finish first. */
	if (dev->w && dev->w->uring)
		tl_uring_drain(dev->w->uring, dev);
	dev->fast.fd = -1;
	dev->fast.flags = 0;
}

void tl_ffi_fast_hold(struct tl_dev *dev, int hold)
{
	dev->fast.hold = hold;
}

uint64_t tl_ffi_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void tl_ffi_log(int level, const char *msg)
{
	if (level < TL_LOG_ERR)
		level = TL_LOG_ERR;
	if (level > TL_LOG_DEBUG)
		level = TL_LOG_DEBUG;
	tl_log((enum tl_log_level)level, "%s", msg);
}

int tl_ffi_log_level(void)
{
	return tl_log_threshold;
}

int tl_ffi_timer_start(struct tl_worker *w, double after, double repeat)
{
	return tl_worker_timer_start(w, after, repeat);
}

void tl_ffi_timer_stop(struct tl_worker *w, int id)
{
	tl_worker_watch_stop(w, id);
}

int tl_ffi_io_start(struct tl_worker *w, int fd, int events)
{
	return tl_worker_io_start(w, fd, events);
}

void tl_ffi_io_stop(struct tl_worker *w, int id)
{
	tl_worker_watch_stop(w, id);
}
