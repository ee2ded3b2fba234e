// SPDX-License-Identifier: MIT
/*
 * fuzz_ring.c - a hostile kernel against the daemon's side of the ring.
 *
 * The input is a program for the kernel side (ring/sim.c, plus raw pokes at
 * the shared memory) interleaved with the daemon's moves (ring_fetch,
 * ring_complete in any order, ring_publish).  The daemon maps the region
 * between PROT_NONE guard pages, so a read or write outside the mapping is
 * a crash, and every step is checked:
 *
 *  - ring ops write only where they may: cmd_tail in the mailbox, the
 *    entries between the old and the new tail (responses), and the uflags
 *    byte of entries they skipped; never the rest of the ring or the data;
 *  - an independent model of "is this command entry valid" must agree with
 *    every RING_EV_CMD / RING_EV_REJECTED, and what the ring copied out (CDB,
 *    iovecs) must match the entry;
 *  - a rejected entry is answered at once with CHECK CONDITION, HARDWARE
 *    ERROR / INTERNAL TARGET FAILURE, and the simulator sees exactly that;
 *  - r->inflight equals the number of commands the daemon holds;
 *  - while the kernel side only does what a kernel may do (no moved head,
 *    no rewritten headers or cmd_ids: "chaos" below), neither side ever
 *    breaks, statuses and sense reach the kernel intact, and at the end
 *    everything is completed and cmd_tail == cmd_head.
 *
 * Input format (fuzz_input.h; make_seeds.py writes these):
 *   header: u8 geometry  bits 0-1 ring 4/8/32/128 KiB, bits 2-5 id and
 *                        block allocation (14: scattered blocks, 15: cyclic
 *                        ids and scattered blocks, else plain), bits 6-7
 *                        block size 512 << n
 *           u8 caps      TCMU_MAILBOX_FLAG_CAP_* (low 4 bits)
 *           u8 data      data area 8/20/64/260 KiB (low 2 bits)
 *           u8 seed      for scattered blocks
 *   then operations, one u8 (mod OP_COUNT) each, with the operands listed
 *   at enum fz_op.
 *
 * TL_FUZZ_VERBOSE=1 prints every operation (for reading a reproducer).
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tcmu_uapi.h"

#include "fuzz_input.h"
#include "ring.h"
#include "sim.h"

#define CMDR_OFF 128u
#define GUARD ((size_t)1 << 20)
#define MAX_OPS 400
#define MAX_ENTS 256
#define NIDS 65536
#define OFF_HEAD 12u		/* offsetof(struct tcmu_mailbox, cmd_head) */
#define OFF_TAIL 64u

enum fz_op {
	OP_SUBMIT,	/* u8 kind, u16 len, u8 flags (bits 0-1 dir, 2 publish) */
	OP_CORRUPT,	/* u8 which entry, u8 field, u8 mode, u64 value */
	OP_PUBLISH,	/* - */
	OP_INJECT,	/* u16 len, u8 mode, u32 len_op, then len bytes (only
			   64 when len >= 1024: the rest is zeros) */
	OP_TMR,		/* u8 type, u8 count, then count x u8 (which held id) */
	OP_TMR_RAW,	/* u8 ids, u32 cmd_cnt, u8 type */
	OP_PAD,		/* u8 mode, u16 len */
	OP_HEAD,	/* u8 mode, u32 value */
	OP_FETCH,	/* u8 max events (0: until empty) */
	OP_COMPLETE,	/* u8 which, u8 status, u8 read_len mode, u8 key,
			   u8 asc, u8 ascq, u8 sense_len */
	OP_COMPLETE_ALL,	/* u8 shuffle seed */
	OP_KICK,	/* ring_publish and kick */
	OP_REAP,	/* sim_reap */
	OP_RESET,	/* reset_ring on both sides */
	OP_STRAY,	/* u8 which: complete something not in flight */
	OP_POKE,	/* u8 mode, u16 where, u32 value */
	OP_REATTACH,	/* u8 mailbox field (bit 7: raw value), u32 value */
	OP_COUNT
};

static const char *const op_names[OP_COUNT] = {
	"submit", "corrupt", "publish", "inject", "tmr", "tmr_raw", "pad",
	"head", "fetch", "complete", "complete_all", "kick", "reap", "reset",
	"stray", "poke", "reattach",
};

struct ent_rec {
	uint32_t off;
	uint32_t len_op;
};

struct fz {
	struct sim *sim;
	uint8_t *kmap;		/* the simulator's own view */
	uint8_t *map;		/* the daemon's view, between guard pages */
	uint8_t *area;
	size_t area_len;
	size_t map_size;
	uint32_t cmdr_size, data_lo, data_bytes;
	uint16_t caps;
	struct sim_opts opts;
	uint8_t mailbox[CMDR_OFF];	/* as sim_new() made it */
	struct ring *r;
	int fd;

	uint32_t khead;		/* cmd_head as the simulator last wrote it */
	uint32_t phead;		/* the simulator's head with prepared entries */
	bool chaos;		/* the kernel side did something no kernel does */
	unsigned int step;

	uint8_t *snap;		/* mailbox + ring + first data page */
	size_t snap_len;

	uint32_t nheld;
	struct tl_cmd *held[NIDS];
	uint8_t held_id[NIDS];

	uint32_t nents, ent_next;
	struct ent_rec ents[MAX_ENTS];	/* command entries we prepared */

	uint32_t nlive;
	uint16_t live[NIDS];		/* simulator ids not yet released */
	uint8_t is_live[NIDS];
	/* What the simulator must report for an id (0: unknown). */
	uint8_t want[NIDS];
	uint8_t want_status[NIDS];
	uint8_t want_sense[NIDS][3];	/* key, asc, ascq; 0xff: any */
};

static struct fz F;
static bool verbose;
static uint8_t out_buf[260 * 4096];

static void __attribute__((noreturn, format(printf, 1, 2)))
fail(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "\nfuzz_ring: INVARIANT VIOLATED at step %u: ", F.step);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	if (F.r)
		fprintf(stderr, "\n  ring: fetch %u tail %u inflight %u held %u "
			"broken %d (%s) chaos %d cmdr_size %u\n",
			F.r->fetch, F.r->tail, F.r->inflight, F.nheld,
			F.r->broken, F.r->broken_why ? F.r->broken_why : "-",
			F.chaos, F.cmdr_size);
	abort();
}

static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void note(const char *fmt, ...)
{
	va_list ap;

	if (!verbose)
		return;
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
}

/* Harness bookkeeping is not what we want coverage feedback from. */
#ifdef __clang__
#define NOCOV __attribute__((no_sanitize("coverage")))
#else
#define NOCOV
#endif

static inline uint32_t ld32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return v;
}

static inline uint64_t ld64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return v;
}

static inline uint16_t ld16(const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, p, 2);
	return v;
}

static inline void st32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

static inline uint32_t dist(uint32_t a, uint32_t b)
{
	return (b + F.cmdr_size - a) % F.cmdr_size;
}

/* x in [a, b) going forward round the ring. */
static inline bool in_arc(uint32_t x, uint32_t a, uint32_t b)
{
	return dist(a, x) < dist(a, b);
}

static inline uint8_t *kent(uint32_t off)
{
	return F.kmap + CMDR_OFF + off;
}

static inline uint32_t round8(uint32_t v)
{
	return (v + 7u) & ~7u;
}

/* ---- set-up ---- */

/*
 * A simulator costs ~10 ms to make and free (a 65536-entry table), far more
 * than an input takes to run, so plain ones are kept for the next input of
 * the same geometry.  After sim_reset_ring(), every id released and the
 * shared memory zeroed again (mailbox as it was made), a plain simulator
 * is in the state a new one starts in, apart from its private copy of the
 * headers it wrote, which can only matter after a poke wrote exactly such
 * a header where the simulator never put one.  Cyclic ids and scattered
 * blocks hide a counter and a random state: those are always made fresh.
 */
#define SIM_CACHE 64

struct sim_slot {
	struct sim *sim;
	struct sim_opts o;
	uint8_t mailbox[CMDR_OFF];
};

static struct sim_slot sim_cache[SIM_CACHE];
static unsigned int sim_cache_next;

static NOCOV bool same_opts(const struct sim_opts *a, const struct sim_opts *b)
{
	/* caps only fill in the mailbox flags: not part of the key. */
	return a->ring_bytes == b->ring_bytes &&
	       a->data_bytes == b->data_bytes &&
	       a->block_bytes == b->block_bytes &&
	       !a->cyclic_ids && !a->scatter && !b->cyclic_ids && !b->scatter;
}

static NOCOV struct sim *sim_get(const struct sim_opts *o)
{
	struct sim *s;
	int i;

	for (i = 0; i < SIM_CACHE; i++) {
		struct sim_slot *c = &sim_cache[i];

		if (c->sim && same_opts(&c->o, o)) {
			s = c->sim;
			c->sim = NULL;
			memcpy(F.mailbox, c->mailbox, CMDR_OFF);
			memcpy(F.mailbox + offsetof(struct tcmu_mailbox, flags),
			       &o->caps, sizeof(o->caps));
			memcpy(sim_map(s), F.mailbox, CMDR_OFF);
			return s;
		}
	}
	s = sim_new(o);
	if (!s)
		fail("sim_new refused a valid geometry");
	memcpy(F.mailbox, sim_map(s), CMDR_OFF);
	return s;
}

/* Give the simulator back: into the cache if it can be made like new. */
static NOCOV void sim_put(struct sim *s)
{
	struct sim_slot *c;
	uint8_t *m = sim_map(s);
	uint32_t i, junk;

	if (F.opts.cyclic_ids || F.opts.scatter) {
		sim_free(s);
		return;
	}
	sim_reset_ring(s);
	for (i = 0; i < F.nlive; i++)
		sim_release(s, F.live[i]);
	if (sim_inflight(s))
		fail("simulator busy after reset_ring");
	sim_reap(s);			/* drains the daemon's kicks */
	while (read(F.fd, &junk, sizeof(junk)) > 0)
		;			/* and our notifications */
	memcpy(m, F.mailbox, CMDR_OFF);
	memset(m + CMDR_OFF, 0, sim_map_size(s) - CMDR_OFF);
	for (i = 0, c = NULL; i < SIM_CACHE && !c; i++)
		if (!sim_cache[i].sim)
			c = &sim_cache[i];
	if (!c) {
		c = &sim_cache[sim_cache_next++ % SIM_CACHE];
		sim_free(c->sim);
	}
	c->sim = s;
	c->o = F.opts;
	memcpy(c->mailbox, F.mailbox, CMDR_OFF);
}

static const uint32_t data_pages[4] = { 2, 5, 16, 65 };
static const uint8_t ring_shift[4] = { 0, 1, 3, 5 };

static bool fz_init(struct fin *in)
{
	uint8_t geo = fin_u8(in), caps = fin_u8(in), data = fin_u8(in);
	uint8_t seed = fin_u8(in);
	struct sim_opts o = {
		.ring_bytes = 4096u << ring_shift[geo & 3],
		.block_bytes = 512u << ((geo >> 6) & 3),
		.data_bytes = 4096u * data_pages[data & 3],
		.caps = caps & 0x0f,
		.cyclic_ids = ((geo >> 2) & 15) == 15,
		.scatter = ((geo >> 2) & 15) >= 14,
		.seed = seed,
	};
	const char *err = "?";
	void *m;

	memset(&F, 0, offsetof(struct fz, nheld));
	F.nheld = 0;
	F.nents = F.ent_next = 0;
	F.nlive = 0;
	F.opts = o;
	F.sim = sim_get(&o);
	F.kmap = sim_map(F.sim);
	F.map_size = sim_map_size(F.sim);
	F.cmdr_size = o.ring_bytes - CMDR_OFF;
	F.data_lo = o.ring_bytes;
	F.data_bytes = o.data_bytes;
	F.caps = o.caps;
	F.fd = sim_daemon_fd(F.sim);

	/* guard | mapping | guard: a stray access faults. */
	F.area_len = F.map_size + 2 * GUARD;
	F.area = mmap(NULL, F.area_len, PROT_NONE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (F.area == MAP_FAILED)
		fail("cannot reserve the guarded area");
	m = mmap(F.area + GUARD, F.map_size, PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_FIXED, sim_memfd(F.sim), 0);
	if (m == MAP_FAILED)
		fail("cannot map the simulator");
	F.map = m;

	F.r = malloc(sizeof(*F.r));	/* on the heap: ASan watches reject */
	if (!F.r || ring_attach(F.r, F.map, F.map_size, &err))
		fail("ring_attach: %s", err);
	F.snap_len = o.ring_bytes + 4096;
	F.snap = malloc(F.snap_len);
	if (!F.snap)
		fail("out of memory");
	note("init: ring %u data %u block %u caps %#x cyclic %d scatter %d\n",
	     o.ring_bytes, o.data_bytes, o.block_bytes, o.caps,
	     o.cyclic_ids, o.scatter);
	return true;
}

static void held_clear(void);

static NOCOV void fz_fini(void)
{
	uint32_t i;

	held_clear();		/* before the slots go away */
	ring_detach(F.r);
	free(F.r);
	F.r = NULL;
	munmap(F.area, F.area_len);
	sim_put(F.sim);
	F.sim = NULL;
	for (i = 0; i < F.nlive; i++) {
		F.is_live[F.live[i]] = 0;
		F.want[F.live[i]] = 0;
	}
	free(F.snap);
}

/* ---- bookkeeping ---- */

static void held_add(struct tl_cmd *c)
{
	F.held[F.nheld++] = c;
	F.held_id[c->id] = 1;
}

static struct tl_cmd *held_take(uint32_t i)
{
	struct tl_cmd *c = F.held[i];

	F.held[i] = F.held[--F.nheld];
	F.held_id[c->id] = 0;
	return c;
}

static NOCOV void held_clear(void)
{
	while (F.nheld)
		held_take(0);
}

static void live_add(uint16_t id)
{
	if (F.is_live[id])
		fail("simulator handed out live id %u twice", id);
	F.is_live[id] = 1;
	F.want[id] = 0;
	F.live[F.nlive++] = id;
}

static void ent_add(uint32_t off)
{
	F.ents[F.ent_next].off = off;
	F.ents[F.ent_next].len_op = ld32(kent(off));
	F.ent_next = (F.ent_next + 1) % MAX_ENTS;
	if (F.nents < MAX_ENTS)
		F.nents++;
}

/* After a simulator call that published: its head is ours too. */
static void sim_published(void)
{
	F.khead = F.phead = ld32(F.kmap + OFF_HEAD);
}

/*
 * Check and release every finished simulator command.  The simulator's
 * results are what the initiator would see.
 */
static NOCOV void collect(void)
{
	uint32_t i = 0;

	while (i < F.nlive) {
		uint16_t id = F.live[i];
		const struct tl_sim_result *res = sim_result(F.sim, id);

		if (!res || !res->done) {
			i++;
			continue;
		}
		if (res->read_len > res->data_len)
			fail("id %u: read_len %u beyond the %u-byte buffer", id,
			     res->read_len, res->data_len);
		if (F.want[id] && !F.chaos) {
			const uint8_t *w = F.want_sense[id];

			if (res->status != F.want_status[id])
				fail("id %u: kernel saw status %#x, daemon "
				     "answered %#x", id, res->status,
				     F.want_status[id]);
			if (res->status == TL_STATUS_CHECK_CONDITION &&
			    ((w[0] != 0xff && (res->sense[2] & 0x0f) != w[0]) ||
			     (w[1] != 0xff && res->sense[12] != w[1]) ||
			     (w[2] != 0xff && res->sense[13] != w[2])))
				fail("id %u: sense %02x/%02x/%02x reached the "
				     "kernel, wanted %02x/%02x/%02x", id,
				     res->sense[2] & 0x0f, res->sense[12],
				     res->sense[13], w[0], w[1], w[2]);
		}
		F.want[id] = 0;
		F.is_live[id] = 0;
		sim_release(F.sim, id);
		F.live[i] = F.live[--F.nlive];
	}
}

/* ---- the model of a valid command entry (independent of ring.c) ---- */

static uint8_t map_byte(uint64_t off)
{
	return off < F.snap_len ? F.snap[off] : F.map[off];
}

/* SPC-4 4.2.5: CDB length from the group code; 0 when it cannot be known. */
static uint32_t model_cdb_len(uint64_t cdb_off)
{
	static const uint8_t by_group[8] = { 6, 10, 10, 12, 16, 12, 10, 10 };
	uint8_t op = map_byte(cdb_off);

	if (op == 0x7f) {
		if (cdb_off + 8 > F.map_size)
			return 0;
		return 8u + map_byte(cdb_off + 7);
	}
	return by_group[op >> 5];
}

/* NULL if the entry (snapshot at ring offset off) must be served. */
static const char *model_check(uint32_t off, uint32_t len)
{
	const uint8_t *e = F.snap + CMDR_OFF + off;
	uint64_t total, cdb_off, i;
	uint32_t iov_cnt, clen;
	uint16_t id = ld16(e + 4);

	if (id == 0)
		return "cmd_id 0";
	if (F.held_id[id])
		return "cmd_id in flight";
	if (len < sizeof(struct tcmu_cmd_entry))
		return "short";
	iov_cnt = ld32(e + 8);
	total = (uint64_t)iov_cnt + ld32(e + 12) + ld32(e + 16);
	if (48 + total * 16 > len)
		return "iovecs past the entry";
	if (iov_cnt > TL_IOV_MAX)
		return "too many iovecs";
	cdb_off = ld64(e + 24);
	if (cdb_off >= F.map_size)
		return "cdb_off outside";
	clen = model_cdb_len(cdb_off);
	if (!clen || cdb_off + clen > F.map_size)
		return "CDB past the map";
	for (i = 0; i < total; i++) {
		uint64_t base = ld64(e + 48 + i * 16);
		uint64_t ilen = ld64(e + 56 + i * 16);

		if (base < F.data_lo || base > F.map_size ||
		    ilen > F.map_size - base)
			return "iovec outside the data area";
	}
	return NULL;
}

/* ---- the daemon's moves, each checked against a snapshot ---- */

/* Not memcmp(): libFuzzer hooks that to mine it for comparisons. */
static NOCOV bool same64(const uint8_t *a, const uint8_t *b)
{
	uint64_t x, y, diff = 0;
	int k;

	for (k = 0; k < 64; k += 8) {
		memcpy(&x, a + k, 8);
		memcpy(&y, b + k, 8);
		diff |= x ^ y;
	}
	return !diff;
}

static NOCOV void snap_take(void)
{
	memcpy(F.snap, F.map, F.snap_len);
}

/* Did the last ring call write only where it may? */
static NOCOV void snap_check(const char *what, uint32_t t0, uint32_t f0,
			     bool tail_store)
{
	uint32_t t1 = F.r->tail, f1 = F.r->fetch;
	size_t i;

	for (i = 0; i < F.snap_len; i++) {
		uint32_t off;

		/* Most 64-byte stretches are unchanged: skip them whole. */
		if (!(i & 63) && i + 64 <= F.snap_len &&
		    same64(F.snap + i, F.map + i)) {
			i += 63;
			continue;
		}
		if (F.snap[i] == F.map[i])
			continue;
		if (i < CMDR_OFF) {
			if (tail_store && i >= OFF_TAIL && i < OFF_TAIL + 4)
				continue;
			fail("%s wrote mailbox byte %zu", what, i);
		}
		if (i >= F.data_lo)
			fail("%s wrote the data area at map offset %zu "
			     "(%zu bytes past the ring)", what, i,
			     i - F.data_lo);
		off = (uint32_t)(i - CMDR_OFF);
		/* Responses go into the entries the tail passed over. */
		if (t0 != t1 && in_arc(off, t0, t1))
			continue;
		/* UNKNOWN_OP goes into the uflags of skipped entries. */
		if ((off & 7) == 7 && f0 != f1 && in_arc(off, f0, f1))
			continue;
		fail("%s wrote ring offset %u outside [tail %u, %u) and "
		     "[fetch %u, %u)", what, off, t0, t1, f0, f1);
	}
}

static void check_ring_state(void)
{
	struct ring *r = F.r;

	if (r->fetch >= F.cmdr_size || (r->fetch & 7) ||
	    r->tail >= F.cmdr_size || (r->tail & 7))
		fail("fetch %u / tail %u out of the ring", r->fetch, r->tail);
	if (!r->broken && r->inflight != F.nheld)
		fail("ring counts %u in flight, the daemon holds %u",
		     r->inflight, F.nheld);
	for (uint32_t i = 0; i < F.nheld; i++)
		if (ring_cmd_by_id(r, F.held[i]->id) != F.held[i])
			fail("ring_cmd_by_id(%u) lost a command in flight",
			     F.held[i]->id);
	if (ring_cmd_by_id(r, 0))
		fail("ring_cmd_by_id(0) found something");
	if (!F.chaos && r->broken)
		fail("ring broke with a well-behaved kernel: %s",
		     r->broken_why);
	if (!F.chaos && !r->broken &&
	    dist(r->tail, r->fetch) > dist(r->tail, F.khead))
		fail("fetch %u is not between tail %u and head %u", r->fetch,
		     r->tail, F.khead);
	if (!F.chaos && sim_broken(F.sim, NULL)) {
		const char *why;

		sim_broken(F.sim, &why);
		fail("simulator broke with a well-behaved kernel: %s", why);
	}
}

static void check_cmd(const struct tl_cmd *c, uint32_t off)
{
	const uint8_t *e = F.snap + CMDR_OFF + off;
	uint64_t cdb_off = ld64(e + 24), sum = 0;
	uint32_t i, clen = model_cdb_len(cdb_off);

	if (c->state != TL_CMD_QUEUED || c->id != ld16(e + 4) ||
	    c != &F.r->slots[c->id])
		fail("command %u handed out in state %u / wrong slot", c->id,
		     c->state);
	if (c->cdb_len != clen || c->opcode != map_byte(cdb_off))
		fail("id %u: cdb_len %u, the entry's CDB is %u long", c->id,
		     c->cdb_len, clen);
	for (i = 0; i < clen; i++)
		if (c->cdb[i] != map_byte(cdb_off + i))
			fail("id %u: CDB byte %u differs", c->id, i);
	if (c->iov_cnt != ld32(e + 8))
		fail("id %u: iov_cnt %u, entry says %u", c->id, c->iov_cnt,
		     ld32(e + 8));
	for (i = 0; i < c->iov_cnt; i++) {
		uint64_t base = ld64(e + 48 + i * 16);

		if (c->iov[i].base != F.map + base ||
		    c->iov[i].len != ld64(e + 56 + i * 16))
			fail("id %u: iovec %u copied wrong", c->id, i);
		if (c->iov[i].base < F.map + F.data_lo ||
		    c->iov[i].len > (size_t)(F.map + F.map_size -
					     c->iov[i].base))
			fail("id %u: iovec %u outside the data area", c->id, i);
		sum += c->iov[i].len;
	}
	if (c->data_len != sum || c->sense_len != 0 ||
	    c->status != TL_STATUS_GOOD)
		fail("id %u: fresh command not clean", c->id);
}

static void check_tmr(const struct ring_event *ev, uint32_t off,
		      uint32_t len)
{
	const uint8_t *e = F.snap + CMDR_OFF + off;
	uint32_t want_cnt = 0, i;

	if (len >= 32) {
		want_cnt = ld32(e + 12);
		if (want_cnt > (len - 32) / 2)
			want_cnt = (len - 32) / 2;
		if (ev->tmr_type != e[8])
			fail("TMR type %u, entry says %u", ev->tmr_type, e[8]);
	}
	if (ev->tmr_cnt != want_cnt)
		fail("TMR with %u ids, entry holds %u", ev->tmr_cnt, want_cnt);
	for (i = 0; i < want_cnt; i++)
		if (ev->tmr_ids[i] != ld16(e + 32 + i * 2))
			fail("TMR id %u differs", i);
}

/* One ring_fetch(); returns its result. */
static int fetch_one(void)
{
	uint32_t t0 = F.r->tail, f0 = F.r->fetch, pos, head, ent = 0, elen = 0;
	uint32_t eop = 0, n = 0;
	bool seen = false, was_broken = F.r->broken;
	struct ring_event ev;
	const char *why;
	int rc;

	snap_take();
	head = ld32(F.snap + OFF_HEAD);
	rc = ring_fetch(F.r, &ev);
	snap_check("ring_fetch", t0, f0, false);
	if (rc < 0) {
		if (!F.r->broken)
			fail("ring_fetch failed without marking the ring broken");
		if (!was_broken)
			note("  ring broken: %s\n", F.r->broken_why);
		return rc;
	}
	/* Walk what the ring walked: PADs and unknown ops, then the entry. */
	for (pos = f0; pos != F.r->fetch; pos = (pos + elen) % F.cmdr_size) {
		uint32_t lo = ld32(F.snap + CMDR_OFF + pos);

		elen = lo & ~7u;
		if (seen)
			fail("ring_fetch went past the entry it returned");
		if (elen < 8 || elen > F.cmdr_size - pos ||
		    elen > dist(pos, head))
			fail("ring_fetch walked an impossible entry at %u "
			     "(len_op %#x, head %u)", pos, lo, head);
		if ((lo & 7) == TCMU_OP_CMD || (lo & 7) == TCMU_OP_TMR) {
			seen = true;
			ent = pos;
			eop = lo & 7;
		} else if ((lo & 7) != TCMU_OP_PAD &&
			   !(F.map[CMDR_OFF + pos + 7] & TCMU_UFLAG_UNKNOWN_OP)) {
			fail("opcode %u at %u skipped without UNKNOWN_OP",
			     lo & 7, pos);
		}
		if (++n > F.cmdr_size / 8)
			fail("ring_fetch walk does not end");
	}
	if (rc == 0) {
		if (seen || F.r->fetch != head)
			fail("ring_fetch said empty at %u, head %u", F.r->fetch,
			     head);
		return 0;
	}
	if (!seen)
		fail("ring_fetch returned an event but walked no entry");
	elen = ld32(F.snap + CMDR_OFF + ent) & ~7u;
	switch (ev.type) {
	case RING_EV_CMD:
		if (eop != TCMU_OP_CMD)
			fail("RING_EV_CMD from a non-command entry");
		why = model_check(ent, elen);
		if (why)
			fail("ring served an entry at %u that is invalid: %s",
			     ent, why);
		check_cmd(ev.cmd, ent);
		note("  cmd id %u at %u (op %#x, %u iovecs, %llu bytes)\n",
		     ev.cmd->id, ent, ev.cmd->opcode, ev.cmd->iov_cnt,
		     (unsigned long long)ev.cmd->data_len);
		held_add(ev.cmd);
		break;
	case RING_EV_REJECTED:
		if (eop != TCMU_OP_CMD)
			fail("RING_EV_REJECTED from a non-command entry");
		why = model_check(ent, elen);
		if (!why)
			fail("ring rejected a valid entry at %u (%s)", ent,
			     ev.why ? ev.why : "no reason");
		if (!ev.why || ev.cmd->status != TL_STATUS_CHECK_CONDITION ||
		    !(ev.cmd->flags & TL_CMDF_MALFORMED) ||
		    ev.cmd->sense_len < 18 || ev.cmd->sense[0] != 0x70 ||
		    (ev.cmd->sense[2] & 0x0f) != 0x04 ||
		    ev.cmd->sense[12] != 0x44)
			fail("rejected entry not failed with HARDWARE ERROR");
		if (ev.cmd->id != ld16(F.snap + CMDR_OFF + ent + 4))
			fail("rejected entry answered under another cmd_id");
		if (!F.r->broken && ev.cmd->state != TL_CMD_FREE)
			fail("rejected command left in flight");
		note("  rejected id %u at %u: %s\n", ev.cmd->id, ent, ev.why);
		/* The kernel must see CHECK CONDITION for it. */
		if (!F.chaos && ev.cmd->id && !F.held_id[ev.cmd->id] &&
		    F.is_live[ev.cmd->id]) {
			F.want[ev.cmd->id] = 1;
			F.want_status[ev.cmd->id] = TL_STATUS_CHECK_CONDITION;
			F.want_sense[ev.cmd->id][0] = 0x04;
			F.want_sense[ev.cmd->id][1] = 0x44;
			F.want_sense[ev.cmd->id][2] = 0x00;
		}
		break;
	case RING_EV_TMR:
		if (eop != TCMU_OP_TMR)
			fail("RING_EV_TMR from a non-TMR entry");
		check_tmr(&ev, ent, elen);
		note("  tmr type %u, %u ids\n", ev.tmr_type, ev.tmr_cnt);
		break;
	default:
		fail("unknown event type %d", ev.type);
	}
	return rc;
}

static void drain_notify(void)
{
	uint32_t buf[16];

	while (read(F.fd, buf, sizeof(buf)) > 0)
		;
}

static void op_fetch(unsigned int max)
{
	unsigned int n = 0;

	drain_notify();
	while ((!max || n < max) && n < 4 * NIDS) {
		if (fetch_one() <= 0)
			break;
		n++;
		check_ring_state();
	}
}

/* The daemon's work: fill the data-in buffers, as a handler would. */
static void serve(struct tl_cmd *c)
{
	uint32_t i;

	for (i = 0; i < c->iov_cnt; i++) {
		uint8_t *b = c->iov[i].base;

		if (b < F.map + F.data_lo || b > F.map + F.map_size ||
		    c->iov[i].len > (size_t)(F.map + F.map_size - b))
			fail("id %u: iovec %u outside the data area", c->id, i);
		memset(b, (int)(c->id & 0xff), c->iov[i].len);
	}
}

static const uint8_t statuses[] = {
	TL_STATUS_GOOD, TL_STATUS_CHECK_CONDITION, TL_STATUS_CONDITION_MET,
	TL_STATUS_BUSY, TL_STATUS_TASK_SET_FULL,
};

static void complete_cmd(struct tl_cmd *c, uint8_t st, uint8_t rl_mode,
			 uint8_t key, uint8_t asc, uint8_t ascq, uint8_t slen)
{
	uint32_t t0 = F.r->tail, f0 = F.r->fetch, inflight = F.r->inflight;
	uint16_t id = c->id;
	int rc;

	serve(c);
	c->status = statuses[st % sizeof(statuses)];
	if (c->status == TL_STATUS_CHECK_CONDITION) {
		ring_cmd_set_sense(c, key & 0x0f, asc, ascq);
		if (slen & 0x80)	/* a handler that gets sense_len wrong */
			c->sense_len = slen & 0x7f ? (uint8_t)(slen << 1) : 0;
	}
	switch (rl_mode & 3) {
	case 0:
		break;
	case 1:
		c->read_len = 0;
		break;
	case 2:
		c->read_len = (uint32_t)(c->data_len ?
					 (rl_mode >> 2) % (c->data_len + 1) :
					 0);
		break;
	case 3:
		c->read_len = (uint32_t)c->data_len + 1u + (rl_mode >> 2);
		break;
	}
	snap_take();
	rc = ring_complete(F.r, c);
	snap_check("ring_complete", t0, f0, false);
	note("  complete id %u status %#x read_len %u -> %d (tail %u)\n", id,
	     c->status, c->read_len, rc, F.r->tail);
	if (rc) {
		if (!F.r->broken)
			fail("ring_complete refused command %u in flight", id);
		return;
	}
	if (F.r->inflight != inflight - 1 || c->state != TL_CMD_FREE)
		fail("ring_complete did not retire command %u", id);
	if (!F.chaos && F.is_live[id]) {
		F.want[id] = 1;
		F.want_status[id] = c->status;
		F.want_sense[id][0] = F.want_sense[id][1] =
			F.want_sense[id][2] = 0xff;
		if (c->status == TL_STATUS_CHECK_CONDITION &&
		    c->sense_len >= 14) {
			F.want_sense[id][0] = key & 0x0f;
			F.want_sense[id][1] = asc;
			F.want_sense[id][2] = ascq;
		}
	}
}

static void op_complete(struct fin *in)
{
	uint8_t which = fin_u8(in), st = fin_u8(in), rl = fin_u8(in);
	uint8_t key = fin_u8(in), asc = fin_u8(in), ascq = fin_u8(in);
	uint8_t slen = fin_u8(in);

	if (!F.nheld)
		return;
	complete_cmd(held_take(which % F.nheld), st, rl, key, asc, ascq, slen);
}

static void op_complete_all(uint8_t seed)
{
	uint32_t x = seed * 2654435761u + 1;

	while (F.nheld) {
		x = x * 1103515245u + 12345u;
		complete_cmd(held_take(seed ? (x >> 8) % F.nheld : 0),
			     (uint8_t)(x >> 20), 0, 0x03, 0x11, 0, 0);
	}
}

static void op_kick(void)
{
	uint32_t t0 = F.r->tail, f0 = F.r->fetch, one = 1;
	bool kick;

	snap_take();
	kick = ring_publish(F.r);
	snap_check("ring_publish", t0, f0, true);
	if (kick) {
		if (ld32(F.map + OFF_TAIL) != F.r->tail)
			fail("ring_publish said kick but cmd_tail %u != tail "
			     "%u", ld32(F.map + OFF_TAIL), F.r->tail);
		if (write(F.fd, &one, sizeof(one)) != sizeof(one))
			note("  kick not delivered\n");
	}
	note("  publish tail %u kick %d\n", F.r->tail, kick);
}

static void op_reap(void)
{
	int n = sim_reap(F.sim);
	const char *why = NULL;

	if (n < 0)
		sim_broken(F.sim, &why);
	note("  reap %d%s%s\n", n, why ? ": " : "", why ? why : "");
	collect();
}

static void op_reset(void)
{
	sim_reset_ring(F.sim);
	ring_reset(F.r);
	held_clear();
	F.khead = F.phead = 0;
	F.nents = F.ent_next = 0;
	F.chaos = false;
	if (F.r->inflight || F.r->tail || F.r->fetch || F.r->broken)
		fail("ring_reset left state behind");
	for (uint32_t i = 0; i < F.nlive; i++)
		F.want[F.live[i]] = 0;	/* BUSY for whatever was pending */
	collect();
	if (sim_inflight(F.sim))
		fail("simulator still has commands after reset_ring");
}

/* ---- the kernel's moves ---- */

static void op_submit(struct fin *in)
{
	uint8_t kind = fin_u8(in), flags = fin_u8(in), cdb[32] = { 0 };
	uint32_t len = fin_u16(in), cdb_len;
	struct tcmu_cmd_entry *e = NULL;
	enum sim_dir dir = (enum sim_dir)(flags & 3);
	int id;

	switch (kind % 8) {
	case 0:	/* TEST UNIT READY */
		cdb_len = 6;
		break;
	case 1:	/* READ(10) */
	case 2:	/* WRITE(10) */
		cdb[0] = kind % 8 == 1 ? 0x28 : 0x2a;
		cdb[8] = (uint8_t)(len / 512 + 1);
		cdb_len = 10;
		break;
	case 3:	/* INQUIRY */
		cdb[0] = 0x12;
		cdb[4] = 0xff;
		cdb_len = 6;
		break;
	case 4:	/* READ(16) */
		cdb[0] = 0x88;
		cdb[13] = 8;
		cdb_len = 16;
		break;
	case 5:	/* a variable-length CDB, additional length from kind */
		cdb[0] = 0x7f;
		cdb[7] = (uint8_t)(kind >> 3);
		cdb[9] = 0x09;
		cdb_len = 8u + cdb[7] > 32 ? 32 : 8u + cdb[7];
		break;
	default:	/* arbitrary bytes, arbitrary length */
		cdb_len = 1 + kind % 32;
		fin_bytes(in, cdb, cdb_len);
		break;
	}
	if (dir == 3)
		dir = SIM_DIR_FROM_DEV;
	len %= F.data_bytes + 1;
	if (dir == SIM_DIR_NONE)
		len = 0;
	if (len > sizeof(out_buf))
		len = sizeof(out_buf);
	id = sim_prepare(F.sim, cdb, cdb_len, dir,
			 dir == SIM_DIR_TO_DEV ? out_buf : NULL, len, &e);
	note("  submit op %#x dir %d len %u -> id %d\n", cdb[0], dir, len, id);
	if (id < 0)
		fail("sim_prepare refused good arguments");
	if (!id)
		return;
	live_add((uint16_t)id);
	ent_add((uint32_t)((uint8_t *)e - F.kmap - CMDR_OFF));
	F.phead = (F.ents[(F.ent_next + MAX_ENTS - 1) % MAX_ENTS].off +
		   (ld32((uint8_t *)e) & ~7u)) % F.cmdr_size;
	if (flags & 4) {
		sim_publish(F.sim);
		sim_published();
	}
}

/* A prepared command entry the daemon has not answered in yet. */
static uint8_t *pick_entry(uint8_t which)
{
	uint32_t i, k;

	for (k = 0; k < F.nents; k++) {
		i = (F.ent_next + MAX_ENTS - 1 - (which + k) % F.nents) %
		    MAX_ENTS;
		if (in_arc(F.ents[i].off, F.r->tail, F.phead) &&
		    ld32(kent(F.ents[i].off)) == F.ents[i].len_op)
			return kent(F.ents[i].off);
	}
	return NULL;
}

static uint64_t pick_offset(uint8_t mode, uint64_t v)
{
	switch (mode % 8) {
	case 0:
		return v;				/* anything */
	case 1:
		return F.map_size - (v % 64);		/* the last bytes */
	case 2:
		return F.map_size + (v % 4096);		/* just past */
	case 3:
		return v % F.map_size;			/* anywhere inside */
	case 4:
		return F.data_lo - 1 - (v % 128);	/* end of the ring */
	case 5:
		return F.data_lo + (v % F.data_bytes);	/* the data area */
	case 6:
		return v % CMDR_OFF;			/* the mailbox */
	default:
		return (uint64_t)0 - (v % 65536);	/* wraps */
	}
}

static void op_corrupt(struct fin *in)
{
	uint8_t which = fin_u8(in), field = fin_u8(in), mode = fin_u8(in);
	uint64_t v = fin_u64(in);
	uint8_t *e = pick_entry(which);
	uint32_t i = mode >> 4 & 3;

	if (!e)
		return;
	note("  corrupt field %u mode %u value %#llx at %td\n", field % 11,
	     mode, (unsigned long long)v, e - F.kmap - CMDR_OFF);
	switch (field % 11) {
	case 0:	/* cdb_off */
		v = pick_offset(mode, v);
		memcpy(e + 24, &v, 8);
		break;
	case 1:	/* iov_cnt */
		st32(e + 8, mode & 1 ? (uint32_t)v : (uint32_t)(v % 8));
		break;
	case 2:	/* iov_bidi_cnt */
		st32(e + 12, mode & 1 ? (uint32_t)v : (uint32_t)(v % 8));
		break;
	case 3:	/* iov_dif_cnt */
		st32(e + 16, mode & 1 ? (uint32_t)v : (uint32_t)(v % 8));
		break;
	case 4:	/* iov[i].iov_base */
		v = pick_offset(mode, v);
		memcpy(e + 48 + i * 16, &v, 8);
		break;
	case 5:	/* iov[i].iov_len */
		if (mode & 8)
			v = F.map_size - (v % 8192);
		memcpy(e + 56 + i * 16, &v, 8);
		break;
	case 6:	/* the CDB's first bytes, where cdb_off points */
	{
		uint64_t at = ld64(e + 24), eo = (uint64_t)(e - F.kmap);

		if (at < F.map_size - 8) {
			/*
			 * Benign in this entry's body or in the data area;
			 * elsewhere it rewrites the mailbox or another entry.
			 */
			if (at < F.data_lo &&
			    !(at >= eo + 8 && at + 8 <= eo + (ld32(e) & ~7u)))
				F.chaos = true;
			F.kmap[at] = (uint8_t)v;
			F.kmap[at + 7] = (uint8_t)(v >> 8);
		}
		break;
	}
	case 7:	/* kflags / uflags */
		e[6] = (uint8_t)v;
		e[7] = (uint8_t)(v >> 8);
		break;
	case 8:	/* cmd_id: the kernel would not find its command */
		F.chaos = true;
		if (mode & 1)
			memcpy(e + 4, &(uint16_t){ (uint16_t)v }, 2);
		else if (F.nheld)
			memcpy(e + 4, &F.held[v % F.nheld]->id, 2);
		else
			memset(e + 4, 0, 2);
		break;
	case 9:	/* len_op */
		F.chaos = true;
		if (mode & 1)
			st32(e, (uint32_t)v);
		else
			st32(e, (ld32(e) & ~7u) + 8u * (uint32_t)(v % 5) -
				     16u + (mode >> 1 & 7));
		break;
	default:	/* the padding of the request */
		memcpy(e + 20, &v, 4);
		break;
	}
}

static void op_publish(void)
{
	sim_publish(F.sim);
	sim_published();
}

/* Raw bytes as an entry: size is what the simulator reserves for it. */
static void inject(const uint8_t *bytes, uint32_t len, uint32_t len_op)
{
	static uint8_t ent[65536 + 8];
	uint32_t size = round8(len < 8 ? 8 : len);

	memset(ent, 0, size);
	memcpy(ent, bytes, len);
	st32(ent, len_op);
	if ((len_op & ~7u) != size || (len_op & 7) == TCMU_OP_CMD)
		F.chaos = true;	/* kernel and daemon disagree on the walk */
	if (sim_inject(F.sim, ent, size) == 1)
		sim_published();
	note("  inject %u bytes len_op %#x%s\n", size, len_op,
	     F.chaos ? " (chaos)" : "");
}

static void op_inject(struct fin *in)
{
	static uint8_t bytes[65536];
	uint32_t len = fin_u16(in);
	uint8_t mode = fin_u8(in);
	uint32_t raw = fin_u32(in), size = round8(len < 8 ? 8 : len);

	/* Big entries (iovec arrays past TL_IOV_MAX): a header, then zeros. */
	memset(bytes, 0, len);
	fin_bytes(in, bytes, len < 1024 ? len : 64);
	/* mode 0: the header fits the entry; else whatever the input says. */
	inject(bytes, len, mode & 1 ? raw : size | (raw & 7));
}

static void op_tmr(struct fin *in)
{
	uint8_t type = fin_u8(in), cnt = fin_u8(in) % 32, i;
	uint16_t ids[32];

	for (i = 0; i < cnt; i++) {
		uint8_t w = fin_u8(in);

		ids[i] = F.nheld ? F.held[w % F.nheld]->id : w;
	}
	if (sim_submit_tmr(F.sim, type, ids, cnt) == 1)
		sim_published();
	note("  tmr type %u with %u ids\n", type, cnt);
}

static void op_tmr_raw(struct fin *in)
{
	uint8_t nids = fin_u8(in) % 16, ent[64] = { 0 };
	uint32_t cnt = fin_u32(in), len = 32 + 2u * nids;

	ent[8] = fin_u8(in);
	memcpy(ent + 12, &cnt, 4);
	for (uint8_t i = 0; i < nids; i++)
		memcpy(ent + 32 + 2 * i, &(uint16_t){ (uint16_t)(i + 1) }, 2);
	inject(ent, len, round8(len) | TCMU_OP_TMR);
}

static void op_pad(struct fin *in)
{
	uint8_t mode = fin_u8(in), zero[1024] = { 0 };
	uint32_t len = fin_u16(in) % 1024, size = round8(len < 8 ? 8 : len);
	uint32_t claim;

	switch (mode % 6) {
	case 0:
		claim = size;			/* honest */
		break;
	case 1:
		claim = 0;			/* cannot advance */
		break;
	case 2:
		claim = F.cmdr_size;		/* the whole ring */
		break;
	case 3:
		claim = F.cmdr_size - F.phead;	/* to the end, from here */
		break;
	case 4:
		claim = size + 8;		/* one word too long */
		break;
	default:
		claim = (uint32_t)mode << 16;	/* huge */
		break;
	}
	inject(zero, size, claim | TCMU_OP_PAD);
}

static void op_head(struct fin *in)
{
	uint8_t mode = fin_u8(in);
	uint32_t v = fin_u32(in), head;

	switch (mode % 5) {
	case 0:
		head = v;					/* raw */
		break;
	case 1:
		head = (v * 8) % F.cmdr_size;			/* in range */
		break;
	case 2:
		head = (F.khead + F.cmdr_size - 8 * (v % 64)) % F.cmdr_size;
		break;
	case 3:
		head = (F.khead + 8 * (1 + v % 64)) % F.cmdr_size;
		break;
	default:
		head = F.khead;				/* put it back */
		break;
	}
	if (head != ld32(F.kmap + OFF_HEAD))
		F.chaos = true;
	__atomic_store_n((uint32_t *)(F.kmap + OFF_HEAD), head,
			 __ATOMIC_RELEASE);
	note("  cmd_head := %u (true head %u)\n", head, F.khead);
}

/* Rewrite shared memory the daemon already looked at (time of use). */
static void op_poke(struct fin *in)
{
	uint8_t mode = fin_u8(in);
	uint32_t where = fin_u16(in), v = fin_u32(in), off;

	F.chaos = true;
	switch (mode % 4) {
	case 0:	/* any word of the ring */
		off = (where * 4) % F.cmdr_size;
		break;
	case 1:	/* the header of the entry at the daemon's tail */
		off = F.r->tail;
		break;
	case 2:	/* the header of a prepared entry */
		off = F.nents ? F.ents[where % F.nents].off : 0;
		break;
	default:	/* an entry header claiming the rest of the ring */
		off = F.r->tail;
		v = (F.cmdr_size - off) | (v & 7);
		break;
	}
	st32(kent(off), v);
	note("  poke ring offset %u := %#x\n", off, v);
}

/*
 * A daemon (re)starting on this ring: with one mailbox field changed,
 * ring_attach() must accept exactly the mailboxes that describe a ring
 * inside the mapping.  A separate struct ring; the mailbox is put back.
 */
static void op_reattach(struct fin *in)
{
	static struct ring probe;
	uint8_t field = fin_u8(in), saved[CMDR_OFF];
	uint32_t v = fin_u32(in);
	struct tcmu_mailbox mb;
	const char *err = NULL;
	bool want;
	int rc;

	memcpy(saved, F.kmap, CMDR_OFF);
	/* Low 7 bits: which field; bit 7: v as is, else near the right value. */
	switch ((field & 0x7f) % 6) {
	case 0:
		memcpy(F.kmap + offsetof(struct tcmu_mailbox, version), &v, 2);
		break;
	case 1:
		v = field & 0x80 ? v : CMDR_OFF + (v % 64) - 32;
		memcpy(F.kmap + offsetof(struct tcmu_mailbox, cmdr_off), &v, 4);
		break;
	case 2:
		v = field & 0x80 ? v : F.cmdr_size + (v % 64) - 32;
		memcpy(F.kmap + offsetof(struct tcmu_mailbox, cmdr_size), &v, 4);
		break;
	case 3:
		v = field & 0x80 ? v : F.cmdr_size + (v % 64) - 32;
		memcpy(F.kmap + OFF_TAIL, &v, 4);
		break;
	case 4:
		memcpy(F.kmap + offsetof(struct tcmu_mailbox, flags), &v, 2);
		break;
	default:
		break;
	}
	memcpy(&mb, F.map, sizeof(mb));
	want = mb.version == TCMU_MAILBOX_VERSION && mb.cmdr_off >= CMDR_OFF &&
	       !(mb.cmdr_off & 7) && mb.cmdr_size >= 64 && !(mb.cmdr_size & 7) &&
	       (uint64_t)mb.cmdr_off + mb.cmdr_size <= F.map_size &&
	       mb.cmd_tail < mb.cmdr_size && !(mb.cmd_tail & 7);
	rc = ring_attach(&probe, F.map, F.map_size, &err);
	note("  attach with field %u = %#x: %d%s%s\n", (field & 0x7f) % 6, v, rc,
	     rc ? ": " : "", rc ? err : "");
	if (!rc != want)
		fail("ring_attach %s a mailbox (version %u cmdr_off %u cmdr_size "
		     "%u cmd_tail %u)", rc ? "refused" : "accepted", mb.version,
		     mb.cmdr_off, mb.cmdr_size, mb.cmd_tail);
	if (!rc) {
		if (probe.cmdr_off != mb.cmdr_off ||
		    probe.cmdr_size != mb.cmdr_size ||
		    probe.tail != mb.cmd_tail || probe.fetch != mb.cmd_tail ||
		    probe.caps != mb.flags || probe.inflight)
			fail("ring_attach took the mailbox wrong");
		ring_detach(&probe);
	}
	memcpy(F.kmap, saved, CMDR_OFF);
}

static void op_stray(uint8_t which)
{
	uint32_t t0 = F.r->tail, f0 = F.r->fetch, inflight = F.r->inflight;
	struct tl_cmd *c, *stray = NULL;
	uint16_t id = (uint16_t)(which * 257u + 1);

	switch (which % 3) {
	case 0:
		stray = calloc(1, sizeof(*stray));
		if (!stray)
			return;
		stray->state = TL_CMD_ACTIVE;
		c = stray;
		break;
	case 1:
		if (F.r->reject.state != TL_CMD_FREE)
			return;
		c = &F.r->reject;
		break;
	default:
		if (F.held_id[id] || F.r->slots[id].state != TL_CMD_FREE)
			return;
		c = &F.r->slots[id];
		break;
	}
	snap_take();
	if (ring_complete(F.r, c) != -1)
		fail("ring_complete accepted a command not in flight");
	snap_check("ring_complete(stray)", t0, f0, false);
	if (F.r->inflight != inflight)
		fail("a refused completion changed inflight");
	free(stray);
}

/* ---- the program ---- */

static void settle(void)
{
	int round;

	for (round = 0; round < 8; round++) {
		uint64_t before = F.r->stats.completed + F.r->stats.fetched +
				  F.r->stats.rejected + F.r->stats.tmrs;

		op_publish();
		op_fetch(0);
		op_complete_all(0);
		op_kick();
		op_reap();
		check_ring_state();
		if (F.r->stats.completed + F.r->stats.fetched +
		    F.r->stats.rejected + F.r->stats.tmrs == before)
			break;
	}
	if (F.chaos)
		return;
	if (F.r->inflight || F.nheld || sim_inflight(F.sim))
		fail("commands left in flight at the end: ring %u, sim %u",
		     F.r->inflight, sim_inflight(F.sim));
	if (ld32(F.map + OFF_TAIL) != ld32(F.map + OFF_HEAD))
		fail("at rest cmd_tail %u != cmd_head %u",
		     ld32(F.map + OFF_TAIL), ld32(F.map + OFF_HEAD));
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *v = getenv("TL_FUZZ_VERBOSE");

	verbose = v && *v && *v != '0';
	for (size_t i = 0; i < sizeof(out_buf); i++)
		out_buf[i] = (uint8_t)(i * 7 + 3);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fin in = { data, size };

	fz_init(&in);
	for (F.step = 0; in.n && F.step < MAX_OPS; F.step++) {
		uint8_t op = fin_u8(&in) % OP_COUNT;

		note("%u: %s\n", F.step, op_names[op]);
		switch (op) {
		case OP_SUBMIT:
			op_submit(&in);
			break;
		case OP_CORRUPT:
			op_corrupt(&in);
			break;
		case OP_PUBLISH:
			op_publish();
			break;
		case OP_INJECT:
			op_inject(&in);
			break;
		case OP_TMR:
			op_tmr(&in);
			break;
		case OP_TMR_RAW:
			op_tmr_raw(&in);
			break;
		case OP_PAD:
			op_pad(&in);
			break;
		case OP_HEAD:
			op_head(&in);
			break;
		case OP_FETCH:
			op_fetch(fin_u8(&in));
			break;
		case OP_COMPLETE:
			op_complete(&in);
			break;
		case OP_COMPLETE_ALL:
			op_complete_all(fin_u8(&in));
			break;
		case OP_KICK:
			op_kick();
			break;
		case OP_REAP:
			op_reap();
			break;
		case OP_RESET:
			op_reset();
			break;
		case OP_STRAY:
			op_stray(fin_u8(&in));
			break;
		case OP_POKE:
			op_poke(&in);
			break;
		case OP_REATTACH:
			op_reattach(&in);
			break;
		}
		check_ring_state();
	}
	note("settle\n");
	settle();
	fz_fini();
	return 0;
}
