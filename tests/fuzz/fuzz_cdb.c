// SPDX-License-Identifier: MIT
/*
 * fuzz_cdb.c - CDBs and their data through the whole stack.
 *
 * Commands go to RAM disks on the kernel simulator (tl_ffi_simdev_*): the
 * real ring, device and worker code, the FFI bindings, and the Lua SCSI
 * library with lua/handlers/ram.lua.  Four devices, made once per process
 * (a LuaJIT state each) and reused:
 *   0: ram, 8 MiB of 512-byte blocks, OOOC+READ_LEN+TMR, write cache on
 *   1: ram, 1 MiB of 4 KiB blocks, OOOC only, write cache off
 *   2: tests/fuzz/lua/fuzzram.lua (ram checking every offset it gets),
 *      1 MiB of 512-byte blocks, OOOC+READ_LEN+TMR
 *   3: fuzzram answering PENDING and finishing later in a scrambled order,
 *      failing about one operation in 29: 4 MiB of 512-byte blocks, write
 *      cache off (the library's continuations, exclusive lock, waits for
 *      writes in flight and error paths in the middle of a command)
 * Each input starts with a LUN RESET (mode pages back to their defaults),
 * unit attentions drained and the unit started, so that inputs do not
 * depend much on the ones before (the disk's contents do carry over).
 *
 * Checked for every command:
 *  - it completes (no hang, nothing left in flight), exactly once;
 *  - status is GOOD, CHECK CONDITION, CONDITION MET, BUSY or TASK SET FULL
 *    (TASK ABORTED only for a command a TMR named);
 *  - CHECK CONDITION carries well-formed sense: fixed (0x70, VALID bit
 *    allowed) or descriptor (0x72) format, additional length within the
 *    sense_len the handler gave and the 96 bytes TCMU carries, descriptors
 *    that add up, zeros after the end, and a real error (not NO SENSE 0/0);
 *  - read_len never exceeds the buffer, and the residual adds up;
 *  - the daemon logs no error or warning (a Lua error in a handler or the
 *    library is logged as "handler error"; a malformed entry or a broken
 *    ring would be too).
 *
 * libFuzzer sees only C coverage, and the SCSI logic is Lua, so Lua line
 * coverage (a line hook in each device's lua_State) and a hash of each
 * command's outcome (opcode, service action, status, sense key/ASC/ASCQ)
 * are fed to it through extra counters.  A line hook keeps LuaJIT from
 * compiling traces, so the plain replay build runs without it: the corpus
 * is then replayed with the JIT on.  TL_FUZZ_LUACOV=0/1 overrides;
 * TL_FUZZ_LUALINES=FILE writes the Lua lines run to FILE at exit.
 *
 * Input format (fuzz_input.h; make_seeds.py writes these):
 *   u8 device (mod 4)
 *   then items, each starting with u8 ctl:
 *     ctl >= 0xf0: special, u32 arg follows:
 *       0xf0 LUN RESET naming the batch, 0xf1 ABORT TASK for the batch
 *       commands whose bit is set in arg, 0xf2 resize to (arg mod 2 x
 *       blocks) + 1 blocks (restored next input), 0xf3 let the worker idle
 *       arg mod 20 ms
 *     else a command: ctl bits 0-1 direction (0 none, 1 data-out, 2
 *       data-in, 3 as the CDB says), bit 2 batch (queue it, do not run
 *       yet); u8 CDB length (0: from the opcode's group code, 8 + byte 7
 *       for 0x7f); the CDB bytes; for directions 1 and 2 a u24 buffer
 *       length; for directions 1 and 3 a u16 payload length and the
 *       payload, repeated to fill the data-out buffer.  In EXTENDED
 *       COPY parameter data, an identification descriptor (0xE4) whose
 *       16-byte NAA designator is all zeros gets the device's own NAA:
 *       otherwise no copy could ever be reached.
 * A batch runs when a command without the batch bit (or a TMR) arrives.
 *
 * TL_FUZZ_VERBOSE=1 prints every command and result.
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lua.h>

#include "device.h"
#include "fuzz_input.h"
#include "log.h"
#include "ring.h"
#include "tl_abi.h"
#include "worker.h"

#ifndef TL_FUZZ_DIR
#define TL_FUZZ_DIR "."
#endif

#define NDEVS 4
#define MAX_BATCH 32
#define MAX_XFER (1u << 20)
#define MAX_ITEMS 64

/* Harness bookkeeping is not what we want coverage feedback from. */
#ifdef __clang__
#define NOCOV __attribute__((no_sanitize("coverage")))
#else
#define NOCOV
#endif

struct fz_dev {
	const char *name, *handler, *dirs, *config;
	uint64_t size;
	uint32_t block_size;
	uint16_t caps;
	uint8_t write_cache;
	struct tl_simdev *sd;
	uint64_t cur_size;
	uint8_t naa[16];	/* its NAA designator (INQUIRY VPD 0x83) */
};

static struct fz_dev devs[NDEVS] = {
	{ .name = "fuzz0", .handler = "ram", .size = 8u << 20,
	  .block_size = 512, .caps = 7, .write_cache = 1 },
	{ .name = "fuzz1", .handler = "ram", .size = 1u << 20,
	  .block_size = 4096, .caps = 1 },
	{ .name = "fuzz2", .handler = "fuzzram", .dirs = TL_FUZZ_DIR "/lua",
	  .size = 1u << 20, .block_size = 512, .caps = 7, .write_cache = 1 },
	{ .name = "fuzz3", .handler = "fuzzram", .dirs = TL_FUZZ_DIR "/lua",
	  .config = "{ async = true, fail_every = 29 }",
	  .size = 4u << 20, .block_size = 512, .caps = 7 },
};

struct pending {
	int id;
	uint8_t cdb[16];
	uint16_t cdb_len;
	uint32_t len;
	int dir;
	bool may_abort;
};

static struct pending batch[MAX_BATCH];
static unsigned int nbatch;
static struct fz_dev *cur;
static bool verbose, luacov, checking;
static uint8_t out_buf[MAX_XFER];
static unsigned long ncmds;

/* Extra coverage for libFuzzer: Lua lines and command outcomes. */
static uint8_t extra_cov[1 << 16]
	__attribute__((section("__libfuzzer_extra_counters"), used));

/* Set by replay.c: the plain executable, not libFuzzer. */
extern int tl_fuzz_replaying __attribute__((weak));

static void __attribute__((noreturn, format(printf, 1, 2)))
fail(const char *fmt, ...)
{
	va_list ap;
	unsigned int i;

	fprintf(stderr, "\nfuzz_cdb: INVARIANT VIOLATED (device %s, command "
		"%lu): ", cur ? cur->name : "-", ncmds);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	for (i = 0; i < nbatch; i++) {
		fprintf(stderr, "  batch[%u] id %d dir %d len %u cdb", i,
			batch[i].id, batch[i].dir, batch[i].len);
		for (unsigned int k = 0; k < batch[i].cdb_len; k++)
			fprintf(stderr, " %02x", batch[i].cdb[k]);
		fprintf(stderr, "\n");
	}
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

/* ---- what the daemon says and does, intercepted at link time ---- */

void __real_tl_log(enum tl_log_level level, const char *fmt, ...);
void __wrap_tl_log(enum tl_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void __wrap_tl_log(enum tl_log_level level, const char *fmt, ...)
{
	char msg[4096];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (checking && level <= TL_LOG_WARN)
		fail("the daemon logged: %s", msg);
	if (verbose || level <= TL_LOG_WARN)
		__real_tl_log(level, "%s", msg);
}

static bool status_ok(uint8_t st)
{
	return st == TL_STATUS_GOOD || st == TL_STATUS_CHECK_CONDITION ||
	       st == TL_STATUS_CONDITION_MET || st == TL_STATUS_BUSY ||
	       st == TL_STATUS_TASK_SET_FULL;
}

/*
 * Sense data (SPC-4 4.5): returns the additional length + 8, or fails.
 * len is how many bytes the sender says are valid.
 */
static NOCOV unsigned int check_sense(const uint8_t *s, unsigned int len,
				      const char *who)
{
	unsigned int end, off, key, asc, ascq;

	if (len < 8)
		fail("%s: CHECK CONDITION with %u bytes of sense", who, len);
	end = 8u + s[7];
	if (end > len || end > TL_SENSE_LEN)
		fail("%s: sense additional length %u runs past %u bytes", who,
		     s[7], len);
	switch (s[0] & 0x7f) {
	case 0x70:
		if (end < 14)
			fail("%s: fixed sense too short for ASC/ASCQ (%u)", who,
			     end);
		key = s[2] & 0x0f;
		asc = s[12];
		ascq = s[13];
		break;
	case 0x72:
		if (s[0] & 0x80)
			fail("%s: descriptor sense with bit 7 set", who);
		key = s[1] & 0x0f;
		asc = s[2];
		ascq = s[3];
		for (off = 8; off < end; off += 2u + s[off + 1]) {
			if (off + 2 > end || off + 2u + s[off + 1] > end)
				fail("%s: sense descriptor at %u runs past %u",
				     who, off, end);
		}
		break;
	default:
		fail("%s: sense response code %#x", who, s[0]);
	}
	if (key == 0 && asc == 0 && ascq == 0)
		fail("%s: CHECK CONDITION with NO SENSE and no ASC", who);
	return end;
}

int __real_ring_complete(struct ring *r, struct tl_cmd *cmd);
int __wrap_ring_complete(struct ring *r, struct tl_cmd *cmd);
int __wrap_ring_complete(struct ring *r, struct tl_cmd *cmd)
{
	uint8_t st = cmd->status;
	int rc;

	if (checking) {
		if (cmd->state == TL_CMD_FREE)
			fail("cmd %u completed again (already free)", cmd->id);
		if (!status_ok(st) && !(st == TL_STATUS_TASK_ABORTED &&
					cmd->state == TL_CMD_ABORTED))
			fail("cmd %u (op %#x) completed with status %#x",
			     cmd->id, cmd->opcode, st);
		if (st == TL_STATUS_CHECK_CONDITION) {
			if (cmd->sense_len > TL_SENSE_LEN)
				fail("cmd %u: sense_len %u > %u", cmd->id,
				     cmd->sense_len, TL_SENSE_LEN);
			check_sense(cmd->sense, cmd->sense_len, "handler");
		}
		if (cmd->read_len > cmd->data_len)
			fail("cmd %u (op %#x): read_len %u exceeds the %llu-byte "
			     "buffer", cmd->id, cmd->opcode, cmd->read_len,
			     (unsigned long long)cmd->data_len);
	}
	rc = __real_ring_complete(r, cmd);
	if (checking && rc)
		fail("ring_complete refused cmd %u (not in flight)", cmd->id);
	return rc;
}

/* ---- Lua line coverage ---- */

/*
 * ffi_sim.c's struct tl_simdev, mirrored here to reach the worker's
 * lua_State (there is no accessor).  Checked against what we know before
 * it is trusted; if bindings/ffi_sim.c changes, coverage is just off.
 */
struct simdev_view {
	struct sim *sim;
	struct tl_worker *w;
	struct tl_dev *dev;
};

/*
 * TL_FUZZ_LUALINES=FILE: also remember every Lua line run and write them
 * out at exit ("source<TAB>line"), for docs/fuzzing.md's coverage table.
 */
#define LINESET (1u << 17)

static struct line_hit {
	const char *src;
	int line;
} *lineset;
static const char *lines_path;

static NOCOV void lines_write(void)
{
	FILE *f = fopen(lines_path, "w");
	uint32_t i;

	if (!f)
		return;
	for (i = 0; i < LINESET; i++)
		if (lineset[i].src)
			fprintf(f, "%s\t%d\n", lineset[i].src, lineset[i].line);
	fclose(f);
}

static NOCOV void line_remember(const char *src, int line, uint32_t h)
{
	uint32_t i, n;

	for (i = h & (LINESET - 1), n = 0; n < LINESET;
	     i = (i + 1) & (LINESET - 1), n++) {
		if (!lineset[i].src) {
			lineset[i].src = src;
			lineset[i].line = line;
			return;
		}
		if (lineset[i].src == src && lineset[i].line == line)
			return;
	}
}

static NOCOV void line_hook(lua_State *L, lua_Debug *ar)
{
	uint32_t h;

	if (!lua_getinfo(L, "S", ar))
		return;
	/* Source strings are interned: the pointer names the file. */
	h = (uint32_t)(uintptr_t)ar->source * 2654435761u ^
	    (uint32_t)ar->currentline * 40503u;
	extra_cov[(h ^ h >> 16) & (sizeof(extra_cov) - 1)]++;
	if (lineset)
		line_remember(ar->source, ar->currentline, h ^ h >> 16);
}

static NOCOV void hook_lua(struct fz_dev *d)
{
	struct simdev_view *v = (struct simdev_view *)d->sd;

	if (!v->w || !v->dev || v->dev->w != v->w || !v->w->L ||
	    v->dev->info.block_size != d->block_size) {
		fprintf(stderr, "fuzz_cdb: struct tl_simdev changed; no Lua "
			"coverage\n");
		return;
	}
	lua_sethook(v->w->L, line_hook, LUA_MASKLINE, 0);
}

static NOCOV void outcome_cov(const struct pending *p, uint8_t st,
			      const uint8_t *sense)
{
	uint32_t h = p->cdb[0] * 16777619u ^ (p->cdb[1] & 0x1f) * 131u ^
		     st * 8191u;

	if (st == TL_STATUS_CHECK_CONDITION)
		h ^= (uint32_t)(sense[0] == 0x72 ? sense[1] : sense[2]) << 20 ^
		     (uint32_t)(sense[0] == 0x72 ? sense[2] : sense[12]) << 8 ^
		     (uint32_t)(sense[0] == 0x72 ? sense[3] : sense[13]) << 14;
	h *= 2654435761u;
	extra_cov[(h >> 16) & (sizeof(extra_cov) - 1)]++;
}

/* ---- devices ---- */

static uint32_t be16(const uint8_t *p)
{
	return (uint32_t)p[0] << 8 | p[1];
}

static uint32_t be24(const uint8_t *p)
{
	return (uint32_t)p[0] << 16 | be16(p + 1);
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | be24(p + 1);
}

static uint8_t simple_dir(const uint8_t *cdb, unsigned int len, int dir,
			  uint32_t xfer, uint8_t *in_buf);

/* The NAA designator in INQUIRY VPD 0x83 (binary, LU, NAA, 16 bytes). */
static void learn_naa(struct fz_dev *d)
{
	static const uint8_t inq[6] = { 0x12, 1, 0x83, 0, 255, 0 };
	uint8_t p[255] = { 0 };
	unsigned int at, end;

	cur = d;
	if (simple_dir(inq, 6, 2, sizeof(p), p) != TL_STATUS_GOOD)
		fail("INQUIRY VPD 0x83 failed");
	end = 4u + be16(p + 2);
	for (at = 4; at + 4 <= end && at + 4 <= sizeof(p); at += 4u + p[at + 3])
		if ((p[at] & 0x0f) == 1 && (p[at + 1] & 0x3f) == 3 &&
		    p[at + 3] == 16 && at + 20 <= sizeof(p)) {
			memcpy(d->naa, p + at + 4, 16);
			break;
		}
	cur = NULL;
}

static void dev_open(struct fz_dev *d)
{
	struct tl_simdev_opts o = {
		.name = d->name,
		.handler = d->handler,
		.handler_dirs = d->dirs,
		.config = d->config,
		.size = d->size,
		.block_size = d->block_size,
		.caps = d->caps,
		.ring_bytes = 1u << 20,
		.data_bytes = 16u << 20,
		.write_cache = d->write_cache,
	};
	char err[1024];

	d->sd = tl_ffi_simdev_new(&o, err, sizeof(err));
	if (!d->sd) {
		fprintf(stderr, "fuzz_cdb: cannot make device %s: %s\n",
			d->name, err);
		abort();
	}
	d->cur_size = d->size;
	if (luacov)
		hook_lua(d);
	learn_naa(d);
}

/* ---- the kernel's side of one command ---- */

/* Group code length (SPC-4 4.2.5); 0x7f: 8 + ADDITIONAL CDB LENGTH. */
static unsigned int cdb_len_of(uint8_t op)
{
	static const uint8_t by_group[8] = { 6, 10, 10, 12, 16, 12, 10, 10 };

	return by_group[op >> 5];
}

/*
 * The transfer the kernel would set up for this CDB (direction, bytes),
 * from the CDB's transfer or allocation length, as an initiator would.
 */
static void cdb_xfer(const uint8_t *c, unsigned int n, uint32_t bs, int *dir,
		     uint64_t *len)
{
	uint8_t b[32] = { 0 };
	uint8_t bytchk;

	memcpy(b, c, n < sizeof(b) ? n : sizeof(b));
	*dir = 0;
	*len = 0;
	switch (b[0]) {
	case 0x03: *dir = 2; *len = b[4]; break;			/* REQUEST SENSE */
	case 0x12: *dir = 2; *len = be16(b + 3); break;			/* INQUIRY */
	case 0x1a: *dir = 2; *len = b[4]; break;			/* MODE SENSE(6) */
	case 0x5a: *dir = 2; *len = be16(b + 7); break;			/* MODE SENSE(10) */
	case 0x15: *dir = 1; *len = b[4]; break;			/* MODE SELECT(6) */
	case 0x55: *dir = 1; *len = be16(b + 7); break;			/* MODE SELECT(10) */
	case 0x25: *dir = 2; *len = 8; break;				/* READ CAPACITY(10) */
	case 0x9e: *dir = 2; *len = be32(b + 10); break;		/* SERVICE ACTION IN(16) */
	case 0xa3: *dir = 2; *len = be32(b + 6); break;			/* MAINTENANCE IN */
	case 0xa0: *dir = 2; *len = be32(b + 6); break;			/* REPORT LUNS */
	case 0x08: *dir = 2; *len = (uint64_t)(b[4] ? b[4] : 256) * bs; break;
	case 0x0a: *dir = 1; *len = (uint64_t)(b[4] ? b[4] : 256) * bs; break;
	case 0x28: *dir = 2; *len = (uint64_t)be16(b + 7) * bs; break;
	case 0xa8: *dir = 2; *len = (uint64_t)be32(b + 6) * bs; break;
	case 0x88: *dir = 2; *len = (uint64_t)be32(b + 10) * bs; break;
	case 0x2a: case 0x2e: *dir = 1; *len = (uint64_t)be16(b + 7) * bs; break;
	case 0xaa: case 0xae: *dir = 1; *len = (uint64_t)be32(b + 6) * bs; break;
	case 0x8a: case 0x8e: *dir = 1; *len = (uint64_t)be32(b + 10) * bs; break;
	case 0x2f: case 0xaf: case 0x8f:				/* VERIFY */
		bytchk = (b[1] >> 1) & 3;
		*len = b[0] == 0x2f ? be16(b + 7) : b[0] == 0xaf ? be32(b + 6) :
								 be32(b + 10);
		*len = bytchk == 1 ? *len * bs : bytchk == 3 ? bs : 0;
		*dir = *len ? 1 : 0;
		break;
	case 0x41: *dir = 1; *len = bs; break;				/* WRITE SAME(10) */
	case 0x93: *dir = b[1] & 1 ? 0 : 1; *len = b[1] & 1 ? 0 : bs; break;
	case 0x89: *dir = 1; *len = 2ull * b[13] * bs; break;		/* COMPARE AND WRITE */
	case 0x42: *dir = 1; *len = be16(b + 7); break;			/* UNMAP */
	case 0x83: *dir = 1; *len = be32(b + 10); break;		/* EXTENDED COPY */
	case 0x84: *dir = 2; *len = be32(b + 10); break;		/* RECEIVE COPY */
	case 0x5e: *dir = 2; *len = be16(b + 7); break;			/* PR IN */
	case 0x5f: *dir = 1; *len = be32(b + 5); break;			/* PR OUT */
	case 0x4d: *dir = 2; *len = be16(b + 7); break;			/* LOG SENSE */
	case 0x4c: *dir = 1; *len = be16(b + 7); break;			/* LOG SELECT */
	case 0x3c: *dir = 2; *len = be24(b + 6); break;			/* READ BUFFER */
	case 0x3b: *dir = 1; *len = be24(b + 6); break;			/* WRITE BUFFER */
	case 0x1c: *dir = 2; *len = be16(b + 3); break;			/* RECEIVE DIAG */
	case 0x1d: *dir = 1; *len = be16(b + 3); break;			/* SEND DIAG */
	default: break;
	}
	if (!*len)
		*dir = 0;
}

/* The payload (u16 length, bytes), repeated to fill len bytes of out_buf. */
static void fill_out(struct fin *in, uint32_t len)
{
	uint32_t plen = fin_u16(in), got, i;

	got = (uint32_t)fin_bytes(in, out_buf, plen < MAX_XFER ? plen : MAX_XFER);
	for (i = got; i < plen && in->n; i++)
		fin_u8(in);
	if (!got) {
		out_buf[0] = 0;
		got = 1;
	}
	for (i = got; i < len; i++)
		out_buf[i] = out_buf[i % got];
}

/* Check one finished command as the initiator sees it. */
static void check_result(const struct pending *p,
			 const struct tl_sim_result *res)
{
	char who[64];

	snprintf(who, sizeof(who), "op %#x result", p->cdb[0]);
	note("  id %d op %#x -> status %#x sense %02x/%02x/%02x read_len %u%s\n",
	     p->id, p->cdb[0], res->status, res->sense[0] == 0x72 ?
	     res->sense[1] & 15 : res->sense[2] & 15,
	     res->sense[0] == 0x72 ? res->sense[2] : res->sense[12],
	     res->sense[0] == 0x72 ? res->sense[3] : res->sense[13],
	     res->read_len, res->read_len_valid ? " (READ_LEN)" : "");
	if (!status_ok(res->status) &&
	    !(p->may_abort && res->status == TL_STATUS_TASK_ABORTED))
		fail("%s: status %#x", who, res->status);
	if (res->read_len > res->data_len ||
	    (res->read_len_valid &&
	     res->residual != res->data_len - res->read_len))
		fail("%s: read_len %u residual %u for %u bytes", who,
		     res->read_len, res->residual, res->data_len);
	if (res->status == TL_STATUS_CHECK_CONDITION) {
		unsigned int end = check_sense(res->sense, TL_SENSE_LEN, who);

		for (unsigned int i = end < 18 ? 18 : end; i < TL_SENSE_LEN; i++)
			if (res->sense[i])
				fail("%s: sense byte %u set past the end (%u)",
				     who, i, end);
	}
	outcome_cov(p, res->status, res->sense);
}

/* Publish what is queued and run the worker until all of it is done. */
static void run_batch(void)
{
	unsigned int i, left, iter;

	tl_ffi_simdev_publish(cur->sd);
	for (iter = 0;; iter++) {
		int rc = tl_ffi_simdev_run(cur->sd, iter < 64 ? 0 : 1);

		if (rc < 0)
			fail("the simulator says the ring is broken");
		for (i = 0, left = 0; i < nbatch; i++) {
			const struct tl_sim_result *res;

			if (batch[i].id <= 0)
				continue;
			res = tl_ffi_simdev_result(cur->sd,
						   (uint16_t)batch[i].id);
			if (!res || !res->done) {
				left++;
				continue;
			}
			check_result(&batch[i], res);
			tl_ffi_simdev_release(cur->sd, (uint16_t)batch[i].id);
			batch[i].id = 0;
		}
		if (!left)
			break;
		if (iter > 3000)
			fail("%u command(s) still in flight after 3 s", left);
	}
	if (tl_ffi_simdev_inflight(cur->sd))
		fail("%u command(s) in flight after the batch",
		     tl_ffi_simdev_inflight(cur->sd));
	nbatch = 0;
}

/* EXTENDED COPY: an all-zero NAA in an 0xE4 CSCD becomes the device's. */
static void name_ourselves(uint32_t len)
{
	static const uint8_t zero[16];
	uint32_t cscd_len, at;

	if (len < 16)
		return;
	cscd_len = be16(out_buf + 2);
	for (at = 16; at + 32 <= len && at < 16 + cscd_len; at += 32)
		if (out_buf[at] == 0xe4 && out_buf[at + 7] == 16 &&
		    !memcmp(out_buf + at + 8, zero, 16))
			memcpy(out_buf + at + 8, cur->naa, 16);
}

static void queue_cmd(const uint8_t *cdb, unsigned int cdb_len, int dir,
		      uint32_t len)
{
	struct pending *p = &batch[nbatch];
	int id;

	if (cdb[0] == 0x83 && dir == 1)
		name_ourselves(len);
	id = tl_ffi_simdev_prepare(cur->sd, cdb, cdb_len, dir,
				   dir == 1 ? out_buf : NULL, len);
	note("cmd op %#x len %u dir %d len %u -> id %d\n", cdb[0], cdb_len,
	     dir, len, id);
	if (id < 0)
		fail("tl_ffi_simdev_prepare refused good arguments");
	if (!id)
		return;		/* no room: the kernel would wait */
	memset(p, 0, sizeof(*p));
	p->id = id;
	p->cdb_len = (uint16_t)(cdb_len < 16 ? cdb_len : 16);
	memcpy(p->cdb, cdb, p->cdb_len);
	p->dir = dir;
	p->len = len;
	nbatch++;
	ncmds++;
}

/* Send a command of our own and wait for it; returns its status. */
static uint8_t simple_dir(const uint8_t *cdb, unsigned int len, int dir,
			  uint32_t xfer, uint8_t *in_buf)
{
	int id = tl_ffi_simdev_prepare(cur->sd, cdb, len, dir, NULL, xfer);
	const struct tl_sim_result *res;
	uint8_t st;
	int iter;

	if (id <= 0)
		fail("cannot queue a set-up command");
	tl_ffi_simdev_publish(cur->sd);
	for (iter = 0; iter < 3000; iter++) {
		if (tl_ffi_simdev_run(cur->sd, iter < 64 ? 0 : 1) < 0)
			fail("ring broken during set-up");
		res = tl_ffi_simdev_result(cur->sd, (uint16_t)id);
		if (res && res->done) {
			st = res->status;
			if (in_buf && res->data)
				memcpy(in_buf, res->data, res->read_len < xfer ?
				       res->read_len : xfer);
			tl_ffi_simdev_release(cur->sd, (uint16_t)id);
			return st;
		}
	}
	fail("set-up command %#x never completed", cdb[0]);
}

static uint8_t simple(const uint8_t *cdb, unsigned int len)
{
	return simple_dir(cdb, len, 0, 0, NULL);
}

/* Make the device look the same at the start of every input. */
static void prologue(void)
{
	static const uint8_t tur[6] = { 0x00 }, start[6] = { 0x1b, 0, 0, 0, 1 };
	int i;

	if (cur->cur_size != cur->size) {
		tl_ffi_simdev_resize(cur->sd, cur->size);
		cur->cur_size = cur->size;
	}
	tl_ffi_simdev_tmr(cur->sd, 5 /* LUN RESET */, NULL, 0);
	tl_ffi_simdev_run(cur->sd, 0);
	for (i = 0; i < 8 && simple(tur, 6) != TL_STATUS_GOOD; i++)
		;
	simple(start, 6);
	for (i = 0; i < 8 && simple(tur, 6) != TL_STATUS_GOOD; i++)
		;
}

static void special(uint8_t what, uint32_t arg)
{
	uint16_t ids[MAX_BATCH];
	unsigned int i, n = 0;
	uint64_t blocks = cur->size / cur->block_size;

	switch (what) {
	case 0:		/* LUN RESET: the kernel names what it aborts */
	case 1:		/* ABORT TASK */
		for (i = 0; i < nbatch; i++) {
			if (what == 1 && !(arg >> i & 1))
				continue;
			batch[i].may_abort = true;
			ids[n++] = (uint16_t)batch[i].id;
		}
		note("tmr %s with %u ids\n", what ? "ABORT TASK" : "LUN RESET",
		     n);
		tl_ffi_simdev_tmr(cur->sd, what ? 1 : 5, ids, n);
		run_batch();
		break;
	case 2:		/* the capacity changes under the initiator */
		run_batch();
		cur->cur_size = (arg % (2 * blocks) + 1) * cur->block_size;
		note("resize to %llu\n", (unsigned long long)cur->cur_size);
		tl_ffi_simdev_resize(cur->sd, cur->cur_size);
		break;
	case 3:		/* time passes */
		run_batch();
		tl_ffi_simdev_run(cur->sd, (int)(arg % 20));
		break;
	default:
		break;
	}
}

static void item(struct fin *in)
{
	uint8_t ctl = fin_u8(in), lsel, cdb[264];
	unsigned int cdb_len;
	uint64_t want = 0;
	uint32_t len = 0;
	int dir;

	if (ctl >= 0xf0) {
		uint32_t arg = fin_u32(in);

		special(ctl & 0x0f, arg);
		return;
	}
	lsel = fin_u8(in);
	if (lsel) {
		cdb_len = lsel;
		fin_bytes(in, cdb, cdb_len);
	} else {
		cdb[0] = fin_u8(in);
		if (cdb[0] == 0x7f) {
			fin_bytes(in, cdb + 1, 7);
			cdb_len = 8u + cdb[7];
			fin_bytes(in, cdb + 8, cdb_len - 8);
		} else {
			cdb_len = cdb_len_of(cdb[0]);
			fin_bytes(in, cdb + 1, cdb_len - 1);
		}
	}
	dir = ctl & 3;
	if (dir == 1 || dir == 2) {
		uint8_t l3[3];

		fin_bytes(in, l3, 3);
		len = (uint32_t)l3[0] | (uint32_t)l3[1] << 8 |
		      (uint32_t)l3[2] << 16;
		if (len > MAX_XFER)
			len = MAX_XFER;
	} else if (dir == 3) {
		cdb_xfer(cdb, cdb_len, cur->block_size, &dir, &want);
		len = (uint32_t)(want > MAX_XFER ? MAX_XFER : want);
	}
	if (!len)
		dir = 0;
	/* Directions 1 and 3 always carry a payload, used or not. */
	if ((ctl & 3) == 1 || (ctl & 3) == 3)
		fill_out(in, dir == 1 ? len : 0);
	if (nbatch == MAX_BATCH)
		run_batch();
	queue_cmd(cdb, cdb_len, dir, len);
	if (!(ctl & 4))
		run_batch();
}

NOCOV int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *v = getenv("TL_FUZZ_VERBOSE"), *c = getenv("TL_FUZZ_LUACOV");
	int i;

	verbose = v && *v && *v != '0';
	luacov = !(&tl_fuzz_replaying && tl_fuzz_replaying);
	if (c && *c)
		luacov = *c != '0';
	if (!verbose)
		tl_log_threshold = TL_LOG_WARN;
	lines_path = getenv("TL_FUZZ_LUALINES");
	if (lines_path && *lines_path) {
		lineset = calloc(LINESET, sizeof(*lineset));
		luacov = lineset != NULL;
		atexit(lines_write);
	}
	for (i = 0; i < NDEVS; i++)
		dev_open(&devs[i]);
	checking = true;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fin in = { data, size };
	unsigned int n;

	if (!devs[0].sd)
		LLVMFuzzerInitialize(NULL, NULL);
	cur = &devs[fin_u8(&in) % NDEVS];
	nbatch = 0;
	prologue();
	for (n = 0; in.n && n < MAX_ITEMS; n++)
		item(&in);
	run_batch();
	cur = NULL;
	return 0;
}
