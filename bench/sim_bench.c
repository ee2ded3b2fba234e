// SPDX-License-Identifier: MIT
/*
 * sim_bench.c - the daemon-side cost of a command, on the simulator.
 *
 * Keeps QD commands in flight against one device and times only the
 * daemon's side (tl_worker_run_once: fetch, dispatch, handler, complete,
 * publish), not the simulated kernel.  Under callgrind, run with
 * --toggle-collect=tl_worker_run_once to count the same instructions.
 *
 *   tl-sim-bench HANDLER [CONFIG] [-n COMMANDS] [-q DEPTH] [-b BYTES] [-w]
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sim.h"
#include "tl_abi.h"
#include "worker.h"

struct tl_simdev {		/* as in bindings/ffi_sim.c */
	struct sim *sim;
	struct tl_worker *w;
	struct tl_dev *dev;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void cdb10(uint8_t *c, uint8_t op, uint32_t lba, uint16_t n)
{
	memset(c, 0, 10);
	c[0] = op;
	c[2] = lba >> 24;
	c[3] = lba >> 16;
	c[4] = lba >> 8;
	c[5] = lba;
	c[7] = n >> 8;
	c[8] = n;
}

int main(int argc, char **argv)
{
	struct tl_simdev_opts o = { .name = "bench", .size = 256u << 20,
				    .block_size = 512, .caps = 7,
				    .data_bytes = 256u << 20 };
	long total = 200000, qd = 32, bytes = 4096, done = 0, sent = 0;
	uint64_t daemon_ns = 0, t0;
	bool writes = false;
	struct tl_simdev *sd;
	char err[512];
	uint8_t *payload;
	int opt;

	while ((opt = getopt(argc, argv, "n:q:b:ws")) != -1) {
		switch (opt) {
		case 'n': total = atol(optarg); break;
		case 'q': qd = atol(optarg); break;
		case 'b': bytes = atol(optarg); break;
		case 'w': writes = true; break;
		case 's': o.no_uring = 1; break;
		default: goto usage;
		}
	}
	if (optind >= argc)
		goto usage;
	o.handler = argv[optind];
	o.config = optind + 1 < argc ? argv[optind + 1] : NULL;
	o.handler_dirs = getenv("TL_BENCH_HANDLER_DIRS");
	sd = tl_ffi_simdev_new(&o, err, sizeof(err));
	if (!sd) {
		fprintf(stderr, "sim_bench: %s\n", err);
		return 1;
	}
	payload = calloc(1, (size_t)bytes);
	uint16_t n = (uint16_t)(bytes / 512);
	uint32_t span = (uint32_t)(o.size / 512 / n);

	while (done < total) {
		while (sent - done < qd && sent < total) {
			uint8_t cdb[10];

			cdb10(cdb, writes ? 0x2a : 0x28,
			      (uint32_t)((sent * 7919) % span) * n, n);
			if (sim_prepare(sd->sim, cdb, 10,
					writes ? SIM_DIR_TO_DEV : SIM_DIR_FROM_DEV,
					writes ? payload : NULL, (uint32_t)bytes,
					NULL) <= 0)
				break;
			sent++;
		}
		sim_publish(sd->sim);
		t0 = now_ns();
		tl_worker_run_once(sd->w, 0);
		daemon_ns += now_ns() - t0;
		int got = sim_reap(sd->sim);

		if (got < 0) {
			fprintf(stderr, "sim_bench: ring broken\n");
			return 1;
		}
		for (uint32_t id = 1; id < 65536 && got; id++) {
			const struct tl_sim_result *r = sim_result(sd->sim, id);

			if (r && r->done) {
				if (r->status) {
					fprintf(stderr, "status %u\n", r->status);
					return 1;
				}
				sim_release(sd->sim, id);
				got--;
				done++;
			}
		}
	}
	printf("%s: %ld x %ld-byte %s at QD%ld: %.0f ns/command (daemon side)\n",
	       o.handler, total, bytes, writes ? "WRITE" : "READ", qd,
	       (double)daemon_ns / (double)total);
	tl_ffi_simdev_free(sd);
	free(payload);
	return 0;
usage:
	fprintf(stderr,
		"usage: tl-sim-bench HANDLER [CONFIG] [-n N] [-q QD] [-b BYTES] [-w] [-s]\n"
		"  -w writes instead of reads; -s the fast path without io_uring\n");
	return 2;
}
