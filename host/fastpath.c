// SPDX-License-Identifier: MIT
/*
 * fastpath.c - the C data path for file-backed devices.
 *
 * A READ or WRITE whose range is valid goes straight between the image
 * file and the ring's data area: no copy, no Lua.  With io_uring (uring.c)
 * a command is first tried here with RWF_NOWAIT, which succeeds when the
 * page cache can serve it at once (no hand-off to another thread costs
 * less); what would block goes to io_uring, so many commands are in flight
 * at once, and SYNCHRONIZE CACHE is an asynchronous fdatasync.  Without
 * io_uring they all run here, one at a time, with preadv2/pwritev2/fdatasync.  The fast path only ever takes the easy case.  Anything unusual - protection
 * information, a range or length the library must reject, an I/O error
 * whose sense Lua formats, a unit attention waiting to be reported - is
 * left for Lua, which serves it with the same file through the handler.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <sys/uio.h>
#include <unistd.h>

#include "cdb.h"
#include "device.h"
#include "fastpath.h"
#include "ring.h"
#include "uring.h"
#include "worker.h"

static bool plain_rw(const struct tl_cmd *cmd)
{
	/* RDPROTECT/WRPROTECT (byte 1, bits 7-5) need the library. */
	if (cmd->opcode != CDB_READ_6 && cmd->opcode != CDB_WRITE_6 &&
	    (cmd->cdb[1] & 0xe0))
		return false;
	return true;
}

/* The command's iovecs as a struct iovec array (same layout). */
static const struct iovec *cmd_iov(const struct tl_cmd *cmd)
{
	return (const struct iovec *)cmd->iov;
}

/* Durable when FUA asks for it, or when there is no write cache to lose. */
static int write_flags(const struct tl_dev *d, const struct tl_cmd *cmd)
{
	return (cmd->flags & TL_CMDF_FUA) || !d->info.write_cache ? RWF_DSYNC : 0;
}

static bool fast_io(struct tl_dev *d, struct tl_cmd *cmd, bool write)
{
	const struct tl_dev_info *info = &d->info;
	off_t off = (off_t)(cmd->lba * info->block_size);
	size_t want = cmd->data_len, done = 0;
	struct iovec iov[TL_IOV_MAX];
	int n = (int)cmd->iov_cnt, flags = 0, i;
	ssize_t r;

	if (write)
		flags = write_flags(d, cmd);
	for (i = 0; i < n; i++)
		iov[i] = cmd_iov(cmd)[i];
	while (done < want) {
		int cnt = n > IOV_MAX ? IOV_MAX : n;

		r = write ? pwritev2(d->fast.fd, iov, cnt, off + (off_t)done,
				     flags) :
			    preadv2(d->fast.fd, iov, cnt, off + (off_t)done, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return false;	/* error or EOF: Lua decides */
		done += (size_t)r;
		/* Step over what was transferred. */
		while (n > 0 && (size_t)r >= iov[0].iov_len) {
			r -= (ssize_t)iov[0].iov_len;
			for (i = 1; i < n; i++)
				iov[i - 1] = iov[i];
			n--;
		}
		if (n > 0 && r > 0) {
			iov[0].iov_base = (char *)iov[0].iov_base + r;
			iov[0].iov_len -= (size_t)r;
		}
	}
	return true;
}

static void complete_good(struct tl_dev *d, struct tl_cmd *cmd)
{
	cmd->status = TL_STATUS_GOOD;
	d->stats.fast++;
	d->in_fast = true;
	tl_dev_complete(d, cmd);
	d->in_fast = false;
}

/*
 * One non-blocking attempt: true when the whole transfer is done.  A
 * partial one is simply repeated in full by io_uring (idempotent).
 */
static bool try_nowait(struct tl_dev *d, struct tl_cmd *cmd, bool write)
{
	const struct iovec *iov = (const struct iovec *)cmd->iov;
	off_t off = (off_t)(cmd->lba * d->info.block_size);
	bool *refused = write ? &d->fast.no_nowait_write :
				&d->fast.no_nowait_read;
	ssize_t r;

	if (*refused || cmd->iov_cnt > IOV_MAX)
		return false;
	r = write ? pwritev2(d->fast.fd, iov, (int)cmd->iov_cnt, off, RWF_NOWAIT) :
		    preadv2(d->fast.fd, iov, (int)cmd->iov_cnt, off, RWF_NOWAIT);
	if (r < 0 && errno == EOPNOTSUPP)
		*refused = true;	/* this file never will: stop asking */
	return r >= 0 && (uint64_t)r == cmd->data_len;
}

static struct tl_uring *dev_uring(const struct tl_dev *d)
{
	return d->w ? d->w->uring : NULL;
}

/*
 * SYNCHRONIZE CACHE(10/16) over a valid range, with no bits set in byte 1
 * but IMMED and the obsolete SYNC_NV (both need nothing from us).
 */
static bool try_flush(struct tl_dev *d, struct tl_cmd *cmd)
{
	const struct tl_dev_info *info = &d->info;
	struct tl_uring *u = dev_uring(d);

	if (!(d->fast.flags & TL_FAST_FLUSH) || (cmd->cdb[1] & ~0x06) ||
	    cmd->data_len || cmd->lba > info->num_blocks ||
	    cmd->nblocks > info->num_blocks - cmd->lba)
		return false;
	if (u && tl_uring_queue(u, d, cmd, TL_URING_FLUSH, 0))
		return true;
	if (fdatasync(d->fast.fd)) {
		/* MEDIUM ERROR, WRITE ERROR: reported once, so answer it here. */
		ring_cmd_set_sense(cmd, 0x03, 0x0c, 0x00);
		cmd->read_len = 0;
		d->stats.fast++;
		tl_dev_complete(d, cmd);
		return true;
	}
	cmd->read_len = 0;
	complete_good(d, cmd);
	return true;
}

bool tl_fast_try(struct tl_dev *d, struct tl_cmd *cmd)
{
	const struct tl_dev_info *info = &d->info;
	struct tl_uring *u;
	bool write;

	if (d->fast.fd < 0 || d->fast.hold)
		return false;
	if (cdb_is_read(cmd->opcode))
		write = false;
	else if (cdb_is_write(cmd->opcode))
		write = true;
	else if (cmd->opcode == CDB_SYNC_CACHE_10 ||
		 cmd->opcode == CDB_SYNC_CACHE_16)
		return try_flush(d, cmd);
	else
		return false;
	if (!(d->fast.flags & (write ? TL_FAST_WRITE : TL_FAST_READ)))
		return false;
	if (write && info->read_only)
		return false;
	if (!plain_rw(cmd) || !(cmd->flags & TL_CMDF_HAS_LBA))
		return false;
	/* Range and length exactly as SBC wants, else the library answers. */
	if (cmd->nblocks == 0 || cmd->lba >= info->num_blocks ||
	    cmd->nblocks > info->num_blocks - cmd->lba ||
	    (uint64_t)cmd->nblocks * info->block_size != cmd->data_len)
		return false;
	u = dev_uring(d);
	if (u && cmd->iov_cnt <= IOV_MAX) {
		int flags = write ? write_flags(d, cmd) : 0;

		/* A durable write always waits: straight to io_uring. */
		if (!flags && try_nowait(d, cmd, write)) {
			cmd->read_len = (uint32_t)cmd->data_len;
			complete_good(d, cmd);
			return true;
		}
		if (tl_uring_queue(u, d, cmd, write ? TL_URING_WRITE :
				   TL_URING_READ, flags))
			return true;
	}
	if (!fast_io(d, cmd, write))
		return false;
	cmd->read_len = (uint32_t)cmd->data_len;
	complete_good(d, cmd);
	return true;
}
