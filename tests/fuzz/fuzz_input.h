/* SPDX-License-Identifier: MIT */
/*
 * fuzz_input.h - read a fuzzer's bytes as a little program.
 *
 * Every read succeeds: once the input is used up, reads return zeros, so a
 * harness never has to check and every byte string is a valid program.
 * Multi-byte values are little-endian.  The formats built on this are
 * documented in each harness and produced by tests/fuzz/make_seeds.py.
 */
#ifndef TL_FUZZ_INPUT_H
#define TL_FUZZ_INPUT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct fin {
	const uint8_t *p;
	size_t n;
};

static inline uint8_t fin_u8(struct fin *in)
{
	if (!in->n)
		return 0;
	in->n--;
	return *in->p++;
}

static inline uint16_t fin_u16(struct fin *in)
{
	uint16_t lo = fin_u8(in);

	return (uint16_t)(lo | (uint16_t)fin_u8(in) << 8);
}

static inline uint32_t fin_u32(struct fin *in)
{
	uint32_t lo = fin_u16(in);

	return lo | (uint32_t)fin_u16(in) << 16;
}

static inline uint64_t fin_u64(struct fin *in)
{
	uint64_t lo = fin_u32(in);

	return lo | (uint64_t)fin_u32(in) << 32;
}

/* Copy up to want bytes into dst, zero-filling what the input lacks. */
static inline size_t fin_bytes(struct fin *in, void *dst, size_t want)
{
	size_t got = want < in->n ? want : in->n;

	memcpy(dst, in->p, got);
	memset((uint8_t *)dst + got, 0, want - got);
	in->p += got;
	in->n -= got;
	return got;
}

#endif /* TL_FUZZ_INPUT_H */
