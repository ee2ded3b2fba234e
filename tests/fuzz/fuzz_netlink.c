// SPDX-License-Identifier: MIT
/*
 * fuzz_netlink.c - arbitrary TCM-USER generic netlink messages.
 *
 * The input is one datagram as the event socket would receive it: netlink
 * messages back to back (struct nlmsghdr, struct genlmsghdr, attributes).
 * libnl walks a datagram with nlmsg_ok()/nlmsg_next() and hands each
 * message, nlmsg_len bytes, to our callback; the harness does the same and
 * gives each message, copied into a buffer of exactly that size, to
 * tl_nl_parse() (host/netlink.c), then does what the daemon does with an
 * event's strings: tl_uio_parse_name() on the device name (which picks the
 * handler) and the dev_config check.  The whole input is also given to
 * tl_nl_parse() as one message, with any nlmsg_len.
 *
 * Checked: nothing is read outside the message (ASan in the libFuzzer
 * build; valgrind on the replay); an event is one of ADDED, REMOVED or
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

	if (!tl_log_threshold)
		LLVMFuzzerInitialize(NULL, NULL);
	/* As one message, whatever its header claims. */
	if (size) {
		void *copy = malloc(size);

		memcpy(copy, data, size);
		parse_one(copy, size);
		free(copy);
	}
	/* As libnl receives a datagram (aligned: it is, in its buffer). */
	if ((uintptr_t)data % NLMSG_ALIGNTO)
		return 0;
	while (nlmsg_ok(hdr, remaining)) {
		void *msg = malloc(hdr->nlmsg_len);

		memcpy(msg, hdr, hdr->nlmsg_len);
		parse_one(msg, hdr->nlmsg_len);
		free(msg);
		hdr = nlmsg_next((struct nlmsghdr *)hdr, &remaining);
	}
	return 0;
}
