/* SPDX-License-Identifier: MIT */
/*
 * cdb.h - the little CDB knowledge the C core needs: how long a CDB is, and
 * where READ/WRITE-style commands keep their LBA and transfer length, so the
 * ring can pre-decode them and the fast path can triage without Lua.
 */
#ifndef TL_CDB_H
#define TL_CDB_H

#include <stdbool.h>
#include <stdint.h>

#include "tl_abi.h"

/* SCSI operation codes the core looks at. */
enum {
	CDB_READ_6 = 0x08,
	CDB_WRITE_6 = 0x0a,
	CDB_READ_10 = 0x28,
	CDB_WRITE_10 = 0x2a,
	CDB_WRITE_VERIFY_10 = 0x2e,
	CDB_VERIFY_10 = 0x2f,
	CDB_PREFETCH_10 = 0x34,
	CDB_SYNC_CACHE_10 = 0x35,
	CDB_WRITE_SAME_10 = 0x41,
	CDB_VARLEN = 0x7f,
	CDB_READ_16 = 0x88,
	CDB_COMPARE_AND_WRITE = 0x89,
	CDB_WRITE_16 = 0x8a,
	CDB_WRITE_VERIFY_16 = 0x8e,
	CDB_VERIFY_16 = 0x8f,
	CDB_PREFETCH_16 = 0x90,
	CDB_SYNC_CACHE_16 = 0x91,
	CDB_WRITE_SAME_16 = 0x93,
	CDB_READ_12 = 0xa8,
	CDB_WRITE_12 = 0xaa,
	CDB_WRITE_VERIFY_12 = 0xae,
	CDB_VERIFY_12 = 0xaf,
};

/*
 * Length of the CDB that starts with these bytes, as the kernel computes it
 * (group code, or 8 + additional length for variable-length CDBs).  avail is
 * how many bytes may be read; returns 0 if the length cannot be known.
 */
unsigned int cdb_length(const uint8_t *cdb, unsigned int avail);

/*
 * Fill cmd->lba, nblocks and the FUA/DPO/HAS_LBA flags from cmd->cdb for
 * the block commands that carry an LBA.  Leaves the fields alone otherwise.
 */
void cdb_decode_lba(struct tl_cmd *cmd);

/* True for READ(6/10/12/16); write for WRITE(6/10/12/16). */
static inline bool cdb_is_read(uint8_t op)
{
	return op == CDB_READ_6 || op == CDB_READ_10 || op == CDB_READ_12 ||
	       op == CDB_READ_16;
}

static inline bool cdb_is_write(uint8_t op)
{
	return op == CDB_WRITE_6 || op == CDB_WRITE_10 ||
	       op == CDB_WRITE_12 || op == CDB_WRITE_16;
}

#endif /* TL_CDB_H */
