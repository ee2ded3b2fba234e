// SPDX-License-Identifier: MIT
/*
 * fastpath.c - the C data path for file-backed devices.
 *
 * A READ or WRITE whose range is valid goes straight between the image
 * file and the ring's data area with preadv/pwritev: no copy, no Lua.  The
 * fast path only ever takes the easy case.  Anything unusual - protection
 * information, a range or length the library must reject, an I/O error
 * whose sense Lua formats, a unit attention waiting to be reported - is
 * left for Lua, which serves it with the same file through the handler.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <sys/uio.h>

#include "cdb.h"
#include "device.h"
#include "fastpath.h"
#include "ring.h"

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

static bool fast_io(struct tl_dev *d, struct tl_cmd *cmd, bool write)
{
	const struct tl_dev_info *info = &d->info;
	off_t off = (off_t)(cmd->lba * info->block_size);
	size_t want = cmd->data_len, done = 0;
	struct iovec iov[TL_IOV_MAX];
	int n = (int)cmd->iov_cnt, flags = 0, i;
	ssize_t r;

	if (write && ((cmd->flags & TL_CMDF_FUA) || !info->write_cache))
		flags = RWF_DSYNC;	/* FUA, or no write cache: durable */
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

bool tl_fast_try(struct tl_dev *d, struct tl_cmd *cmd)
{
	const struct tl_dev_info *info = &d->info;
	bool write;

	if (d->fast.fd < 0 || d->fast.hold)
		return false;
	if (cdb_is_read(cmd->opcode))
		write = false;
	else if (cdb_is_write(cmd->opcode))
		write = true;
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
	if (!fast_io(d, cmd, write))
		return false;
	cmd->status = TL_STATUS_GOOD;
	cmd->read_len = (uint32_t)cmd->data_len;
	d->stats.fast++;
	d->in_fast = true;
	tl_dev_complete(d, cmd);
	d->in_fast = false;
	return true;
}
