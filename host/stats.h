/* SPDX-License-Identifier: MIT */
/*
 * stats.h - per-device counters and latency histograms.
 *
 * Each device's counters are written only by its worker; readers on other
 * threads (the control socket) see values that may be a few commands
 * behind, which is what monitoring needs, and never torn (aligned 64-bit).
 */
#ifndef TL_STATS_H
#define TL_STATS_H

#include <stdint.h>

#include "tl_abi.h"

/* The histogram bucket for a latency in ns. */
static inline int tl_lat_bucket(uint64_t ns)
{
	int e, b;

	if (ns < 4)
		return (int)ns;
	e = 63 - __builtin_clzll(ns);		/* ns in [2^e, 2^(e+1)) */
	b = ((e << 2) | (int)((ns >> (e - 2)) & 3)) - 4;
	return b < TL_LAT_BUCKETS ? b : TL_LAT_BUCKETS - 1;
}

/* Count one completed command. */
void tl_stats_complete(struct tl_dev_stats *st, const struct tl_cmd *cmd,
		       uint64_t now_ns);

#endif /* TL_STATS_H */
