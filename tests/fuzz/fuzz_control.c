// SPDX-License-Identifier: MIT
/*
 * fuzz_control.c - arbitrary requests to the control socket's server.
 *
 * host/control.c and host/json.c are compiled into the harness (as the
 * unit test does), so the static request handler is reachable without a
 * listening socket, an accept() or an event loop run.  A client is made
 * directly over one end of a socketpair; the input is written to the other
 * end and client_read_cb() is called until it has read everything: the
 * server's own line framing (partial lines, several per read, lines over
 * 4 KiB), JSON parser and command handlers run on it.  The fake daemon has
 * two devices, one with a name that needs escaping, and a reload that
 * fails every other time with a message that needs escaping too.
 *
 * Checked: every complete request line gets exactly one reply line, and
 * a line longer than the server takes gets one error and no more; every
 * reply is well-formed JSON (strings valid UTF-8, control bytes escaped)
 * whose first member is "ok", with an "error" string when "ok" is false;
 * in the metrics text, the odd device name is a well-escaped label value.
 * ASan/UBSan (libFuzzer build) or valgrind (replay) catch the rest.
 */
#include "../../host/control.c"
#include "../../host/json.c"
#include "../../host/log.c"
#include "../../host/stats.c"
#include "../../host/trace.c"

#include <ctype.h>
#include <stdint.h>

static struct tl_dev devs[2];
static const char *const dev_names[2] = { "disk0", "we\"ird\\\x01name\xc3\xa9" };
static struct tl_control ctl;
static unsigned int reloads;
static int verbose;

static void each_device(void *ctx, tl_ctl_dev_fn fn, void *arg)
{
	(void)ctx;
	for (int i = 0; i < 2; i++) {
		struct tl_ctl_dev d = { dev_names[i], "ram", i, &devs[i] };

		fn(arg, &d);
	}
}

static int do_reload(void *ctx, char *err, size_t errlen)
{
	(void)ctx;
	if (++reloads % 2) {
		snprintf(err, errlen, "x.lua:1: \"boom\"\n\ttraceback \\ \x7f");
		return -1;
	}
	return 0;
}

static unsigned int nworkers(void *ctx)
{
	(void)ctx;
	return 2;
}

static void fail(const char *what, const char *line)
{
	fprintf(stderr, "fuzz_control: %s: %s\n", what, line ? line : "");
	abort();
}

/* ---- a strict JSON checker for the replies ---- */

struct jc {
	const char *p, *end;
};

static void jc_ws(struct jc *j)
{
	while (j->p < j->end && strchr(" \t\r\n", *j->p) && *j->p)
		j->p++;
}

/* One UTF-8 sequence (RFC 3629: shortest form, no surrogates). */
static bool jc_utf8(struct jc *j)
{
	const unsigned char *s = (const unsigned char *)j->p;
	size_t left = (size_t)(j->end - j->p);
	unsigned int cp, n, i;

	if (s[0] < 0x80)
		n = 0, cp = s[0];
	else if ((s[0] & 0xe0) == 0xc0)
		n = 1, cp = s[0] & 0x1f;
	else if ((s[0] & 0xf0) == 0xe0)
		n = 2, cp = s[0] & 0x0f;
	else if ((s[0] & 0xf8) == 0xf0)
		n = 3, cp = s[0] & 0x07;
	else
		return false;
	if (left < n + 1)
		return false;
	for (i = 1; i <= n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return false;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) ||
	    (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return false;
	j->p += n + 1;
	return true;
}

static bool jc_string(struct jc *j)
{
	if (j->p >= j->end || *j->p != '"')
		return false;
	j->p++;
	while (j->p < j->end && *j->p != '"') {
		if ((unsigned char)*j->p < 0x20)
			return false;
		if (*j->p == '\\') {
			j->p++;
			if (j->p >= j->end)
				return false;
			if (*j->p == 'u') {
				for (int i = 1; i <= 4; i++)
					if (j->p + i >= j->end ||
					    !isxdigit((unsigned char)j->p[i]))
						return false;
				j->p += 5;
			} else if (strchr("\"\\/bfnrt", *j->p) && *j->p) {
				j->p++;
			} else {
				return false;
			}
			continue;
		}
		if (!jc_utf8(j))
			return false;
	}
	if (j->p >= j->end)
		return false;
	j->p++;
	return true;
}

static bool jc_number(struct jc *j)
{
	const char *s = j->p;

	if (j->p < j->end && *j->p == '-')
		j->p++;
	if (j->p < j->end && *j->p == '0')
		j->p++;
	else if (j->p < j->end && *j->p >= '1' && *j->p <= '9')
		while (j->p < j->end && isdigit((unsigned char)*j->p))
			j->p++;
	else
		return false;
	if (j->p < j->end && *j->p == '.') {
		j->p++;
		if (j->p >= j->end || !isdigit((unsigned char)*j->p))
			return false;
		while (j->p < j->end && isdigit((unsigned char)*j->p))
			j->p++;
	}
	return j->p > s;
}

static bool jc_value(struct jc *j, int depth)
{
	static const char *const words[] = { "true", "false", "null" };
	char open;

	if (depth > 16)
		return false;
	jc_ws(j);
	if (j->p >= j->end)
		return false;
	if (*j->p == '"')
		return jc_string(j);
	for (int i = 0; i < 3; i++) {
		size_t n = strlen(words[i]);

		if ((size_t)(j->end - j->p) >= n && !memcmp(j->p, words[i], n)) {
			j->p += n;
			return true;
		}
	}
	if (*j->p != '{' && *j->p != '[')
		return jc_number(j);
	open = *j->p++;
	jc_ws(j);
	if (j->p < j->end && *j->p == (open == '{' ? '}' : ']')) {
		j->p++;
		return true;
	}
	for (;;) {
		jc_ws(j);
		if (open == '{') {
			if (!jc_string(j))
				return false;
			jc_ws(j);
			if (j->p >= j->end || *j->p++ != ':')
				return false;
		}
		if (!jc_value(j, depth + 1))
			return false;
		jc_ws(j);
		if (j->p >= j->end)
			return false;
		if (*j->p == ',') {
			j->p++;
			continue;
		}
		if (*j->p++ != (open == '{' ? '}' : ']'))
			return false;
		return true;
	}
}

static void check_reply(const char *line, size_t len)
{
	struct jc j = { line, line + len };
	bool ok;

	if (len < 8 || (memcmp(line, "{\"ok\":true", 10) &&
			memcmp(line, "{\"ok\":false,\"error\":\"", 21)))
		fail("reply does not start with ok (and error)", line);
	ok = jc_value(&j, 0);
	jc_ws(&j);
	if (!ok || j.p != j.end)
		fail("reply is not one JSON value", line);
	/* device="we\"ird\\<01>name..." in Prometheus, then in JSON. */
	if (strstr(line, "\"text\":\"#") &&
	    !strstr(line, "device=\\\"we\\\\\\\"ird\\\\\\\\\\u0001name\xc3\xa9\\\""))
		fail("device name not escaped as a label value", line);
}

/* Replies the server owes for input: one per line, one for a long line. */
static unsigned int expected_replies(const uint8_t *d, size_t n)
{
	unsigned int replies = 0;

	while (n) {
		const uint8_t *nl = memchr(d, '\n', n);
		size_t len = nl ? (size_t)(nl - d) : n;

		if (len >= LINE_MAX_BYTES)
			return replies + 1;
		if (!nl)
			break;
		replies++;
		d += len + 1;
		n -= len + 1;
	}
	return replies;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const struct tl_control_ops ops = {
		.each_device = each_device,
		.reload = do_reload,
		.workers = nworkers,
	};

	(void)argc;
	(void)argv;
	verbose = getenv("TL_FUZZ_VERBOSE") != NULL;
	ctl.loop = ev_default_loop(0);
	ctl.ops = ops;
	ctl.fd = -1;
	ctl.started = time(NULL);
	ev_init(&ctl.trace_timer, trace_timer_cb);
	ctl.trace_timer.repeat = TRACE_POLL_S;
	ctl.trace_timer.data = &ctl;
	for (int i = 0; i < 2; i++) {
		devs[i].fast.fd = -1;
		snprintf(devs[i].info.name, sizeof(devs[i].info.name), "%s",
			 dev_names[i]);
		devs[i].stats.cmds = 42u * (unsigned int)i;
	}
	return 0;
}

/* Read what the server sent into *out (we are a client that reads). */
static void drain(int fd, struct jbuf *out)
{
	static char buf[65536];
	ssize_t n;

	while ((n = read(fd, buf, sizeof(buf) - 1)) > 0) {
		buf[n] = '\0';
		if (memchr(buf, '\0', (size_t)n))
			fail("NUL byte in a reply", NULL);
		jb_raw(out, buf);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned int want = expected_replies(data, size), got = 0;
	struct client *cl;
	struct jbuf out;
	size_t off = 0;
	int sv[2];

	if (!ctl.loop)
		LLVMFuzzerInitialize(NULL, NULL);
	tl_log_threshold = verbose ? TL_LOG_DEBUG : TL_LOG_ERR;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
		       sv))
		abort();
	cl = calloc(1, sizeof(*cl));
	if (!cl)
		abort();
	cl->c = &ctl;
	cl->fd = sv[0];
	jb_init(&cl->out);
	jb_init(&out);
	ev_io_init(&cl->rio, client_read_cb, sv[0], EV_READ);
	ev_io_init(&cl->wio, client_write_cb, sv[0], EV_WRITE);
	cl->rio.data = cl->wio.data = cl;
	ev_io_start(ctl.loop, &cl->rio);
	ctl.clients[0] = cl;

	/*
	 * Do what the event loop would: read when there is input, write when
	 * there is output; and read the replies as a well-behaved client.
	 */
	for (;;) {
		char probe;

		if (off < size) {
			ssize_t w = write(sv[1], data + off, size - off);

			if (w > 0)
				off += (size_t)w;
		}
		if (ev_is_active(&cl->rio))
			client_read_cb(ctl.loop, &cl->rio, EV_READ);
		if (ctl.clients[0] && ev_is_active(&cl->wio))
			client_write_cb(ctl.loop, &cl->wio, EV_WRITE);
		drain(sv[1], &out);
		if (!ctl.clients[0])
			break;		/* closed after "line too long" */
		if (!ev_is_active(&cl->rio) && !ev_is_active(&cl->wio))
			break;
		if (off == size && !ev_is_active(&cl->wio) &&
		    recv(sv[0], &probe, 1, MSG_PEEK | MSG_DONTWAIT) <= 0)
			break;
	}
	if (ctl.clients[0]) {
		trace_timer_cb(ctl.loop, &ctl.trace_timer, 0);
		tl_control_forget_dev(&ctl, &devs[1]);
		if (ev_is_active(&cl->wio))
			client_write_cb(ctl.loop, &cl->wio, EV_WRITE);
		drain(sv[1], &out);
		if (ctl.clients[0])
			client_free(cl);
	}
	ev_timer_stop(ctl.loop, &ctl.trace_timer);
	close(sv[1]);
	if (out.len && out.s[out.len - 1] != '\n')
		fail("reply without a newline", out.s);
	for (size_t p = 0; p < out.len;) {
		char *nl = memchr(out.s + p, '\n', out.len - p);
		size_t len = (size_t)(nl - (out.s + p));

		*nl = '\0';
		if (verbose)
			fprintf(stderr, "reply: %s\n", out.s + p);
		check_reply(out.s + p, len);
		/* Not a reply: what a tracer is told when its device goes. */
		if (!strstr(out.s + p, "the traced device went away"))
			got++;
		p += len + 1;
	}
	jb_free(&out);
	if (got != want) {
		fprintf(stderr, "fuzz_control: %u replies for %u requests\n",
			got, want);
		abort();
	}
	tl_log_threshold = TL_LOG_ERR;
	return 0;
}
