/* SPDX-License-Identifier: MIT */
/*
 * control.h - the control socket: line-delimited JSON on a Unix socket.
 *
 * Requests are one JSON object per line, {"cmd": NAME, ...}; every reply
 * is one JSON object per line with "ok": true or "ok": false and "error".
 *   status                      daemon facts
 *   devices                     the devices served
 *   stats [dev]                 counters and latency percentiles
 *   metrics                     the same as Prometheus text ("text")
 *   reload                      reload handlers (and the config)
 *   log-level level=LEVEL       change the log level
 *   trace dev=NAME              stream {"trace": ...} lines until the
 *                               client sends {"cmd":"trace-stop"} or leaves
 * The socket is created mode 0600 in a directory only root (or a sticky
 * bit) protects, and every client is checked with SO_PEERCRED: only root
 * (or the daemon's own user) may talk to it; others get an error reply
 * and a log line (docs/security.md).  A client
 * that floods or stops reading is cut off; it can never stall I/O, which
 * runs on the workers, not on this thread.
 */
#ifndef TL_CONTROL_H
#define TL_CONTROL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <ev.h>

struct tl_dev;
struct tl_worker;

/* What the control socket needs to know of one device. */
struct tl_ctl_dev {
	const char *name;
	const char *handler;
	int worker;
	struct tl_dev *dev;
};

typedef void (*tl_ctl_dev_fn)(void *arg, const struct tl_ctl_dev *d);

/* The daemon answers these; all are called on the control's loop thread. */
struct tl_control_ops {
	void *ctx;
	void (*each_device)(void *ctx, tl_ctl_dev_fn fn, void *arg);
	/* Returns 0, or -1 with a message. */
	int (*reload)(void *ctx, char *err, size_t errlen);
	unsigned int (*workers)(void *ctx);
	/* Worker i's last watchdog or memory-limit report, or NULL/"". */
	const char *(*problem)(void *ctx, unsigned int i);
};

struct tl_control;

struct tl_control *tl_control_start(struct ev_loop *loop, const char *path,
				    const struct tl_control_ops *ops,
				    char *err, size_t errlen);
/*
 * May the peer of the connected socket fd use the control socket?  Root
 * and the user self may.  who gets "pid P, uid U, gid G" for the log.
 */
bool tl_control_peer_allowed(int fd, uid_t self, char *who, size_t len);

/* A device is about to go away: stop any trace of it. */
void tl_control_forget_dev(struct tl_control *c, struct tl_dev *dev);
void tl_control_stop(struct tl_control *c);

#endif /* TL_CONTROL_H */
