// SPDX-License-Identifier: MIT
/*
 * stats.c - counting completions, and reading the histograms back.
 */
#include "cdb.h"
#include "stats.h"

void tl_stats_complete(struct tl_dev_stats *st, const struct tl_cmd *cmd,
		       uint64_t now_ns)
{
	struct tl_io_stats *k;
	bool read = cdb_is_read(cmd->opcode);

	k = &st->kind[read ? TL_KIND_READ :
		      cdb_is_write(cmd->opcode) ? TL_KIND_WRITE : TL_KIND_OTHER];
	k->cmds++;
	/* read_len starts at data_len and drops only for short data-in. */
	k->bytes += cmd->read_len;
	if (cmd->status != TL_STATUS_GOOD)
		k->errors++;
	k->lat[tl_lat_bucket(now_ns - cmd->t_start_ns)]++;
}

uint64_t tl_ffi_lat_bucket_ns(int b)
{
	int e, m;

	if (b < 4)
		return (uint64_t)b + 1;
	/* Inverse of tl_lat_bucket(): the first value of the next bucket. */
	e = (b + 4) >> 2;
	m = (b + 4) & 3;
	return ((uint64_t)(4 + m + 1)) << (e - 2);
}

uint64_t tl_ffi_lat_quantile(const uint64_t *lat, double p)
{
	uint64_t total = 0, seen = 0, want;
	int b;

	for (b = 0; b < TL_LAT_BUCKETS; b++)
		total += lat[b];
	if (!total)
		return 0;
	want = (uint64_t)(p * (double)total);
	if (want >= total)
		want = total - 1;
	for (b = 0; b < TL_LAT_BUCKETS; b++) {
		seen += lat[b];
		if (seen > want)
			return tl_ffi_lat_bucket_ns(b);
	}
	return tl_ffi_lat_bucket_ns(TL_LAT_BUCKETS - 1);
}
