// SPDX-License-Identifier: MIT
/*
 * fuzz_netlink.c - arbitrary TCM-USER generic netlink messages.
 *
 * The input is one datagram as the event socket would receive it: netlink
 * messages back to back (struct nlmsghdr, struct genlmsghdr, attributes).
 * libnl walks a datagram with nlmsg_ok()/nlmsg_next() and hands each
 * message, nlmsg_len bytes, to our callback; the harness does the same and
 * gives each message, copied to just before a guard page, to
 * tl_nl_parse() (host/netlink.c), then does what the daemon does with an
 * event's strings: tl_uio_parse_name() on the device name (which picks the
 * handler) and the dev_config check.  The whole input is also given to
 * tl_nl_parse() as one message, with any nlmsg_len.
 *
 * Checked: nothing is read outside the message: libnl is not built with
 * ASan, so each message is copied to the end of a mapping followed by a
 * PROT_NONE page, and a read past it faults (ASan and valgrind see the
 * rest); an event is one of ADDED, REMOVED or
 * RECONFIG_DEVICE with a device name, and its strings end inside the
 * message; -EINVAL only for an event without a device name or minor; a
 * device name the daemon accepts names a handler tl_valid_handler_name()
 * accepts.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <netlink/genl/genl.h>
#include <netlink/msg.h>

#include "config.h"
#include "log.h"
#include "netlink.h"
#include "tcmu_uapi.h"
#include "uio.h"

static int verbose;

static void fail(const char *what, const char *detail)
{
	fprintf(stderr, "fuzz_netlink: %s: %s\n", what, detail ? detail : "");
	abort();
}

/* s must be a NUL-terminated string inside [buf, buf + len). */
static void check_inside(const char *s, const void *buf, size_t len,
			 const char *what)
{
	const char *b = buf;

	if (s < b || s >= b + len || !memchr(s, '\0', (size_t)(b + len - s)))
		fail("string outside the message", what);
}

#define GUARDED_MAX (1u << 20)

/*
 * A copy of len bytes that ends (give or take the 0-3 bytes that keep it
 * 4-byte aligned, as netlink data is) where a PROT_NONE page begins.
 */
static void *guarded_copy(const void *src, size_t len)
{
	static uint8_t *area;
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	uint8_t *dst;

	if (!area) {
		area = mmap(NULL, GUARDED_MAX + page, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (area == MAP_FAILED ||
		    mprotect(area + GUARDED_MAX, page, PROT_NONE))
			abort();
	}
	if (len > GUARDED_MAX)
		return NULL;
	dst = area + GUARDED_MAX - ((len + 3) & ~(size_t)3);
	memcpy(dst, src, len);
	return dst;
}

static void parse_one(const void *buf, size_t len)
{
	struct tl_nl_event ev;
	struct tl_uio_name n;
	const char *why;
	int rc;

	rc = tl_nl_parse(buf, len, &ev);
	if (verbose)
		fprintf(stderr, "fuzz_netlink: %zu bytes: rc %d cmd %s\n", len,
			rc, rc == -ENOMSG ? "-" : tl_nl_cmd_name(ev.cmd));
	if (rc == -ENOMSG)
		return;
	if (ev.cmd != TCMU_CMD_ADDED_DEVICE &&
	    ev.cmd != TCMU_CMD_REMOVED_DEVICE &&
	    ev.cmd != TCMU_CMD_RECONFIG_DEVICE)
		fail("not an event passed on", tl_nl_cmd_name(ev.cmd));
	if (rc == -EINVAL) {
		if (ev.device && ev.dev_cfg)
			fail("-EINVAL for a complete event", ev.device);
		return;
	}
	if (rc)
		fail("unexpected return", strerror(-rc));
	if (!ev.device)
		fail("event without a device", NULL);
	check_inside(ev.device, buf, len, "device");
	if (ev.dev_cfg)
		check_inside(ev.dev_cfg, buf, len, "dev_config");
	if (tl_uio_parse_name(ev.device, &n, &why) == 0) {
		if (!tl_valid_handler_name(n.subtype) ||
		    strpbrk(n.subtype, "/.") || !n.dev[0])
			fail("device name accepted with a bad handler",
			     ev.device);
	} else if (!why || !*why) {
		fail("name refused without a reason", ev.device);
	}
	if (verbose)
		fprintf(stderr, "fuzz_netlink:   %s uio%u id %u cfg %s\n",
			ev.device, ev.minor, ev.dev_id,
			ev.dev_cfg ? ev.dev_cfg : "-");
}

/* Linked with --wrap=tl_log: format every line, print only if asked. */
void __wrap_tl_log(enum tl_log_level level, const char *fmt, ...)
{
	char line[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (verbose)
		fprintf(stderr, "log %d: %s\n", (int)level, line);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	verbose = getenv("TL_FUZZ_VERBOSE") != NULL;
	/* Every log line is formatted (hostile strings reach tl_log()). */
	tl_log_threshold = TL_LOG_DEBUG;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct nlmsghdr *hdr = (const struct nlmsghdr *)data;
	int remaining = size > INT32_MAX ? INT32_MAX : (int)size;
	void *whole;

	if (!tl_log_threshold)
		LLVMFuzzerInitialize(NULL, NULL);
	/* As one message, whatever its header claims. */
	whole = size ? guarded_copy(data, size) : NULL;
	if (whole)
		parse_one(whole, size);
	/* As libnl receives a datagram (aligned: it is, in its buffer). */
	if ((uintptr_t)data % NLMSG_ALIGNTO)
		return 0;
	while (nlmsg_ok(hdr, remaining)) {
		void *msg = guarded_copy(hdr, hdr->nlmsg_len);

		if (msg)
			parse_one(msg, hdr->nlmsg_len);
		hdr = nlmsg_next((struct nlmsghdr *)hdr, &remaining);
	}
	return 0;
}
