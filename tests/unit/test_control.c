// SPDX-License-Identifier: MIT
/*
 * test_control.c - the control socket against a fake daemon: every
 * command, malformed requests, oversized lines, a client that floods, one
 * that stops reading during a trace, and one that leaves mid-stream.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "../../host/control.c"
#include "../../host/json.c"
#include "../../host/log.c"
#include "../../host/stats.c"
#include "../../host/trace.c"

#include "check.h"

static struct tl_dev fake_dev;
static int reloads;
static const char *reload_error;

static void each_device(void *ctx, tl_ctl_dev_fn fn, void *arg)
{
	struct tl_ctl_dev d = { "disk0", "ram", 0, &fake_dev };

	fn(arg, &d);
}

static int do_reload(void *ctx, char *err, size_t errlen)
{
	reloads++;
	if (reload_error) {
		snprintf(err, errlen, "%s", reload_error);
		return -1;
	}
	return 0;
}

static unsigned int nworkers(void *ctx)
{
	return 2;
}

static struct ev_loop *loop;
static char sock_path[64];

static int connect_client(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	strcpy(sa.sun_path, sock_path);
	CHECK_EQ(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	fcntl(fd, F_SETFL, O_NONBLOCK);
	return fd;
}

/* Run the loop until a full line arrives on fd (or ~2 s pass). */
static int read_line(int fd, char *buf, size_t cap)
{
	size_t n = 0;

	for (int i = 0; i < 400; i++) {
		ssize_t r;

		ev_run(loop, EVRUN_NOWAIT);
		r = read(fd, buf + n, 1);
		if (r == 1) {
			if (buf[n] == '\n') {
				buf[n] = '\0';
				return (int)n;
			}
			if (++n == cap - 1)
				break;
			i = 0;
			continue;
		}
		if (r == 0)
			return -1;
		poll(NULL, 0, 5);
	}
	buf[n] = '\0';
	return -1;
}

static void ask(int fd, const char *req, char *reply, size_t cap)
{
	CHECK_EQ(write(fd, req, strlen(req)), (ssize_t)strlen(req));
	CHECK(read_line(fd, reply, cap) >= 0);
}

static void test_commands(void)
{
	char r[65536];
	int fd = connect_client();

	ask(fd, "{\"cmd\":\"status\"}\n", r, sizeof(r));
	CHECK(strstr(r, "\"ok\":true") && strstr(r, "\"workers\":2") &&
	      strstr(r, "\"devices\":1"));
	ask(fd, "{\"cmd\":\"devices\"}\n", r, sizeof(r));
	CHECK(strstr(r, "\"name\":\"disk0\"") && strstr(r, "\"handler\":\"ram\""));
	ask(fd, "{\"cmd\":\"stats\",\"dev\":\"disk0\"}\n", r, sizeof(r));
	CHECK(strstr(r, "\"cmds\":42") && strstr(r, "\"p99_ns\":"));
	ask(fd, "{\"cmd\":\"stats\",\"dev\":\"nope\"}\n", r, sizeof(r));
	CHECK(strstr(r, "\"ok\":false") && strstr(r, "no such device"));
	ask(fd, "{\"cmd\":\"metrics\"}\n", r, sizeof(r));
	CHECK(strstr(r, "tcmu_lua_commands_total{device=\\\"disk0\\\",kind=\\\"read\\\"} 42"));
	ask(fd, "{\"cmd\":\"reload\"}\n", r, sizeof(r));
	CHECK(strstr(r, "\"ok\":true"));
	reload_error = "x.lua:3: boom";
	ask(fd, "{\"cmd\":\"reload\"}\n", r, sizeof(r));
	CHECK(strstr(r, "\"ok\":false") && strstr(r, "x.lua:3: boom"));
	reload_error = NULL;
	CHECK_EQ(reloads, 2);
	ask(fd, "{\"cmd\":\"log-level\",\"level\":\"debug\"}\n", r, sizeof(r));
	CHECK(strstr(r, "\"log_level\":\"debug\""));
	CHECK_EQ(tl_log_threshold, TL_LOG_DEBUG);
	ask(fd, "{\"cmd\":\"log-level\",\"level\":\"loud\"}\n", r, sizeof(r));
	CHECK(strstr(r, "\"ok\":false"));
	tl_log_threshold = TL_LOG_WARN;
	close(fd);
}

static void test_malformed(void)
{
	static const char *const bad[] = {
		"nonsense\n", "{\n", "{\"cmd\":}\n", "{\"cmd\":\"status\"} x\n",
		"{\"cmd\":{\"nested\":1}}\n", "[1,2]\n", "{\"cmd\":\"launch\"}\n",
		"{}\n", "{\"cmd\":\"\\u0000\"}\n", "\n",
		"{\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"e\":5,\"f\":6,\"g\":7,\"h\":8,\"i\":9}\n",
	};
	char r[4096];
	int fd = connect_client();

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ask(fd, bad[i], r, sizeof(r));
		CHECK(strstr(r, "\"ok\":false") && strstr(r, "\"error\":"));
	}
	/* Still answering after all that. */
	ask(fd, "{\"cmd\":\"status\"}\n", r, sizeof(r));
	CHECK(strstr(r, "\"ok\":true"));
	close(fd);
}

static void test_long_line(void)
{
	char big[10000], r[4096];
	int fd = connect_client();

	memset(big, 'x', sizeof(big));
	CHECK(write(fd, big, sizeof(big)) > 0);
	CHECK(read_line(fd, r, sizeof(r)) >= 0);
	CHECK(strstr(r, "request line too long") != NULL);
	/* ...and the server closes that connection. */
	CHECK_EQ(read_line(fd, r, sizeof(r)), -1);
	close(fd);
}

/* A client that sends requests without reading replies is cut off. */
static void test_flood(void)
{
	char req[] = "{\"cmd\":\"metrics\"}\n";
	int fd = connect_client(), other;
	char r[4096];
	ssize_t w;
	int sent = 0;

	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &(int){ 4096 }, sizeof(int));
	for (int i = 0; i < 200000; i++) {
		w = write(fd, req, sizeof(req) - 1);
		if (w > 0)
			sent++;
		ev_run(loop, EVRUN_NOWAIT);
		if (w < 0 && errno != EAGAIN)
			break;	/* the server hung up: good */
	}
	CHECK(sent > 0);
	/* The server still serves others. */
	other = connect_client();
	ask(other, "{\"cmd\":\"status\"}\n", r, sizeof(r));
	CHECK(strstr(r, "\"ok\":true"));
	close(other);
	close(fd);
}

static void fake_complete(struct tl_cmd *cmd, uint8_t op, uint64_t now)
{
	memset(cmd, 0, offsetof(struct tl_cmd, iov));
	cmd->opcode = cmd->cdb[0] = op;
	cmd->cdb_len = 10;
	cmd->t_start_ns = now - 1000;
	cmd->status = op == 0x28 ? 0 : 2;
	cmd->sense_len = 18;
	cmd->sense[0] = 0x70;
	cmd->sense[2] = 5;
	cmd->sense[12] = 0x21;
	tl_stats_complete(&fake_dev.stats, cmd, now);
	if (tl_trace_on(fake_dev.trace))
		tl_trace_record(fake_dev.trace, cmd, now, false);
}

static void test_trace(void)
{
	static struct tl_cmd cmd;
	char r[65536];
	int fd = connect_client(), fd2;

	ask(fd, "{\"cmd\":\"trace\",\"dev\":\"disk0\"}\n", r, sizeof(r));
	CHECK(strstr(r, "\"tracing\":\"disk0\""));
	CHECK(tl_trace_on(fake_dev.trace));
	/* A second tracer of the same device is refused. */
	fd2 = connect_client();
	ask(fd2, "{\"cmd\":\"trace\",\"dev\":\"disk0\"}\n", r, sizeof(r));
	CHECK(strstr(r, "already"));
	close(fd2);

	fake_complete(&cmd, 0x28, 5000000);
	fake_complete(&cmd, 0x2a, 6000000);
	CHECK(read_line(fd, r, sizeof(r)) > 0);
	CHECK(strstr(r, "\"cdb\":\"28 00 00 00 00 00 00 00 00 00\"") &&
	      strstr(r, "\"status\":0") && strstr(r, "\"lat_ns\":1000"));
	CHECK(read_line(fd, r, sizeof(r)) > 0);
	CHECK(r[0] == '{');	/* each record is a JSON object of its own */
	CHECK(strstr(r, "\"status\":2") && strstr(r, "\"sense_key\":5") &&
	      strstr(r, "\"asc\":33"));

	/* Thousands of completions while the client reads nothing: the
	 * producer never blocks, it drops and counts. */
	for (int i = 0; i < 3 * TL_TRACE_SLOTS; i++)
		fake_complete(&cmd, 0x28, 7000000 + (uint64_t)i);
	CHECK(fake_dev.trace->dropped > 0);

	/* Leaving mid-stream switches tracing off. */
	close(fd);
	for (int i = 0; i < 50; i++) {
		ev_run(loop, EVRUN_NOWAIT);
		poll(NULL, 0, 5);
	}
	CHECK(!tl_trace_on(fake_dev.trace));
}

int main(void)
{
	struct tl_control_ops ops = { .each_device = each_device,
				      .reload = do_reload,
				      .workers = nworkers };
	struct tl_control *c;
	struct stat st;
	char err[256];

	signal(SIGPIPE, SIG_IGN);
	tl_log_threshold = TL_LOG_WARN;
	fake_dev.stats.cmds = 42;
	fake_dev.stats.kind[TL_KIND_READ].cmds = 42;
	fake_dev.fast.fd = -1;
	snprintf(fake_dev.info.name, sizeof(fake_dev.info.name), "disk0");
	snprintf(sock_path, sizeof(sock_path), "/tmp/tl-ctl-test.%d", getpid());
	loop = ev_loop_new(EVFLAG_AUTO);
	c = tl_control_start(loop, sock_path, &ops, err, sizeof(err));
	CHECK(c != NULL);
	if (!c) {
		fprintf(stderr, "%s\n", err);
		return check_done();
	}
	CHECK_EQ(stat(sock_path, &st), 0);
	CHECK_EQ(st.st_mode & 0777, 0600);	/* root only */

	RUN(test_commands);
	RUN(test_malformed);
	RUN(test_long_line);
	RUN(test_flood);
	RUN(test_trace);

	tl_control_stop(c);
	CHECK(stat(sock_path, &st) != 0);	/* removed at stop */
	free(fake_dev.trace);
	ev_loop_destroy(loop);
	return check_done();
}
