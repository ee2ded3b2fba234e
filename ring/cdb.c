// SPDX-License-Identifier: MIT
/*
 * cdb.c - CDB length and LBA pre-decoding (SBC-3 field positions).
 */
#include "cdb.h"

static inline uint32_t be16(const uint8_t *p)
{
	return (uint32_t)p[0] << 8 | p[1];
}

static inline uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

static inline uint64_t be64(const uint8_t *p)
{
	return (uint64_t)be32(p) << 32 | be32(p + 4);
}

unsigned int cdb_length(const uint8_t *cdb, unsigned int avail)
{
	/* SPC-4 4.2.5.1: the group code (top 3 bits) gives the length. */
	static const uint8_t by_group[8] = { 6, 10, 10, 12, 16, 12, 10, 10 };

	if (avail < 1)
		return 0;
	if (cdb[0] == CDB_VARLEN) {
		if (avail < 8)
			return 0;
		return 8u + cdb[7];
	}
	return by_group[cdb[0] >> 5];
}

void cdb_decode_lba(struct tl_cmd *cmd)
{
	const uint8_t *c = cmd->cdb;
	uint32_t flags = TL_CMDF_HAS_LBA;

	switch (c[0]) {
	case CDB_READ_6:
	case CDB_WRITE_6:
		/* SBC-3 5.15: 21-bit LBA; a length of 0 means 256 blocks. */
		cmd->lba = ((uint64_t)(c[1] & 0x1f) << 16) | be16(c + 2);
		cmd->nblocks = c[4] ? c[4] : 256;
		break;
	case CDB_READ_10:
	case CDB_WRITE_10:
	case CDB_WRITE_VERIFY_10:
	case CDB_VERIFY_10:
	case CDB_PREFETCH_10:
	case CDB_SYNC_CACHE_10:
	case CDB_WRITE_SAME_10:
		cmd->lba = be32(c + 2);
		cmd->nblocks = be16(c + 7);
		break;
	case CDB_READ_12:
	case CDB_WRITE_12:
	case CDB_WRITE_VERIFY_12:
	case CDB_VERIFY_12:
		cmd->lba = be32(c + 2);
		cmd->nblocks = be32(c + 6);
		break;
	case CDB_READ_16:
	case CDB_WRITE_16:
	case CDB_WRITE_VERIFY_16:
	case CDB_VERIFY_16:
	case CDB_PREFETCH_16:
	case CDB_SYNC_CACHE_16:
	case CDB_WRITE_SAME_16:
		cmd->lba = be64(c + 2);
		cmd->nblocks = be32(c + 10);
		break;
	case CDB_COMPARE_AND_WRITE:
		cmd->lba = be64(c + 2);
		cmd->nblocks = c[13];
		break;
	default:
		return;
	}
	if (cmd->cdb_len > 1 && c[0] != CDB_READ_6 && c[0] != CDB_WRITE_6) {
		if (cdb_is_read(c[0]) || cdb_is_write(c[0])) {
			if (c[1] & 0x08)
				flags |= TL_CMDF_FUA;
			if (c[1] & 0x10)
				flags |= TL_CMDF_DPO;
		}
	}
	cmd->flags |= flags;
}
