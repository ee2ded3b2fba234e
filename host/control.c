// SPDX-License-Identifier: MIT
/*
 * control.c - the control socket server, on the daemon's main loop.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "control.h"
#include "device.h"
#include "json.h"
#include "log.h"
#include "stats.h"
#include "trace.h"

#define MAX_CLIENTS 32
#define LINE_MAX_BYTES 4096		/* a longer request is an error */
#define OUT_MAX_BYTES (4u << 20)	/* a client this far behind is cut off */
#define TRACE_POLL_S 0.05

struct client {
	struct tl_control *c;
	int fd;
	ev_io rio, wio;
	char in[LINE_MAX_BYTES];
	size_t in_len;
	struct jbuf out;
	size_t out_off;
	struct tl_dev *tracing;	/* NULL: not tracing */
	bool closing;		/* close once the output is flushed */
};

struct tl_control {
	struct ev_loop *loop;
	struct tl_control_ops ops;
	char *path;
	int fd;
	ev_io accept_io;
	ev_timer trace_timer;
	struct client *clients[MAX_CLIENTS];
	time_t started;
};

static void client_free(struct client *cl)
{
	struct tl_control *c = cl->c;

	if (cl->tracing && cl->tracing->trace)
		__atomic_store_n(&cl->tracing->trace->on, 0, __ATOMIC_RELAXED);
	ev_io_stop(c->loop, &cl->rio);
	ev_io_stop(c->loop, &cl->wio);
	close(cl->fd);
	jb_free(&cl->out);
	for (int i = 0; i < MAX_CLIENTS; i++)
		if (c->clients[i] == cl)
			c->clients[i] = NULL;
	free(cl);
}

/* Queue bytes for the client; false if it had to be cut off. */
static bool client_send(struct client *cl, const char *s, size_t n)
{
	if (cl->out.len - cl->out_off + n > OUT_MAX_BYTES) {
		tl_warn("control: a client is not reading; disconnecting it");
		client_free(cl);
		return false;
	}
	jb_raw(&cl->out, s);
	if (cl->out.oom) {
		client_free(cl);
		return false;
	}
	ev_io_start(cl->c->loop, &cl->wio);
	return true;
}

static bool reply(struct client *cl, struct jbuf *b)
{
	bool ok;

	jb_raw(b, "\n");
	ok = !b->oom && client_send(cl, b->s, b->len);
	jb_free(b);
	return ok;
}

static bool reply_error(struct client *cl, const char *msg)
{
	struct jbuf b;

	jb_init(&b);
	jb_open(&b, '{');
	jb_kbool(&b, "ok", false);
	jb_kstr(&b, "error", msg);
	jb_close(&b, '}');
	return reply(cl, &b);
}

/* ---- the commands ---- */

struct find_arg {
	const char *name;
	struct tl_ctl_dev found;
	bool ok;
};

static void find_fn(void *arg, const struct tl_ctl_dev *d)
{
	struct find_arg *fa = arg;

	if (!fa->ok && !strcmp(d->name, fa->name)) {
		fa->found = *d;
		fa->ok = true;
	}
}

static bool find_dev(struct tl_control *c, const char *name,
		     struct tl_ctl_dev *out)
{
	struct find_arg fa = { .name = name };

	c->ops.each_device(c->ops.ctx, find_fn, &fa);
	*out = fa.found;
	return fa.ok;
}

static void count_fn(void *arg, const struct tl_ctl_dev *d)
{
	(*(unsigned int *)arg)++;
}

static bool cmd_status(struct client *cl)
{
	struct tl_control *c = cl->c;
	unsigned int ndev = 0;
	struct jbuf b;

	c->ops.each_device(c->ops.ctx, count_fn, &ndev);
	jb_init(&b);
	jb_open(&b, '{');
	jb_kbool(&b, "ok", true);
	jb_kstr(&b, "version", TL_VERSION);
	jb_ku64(&b, "pid", (uint64_t)getpid());
	jb_ku64(&b, "uptime_s", (uint64_t)(time(NULL) - c->started));
	jb_ku64(&b, "workers", c->ops.workers(c->ops.ctx));
	jb_ku64(&b, "devices", ndev);
	jb_kstr(&b, "log_level", tl_log_level_name(tl_log_threshold));
	/* Handlers the watchdog or the memory limit stopped. */
	jb_key(&b, "problems");
	jb_open(&b, '[');
	for (unsigned int i = 0; c->ops.problem && i < c->ops.workers(c->ops.ctx);
	     i++) {
		const char *p = c->ops.problem(c->ops.ctx, i);

		if (p && *p)
			jb_str(&b, p);
	}
	jb_close(&b, ']');
	jb_close(&b, '}');
	return reply(cl, &b);
}

static void device_fn(void *arg, const struct tl_ctl_dev *d)
{
	struct jbuf *b = arg;
	const struct tl_dev_info *i = &d->dev->info;

	jb_open(b, '{');
	jb_kstr(b, "name", d->name);
	jb_kstr(b, "handler", d->handler);
	jb_ku64(b, "worker", (uint64_t)d->worker);
	jb_ku64(b, "size", i->size);
	jb_ku64(b, "block_size", i->block_size);
	jb_kbool(b, "fast_path", d->dev->fast.fd >= 0);
	jb_ku64(b, "inflight", d->dev->ring.inflight);
	jb_kbool(b, "ring_broken", d->dev->ring.broken);
	jb_close(b, '}');
}

static bool cmd_devices(struct client *cl)
{
	struct tl_control *c = cl->c;
	struct jbuf b;

	jb_init(&b);
	jb_open(&b, '{');
	jb_kbool(&b, "ok", true);
	jb_key(&b, "devices");
	jb_open(&b, '[');
	c->ops.each_device(c->ops.ctx, device_fn, &b);
	jb_close(&b, ']');
	jb_close(&b, '}');
	return reply(cl, &b);
}

static const char *const kind_names[TL_KINDS] = { "read", "write", "other" };

static void stats_one(struct jbuf *b, const struct tl_ctl_dev *d)
{
	const struct tl_dev_stats *st = &d->dev->stats;

	jb_open(b, '{');
	jb_kstr(b, "name", d->name);
	jb_ku64(b, "cmds", st->cmds);
	jb_ku64(b, "fast", st->fast);
	jb_ku64(b, "lua_errors", st->lua_errors);
	jb_ku64(b, "rejected", st->rejected);
	jb_ku64(b, "aborted", st->aborted);
	jb_ku64(b, "kicks", st->kicks);
	jb_ku64(b, "batches", st->batches);
	jb_ku64(b, "qdepth_max", st->qdepth_max);
	jb_key(b, "qdepth_avg");
	jb_double(b, st->cmds ? (double)st->qdepth_sum / (double)st->cmds : 0);
	for (int k = 0; k < TL_KINDS; k++) {
		const struct tl_io_stats *io = &st->kind[k];

		jb_key(b, kind_names[k]);
		jb_open(b, '{');
		jb_ku64(b, "cmds", io->cmds);
		jb_ku64(b, "bytes", io->bytes);
		jb_ku64(b, "errors", io->errors);
		jb_ku64(b, "p50_ns", tl_ffi_lat_quantile(io->lat, 0.5));
		jb_ku64(b, "p99_ns", tl_ffi_lat_quantile(io->lat, 0.99));
		jb_ku64(b, "p999_ns", tl_ffi_lat_quantile(io->lat, 0.999));
		jb_close(b, '}');
	}
	jb_close(b, '}');
}

static void stats_fn(void *arg, const struct tl_ctl_dev *d)
{
	stats_one(arg, d);
}

static bool cmd_stats(struct client *cl, const char *dev)
{
	struct tl_control *c = cl->c;
	struct tl_ctl_dev d;
	struct jbuf b;

	if (dev && !find_dev(c, dev, &d))
		return reply_error(cl, "no such device");
	jb_init(&b);
	jb_open(&b, '{');
	jb_kbool(&b, "ok", true);
	jb_key(&b, "devices");
	jb_open(&b, '[');
	if (dev)
		stats_one(&b, &d);
	else
		c->ops.each_device(c->ops.ctx, stats_fn, &b);
	jb_close(&b, ']');
	jb_close(&b, '}');
	return reply(cl, &b);
}

/* Prometheus text exposition, one family at a time. */
struct metrics_arg {
	struct jbuf *text;
	int family;
};

static void metric_line(struct jbuf *t, const char *metric, const char *dev,
			const char *kind, const char *extra, uint64_t v)
{
	char line[512], esc[2 * TL_NAME_MAX + 1];
	size_t n = 0;

	/* A label value escapes \\, " and newline (text format 0.0.4). */
	for (; *dev && n + 2 < sizeof(esc); dev++) {
		if (*dev == '\\' || *dev == '"' || *dev == '\n')
			esc[n++] = '\\';
		esc[n++] = *dev == '\n' ? 'n' : *dev;
	}
	esc[n] = '\0';
	snprintf(line, sizeof(line), "%s{device=\"%s\"%s%s%s%s} %llu\n", metric,
		 esc, kind ? ",kind=\"" : "", kind ? kind : "",
		 kind ? "\"" : "", extra ? extra : "", (unsigned long long)v);
	jb_raw(t, line);
}

static void metrics_fn(void *arg, const struct tl_ctl_dev *d)
{
	struct metrics_arg *m = arg;
	const struct tl_dev_stats *st = &d->dev->stats;
	static const double qs[] = { 0.5, 0.99, 0.999 };
	static const char *const qn[] = { ",quantile=\"0.5\"",
					  ",quantile=\"0.99\"",
					  ",quantile=\"0.999\"" };

	for (int k = 0; k < TL_KINDS; k++) {
		const struct tl_io_stats *io = &st->kind[k];

		switch (m->family) {
		case 0:
			metric_line(m->text, "tcmu_lua_commands_total", d->name,
				    kind_names[k], NULL, io->cmds);
			break;
		case 1:
			metric_line(m->text, "tcmu_lua_bytes_total", d->name,
				    kind_names[k], NULL, io->bytes);
			break;
		case 2:
			metric_line(m->text, "tcmu_lua_errors_total", d->name,
				    kind_names[k], NULL, io->errors);
			break;
		case 3:
			for (int q = 0; q < 3; q++)
				metric_line(m->text, "tcmu_lua_latency_ns",
					    d->name, kind_names[k], qn[q],
					    tl_ffi_lat_quantile(io->lat, qs[q]));
			break;
		}
	}
	if (m->family == 4)
		metric_line(m->text, "tcmu_lua_fast_path_commands_total",
			    d->name, NULL, NULL, st->fast);
	if (m->family == 5)
		metric_line(m->text, "tcmu_lua_handler_errors_total", d->name,
			    NULL, NULL, st->lua_errors);
}

static bool cmd_metrics(struct client *cl)
{
	static const char *const heads[] = {
		"# HELP tcmu_lua_commands_total SCSI commands completed.\n"
		"# TYPE tcmu_lua_commands_total counter\n",
		"# HELP tcmu_lua_bytes_total Data bytes moved.\n"
		"# TYPE tcmu_lua_bytes_total counter\n",
		"# HELP tcmu_lua_errors_total Commands completed with a status other than GOOD.\n"
		"# TYPE tcmu_lua_errors_total counter\n",
		"# HELP tcmu_lua_latency_ns Command latency in the daemon (fetch to completion).\n"
		"# TYPE tcmu_lua_latency_ns summary\n",
		"# HELP tcmu_lua_fast_path_commands_total Commands served by the C fast path.\n"
		"# TYPE tcmu_lua_fast_path_commands_total counter\n",
		"# HELP tcmu_lua_handler_errors_total Commands failed by a Lua error.\n"
		"# TYPE tcmu_lua_handler_errors_total counter\n",
	};
	struct tl_control *c = cl->c;
	struct jbuf text, b;

	jb_init(&text);
	for (int f = 0; f < 6; f++) {
		struct metrics_arg m = { &text, f };

		jb_raw(&text, heads[f]);
		c->ops.each_device(c->ops.ctx, metrics_fn, &m);
	}
	jb_init(&b);
	jb_open(&b, '{');
	jb_kbool(&b, "ok", true);
	jb_kstr(&b, "text", text.s ? text.s : "");
	jb_close(&b, '}');
	jb_free(&text);
	return reply(cl, &b);
}

static bool cmd_reload(struct client *cl)
{
	struct tl_control *c = cl->c;
	char err[1024];
	struct jbuf b;

	if (c->ops.reload(c->ops.ctx, err, sizeof(err)))
		return reply_error(cl, err);
	jb_init(&b);
	jb_open(&b, '{');
	jb_kbool(&b, "ok", true);
	jb_close(&b, '}');
	return reply(cl, &b);
}

static bool cmd_log_level(struct client *cl, const char *level)
{
	int lv = level ? tl_log_level_parse(level) : -1;
	struct jbuf b;

	if (lv < 0)
		return reply_error(cl, "level must be error, warn, info or debug");
	tl_log_threshold = lv;
	tl_info("control: log level set to %s", tl_log_level_name(lv));
	jb_init(&b);
	jb_open(&b, '{');
	jb_kbool(&b, "ok", true);
	jb_kstr(&b, "log_level", tl_log_level_name(lv));
	jb_close(&b, '}');
	return reply(cl, &b);
}

static bool cmd_trace(struct client *cl, const char *dev)
{
	struct tl_control *c = cl->c;
	struct tl_ctl_dev d;
	struct jbuf b;

	if (!dev || !find_dev(c, dev, &d))
		return reply_error(cl, "no such device");
	for (int i = 0; i < MAX_CLIENTS; i++)
		if (c->clients[i] && c->clients[i]->tracing == d.dev)
			return reply_error(cl, "someone is tracing that device already");
	if (!d.dev->trace) {
		/* Allocated once, kept with the device: the worker may be
		 * looking at it at any moment. */
		d.dev->trace = calloc(1, sizeof(*d.dev->trace));
		if (!d.dev->trace)
			return reply_error(cl, "out of memory");
	}
	/* Start from now: forget what an earlier tracer left. */
	d.dev->trace->tail = __atomic_load_n(&d.dev->trace->head,
					     __ATOMIC_ACQUIRE);
	__atomic_store_n(&d.dev->trace->on, 1, __ATOMIC_RELAXED);
	cl->tracing = d.dev;
	if (!ev_is_active(&c->trace_timer))
		ev_timer_again(c->loop, &c->trace_timer);
	jb_init(&b);
	jb_open(&b, '{');
	jb_kbool(&b, "ok", true);
	jb_kstr(&b, "tracing", dev);
	jb_close(&b, '}');
	return reply(cl, &b);
}

static bool cmd_trace_stop(struct client *cl)
{
	struct jbuf b;

	if (cl->tracing && cl->tracing->trace)
		__atomic_store_n(&cl->tracing->trace->on, 0, __ATOMIC_RELAXED);
	cl->tracing = NULL;
	jb_init(&b);
	jb_open(&b, '{');
	jb_kbool(&b, "ok", true);
	jb_close(&b, '}');
	return reply(cl, &b);
}

/* Returns false when the client is gone. */
static bool handle_line(struct client *cl, const char *line, size_t len)
{
	struct json_req req;
	const char *err, *cmd;

	if (json_parse_flat(line, len, &req, &err))
		return reply_error(cl, err);
	cmd = json_get(&req, "cmd");
	if (!cmd)
		return reply_error(cl, "missing \"cmd\"");
	if (!strcmp(cmd, "status"))
		return cmd_status(cl);
	if (!strcmp(cmd, "devices"))
		return cmd_devices(cl);
	if (!strcmp(cmd, "stats"))
		return cmd_stats(cl, json_get(&req, "dev"));
	if (!strcmp(cmd, "metrics"))
		return cmd_metrics(cl);
	if (!strcmp(cmd, "reload"))
		return cmd_reload(cl);
	if (!strcmp(cmd, "log-level"))
		return cmd_log_level(cl, json_get(&req, "level"));
	if (!strcmp(cmd, "trace"))
		return cmd_trace(cl, json_get(&req, "dev"));
	if (!strcmp(cmd, "trace-stop"))
		return cmd_trace_stop(cl);
	return reply_error(cl, "unknown command");
}

/* ---- I/O ---- */

static void client_read_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	struct client *cl = io->data;
	ssize_t n;

	n = read(cl->fd, cl->in + cl->in_len, sizeof(cl->in) - cl->in_len);
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
		client_free(cl);
		return;
	}
	if (n < 0)
		return;
	cl->in_len += (size_t)n;
	for (;;) {
		char *nl = memchr(cl->in, '\n', cl->in_len);
		size_t used;

		if (!nl) {
			if (cl->in_len == sizeof(cl->in)) {
				/* No newline in 4 KiB: not our protocol. */
				if (!reply_error(cl, "request line too long"))
					return;
				cl->in_len = 0;
				cl->closing = true;
				ev_io_stop(loop, &cl->rio);
			}
			return;
		}
		used = (size_t)(nl - cl->in) + 1;
		if (!handle_line(cl, cl->in, used - 1))
			return;
		memmove(cl->in, cl->in + used, cl->in_len - used);
		cl->in_len -= used;
	}
}

static void client_write_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	struct client *cl = io->data;
	ssize_t n;

	while (cl->out_off < cl->out.len) {
		n = send(cl->fd, cl->out.s + cl->out_off,
			 cl->out.len - cl->out_off, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return;
			client_free(cl);
			return;
		}
		cl->out_off += (size_t)n;
		if (cl->out_off > (1u << 16) && cl->out_off * 2 > cl->out.len) {
			/* Keep the buffer from growing with what was sent. */
			memmove(cl->out.s, cl->out.s + cl->out_off,
				cl->out.len - cl->out_off);
			cl->out.len -= cl->out_off;
			cl->out_off = 0;
		}
	}
	cl->out.len = cl->out_off = 0;
	ev_io_stop(loop, &cl->wio);
	if (cl->closing)
		client_free(cl);
}

/*
 * Only root may talk to us.  The socket's mode already keeps others out;
 * this holds even if someone loosens it.  The daemon's own user is let in
 * too: it could ptrace us anyway (and the tests run that way).
 */
bool tl_control_peer_allowed(int fd, uid_t self, char *who, size_t len)
{
	struct ucred cr;
	socklen_t n = sizeof(cr);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &n) < 0 ||
	    n != sizeof(cr)) {
		snprintf(who, len, "unknown peer (%s)", strerror(errno));
		return false;
	}
	snprintf(who, len, "pid %d, uid %u, gid %u", (int)cr.pid,
		 (unsigned int)cr.uid, (unsigned int)cr.gid);
	return cr.uid == 0 || cr.uid == self;
}

static void refuse(int fd, const char *msg)
{
	if (send(fd, msg, strlen(msg), MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
		tl_dbg("control: refusing a client: %s", strerror(errno));
	close(fd);
}

static void accept_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	struct tl_control *c = io->data;
	struct client *cl;
	char who[96];
	int fd, slot;

	fd = accept4(c->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0)
		return;
	if (!tl_control_peer_allowed(fd, geteuid(), who, sizeof(who))) {
		tl_warn("control: refused a client that is not root (%s)", who);
		refuse(fd, "{\"ok\":false,\"error\":\"permission denied: the control socket is for root only\"}\n");
		return;
	}
	for (slot = 0; slot < MAX_CLIENTS && c->clients[slot]; slot++)
		;
	cl = slot < MAX_CLIENTS ? calloc(1, sizeof(*cl)) : NULL;
	if (!cl) {
		refuse(fd, "{\"ok\":false,\"error\":\"too many clients\"}\n");
		return;
	}
	cl->c = c;
	cl->fd = fd;
	jb_init(&cl->out);
	ev_io_init(&cl->rio, client_read_cb, fd, EV_READ);
	ev_io_init(&cl->wio, client_write_cb, fd, EV_WRITE);
	cl->rio.data = cl->wio.data = cl;
	ev_io_start(loop, &cl->rio);
	c->clients[slot] = cl;
}

static void trace_rec_json(struct jbuf *b, const struct tl_trace_rec *r,
			   const char *dev)
{
	char hex[16 * 3 + 1];

	for (int i = 0; i < r->cdb_len; i++)
		snprintf(hex + i * 3, 4, "%02x ", r->cdb[i]);
	hex[r->cdb_len ? r->cdb_len * 3 - 1 : 0] = '\0';
	jb_open(b, '{');
	jb_key(b, "trace");
	jb_open(b, '{');
	jb_kstr(b, "dev", dev);
	jb_ku64(b, "t_ns", r->t_ns);
	jb_ku64(b, "id", r->cmd_id);
	jb_kstr(b, "cdb", hex);
	jb_ku64(b, "lba", r->lba);
	jb_ku64(b, "blocks", r->nblocks);
	jb_ku64(b, "data_len", r->data_len);
	jb_ku64(b, "read_len", r->read_len);
	jb_ku64(b, "status", r->status);
	jb_ku64(b, "sense_key", r->sense_key);
	jb_ku64(b, "asc", r->asc);
	jb_ku64(b, "ascq", r->ascq);
	jb_ku64(b, "lat_ns", r->lat_ns);
	jb_kbool(b, "fast", r->fast);
	jb_close(b, '}');
	jb_close(b, '}');
	jb_raw(b, "\n");
	b->need_comma = false;	/* the next record is a new JSON line */
}

static void trace_timer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct tl_control *c = t->data;
	bool any = false;

	for (int i = 0; i < MAX_CLIENTS; i++) {
		struct client *cl = c->clients[i];
		struct tl_trace_rec r;
		struct jbuf b;
		int n = 0;

		if (!cl || !cl->tracing)
			continue;
		any = true;
		jb_init(&b);
		/* Bounded per tick, so one busy device cannot hog the loop. */
		while (n++ < 2048 && tl_trace_take(cl->tracing->trace, &r))
			trace_rec_json(&b, &r, cl->tracing->info.name);
		if (b.len && !client_send(cl, b.s, b.len)) {
			jb_free(&b);
			continue;
		}
		jb_free(&b);
	}
	if (!any)
		ev_timer_stop(loop, t);
}

/*
 * The socket's directory must be root's (or ours): whoever may write to it
 * could replace the socket with their own between two of our calls, or
 * put a name there that we then unlink.  A sticky directory such as /tmp
 * is fine: there nobody may remove or rename what is not theirs.
 */
static int check_dir(const char *path, char *err, size_t errlen)
{
	char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
	const char *slash = strrchr(path, '/');
	struct stat st;

	if (!slash)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == path)
		snprintf(dir, sizeof(dir), "/");
	else
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
	if (stat(dir, &st) < 0) {
		snprintf(err, errlen, "%s: %s", dir, strerror(errno));
		return -1;
	}
	if (st.st_uid != 0 && st.st_uid != geteuid()) {
		snprintf(err, errlen,
			 "%s: the control socket's directory must belong to root (it belongs to uid %u)",
			 dir, (unsigned int)st.st_uid);
		return -1;
	}
	if ((st.st_mode & (S_IWGRP | S_IWOTH)) && !(st.st_mode & S_ISVTX)) {
		snprintf(err, errlen,
			 "%s: the control socket's directory must not be writable by others",
			 dir);
		return -1;
	}
	return 0;
}

struct tl_control *tl_control_start(struct ev_loop *loop, const char *path,
				    const struct tl_control_ops *ops,
				    char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct tl_control *c;
	struct stat st;
	mode_t old;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "%s: socket path too long", path);
		return NULL;
	}
	c = calloc(1, sizeof(*c));
	if (!c || !(c->path = strdup(path))) {
		free(c);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	c->loop = loop;
	c->ops = *ops;
	c->started = time(NULL);
	strcpy(sa.sun_path, path);
	if (check_dir(path, err, errlen))
		goto fail;
	/* A socket left by a daemon that died is replaced; anything else not. */
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			snprintf(err, errlen, "%s exists and is not a socket", path);
			goto fail;
		}
		unlink(path);
	}
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		goto fail;
	}
	old = umask(0177);	/* srw------- : root only */
	if (bind(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		umask(old);
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		close(c->fd);
		goto fail;
	}
	umask(old);
	if (chmod(path, 0600) < 0 || listen(c->fd, 16) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		close(c->fd);
		unlink(path);
		goto fail;
	}
	ev_io_init(&c->accept_io, accept_cb, c->fd, EV_READ);
	c->accept_io.data = c;
	ev_io_start(loop, &c->accept_io);
	ev_init(&c->trace_timer, trace_timer_cb);
	c->trace_timer.repeat = TRACE_POLL_S;
	c->trace_timer.data = c;
	tl_info("control socket at %s", path);
	return c;
fail:
	free(c->path);
	free(c);
	return NULL;
}

void tl_control_forget_dev(struct tl_control *c, struct tl_dev *dev)
{
	if (!c)
		return;
	for (int i = 0; i < MAX_CLIENTS; i++) {
		struct client *cl = c->clients[i];

		if (cl && cl->tracing == dev) {
			cl->tracing = NULL;
			reply_error(cl, "the traced device went away");
		}
	}
}

void tl_control_stop(struct tl_control *c)
{
	if (!c)
		return;
	for (int i = 0; i < MAX_CLIENTS; i++)
		if (c->clients[i])
			client_free(c->clients[i]);
	ev_io_stop(c->loop, &c->accept_io);
	ev_timer_stop(c->loop, &c->trace_timer);
	close(c->fd);
	unlink(c->path);
	free(c->path);
	free(c);
}
