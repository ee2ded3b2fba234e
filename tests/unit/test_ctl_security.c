// SPDX-License-Identifier: MIT
/*
 * test_ctl_security.c - who may use the control socket, where it may live,
 * and what its JSON reader refuses (docs/security.md).
 *
 *  - tl_control_peer_allowed(): the peer's uid from SO_PEERCRED; root and
 *    the daemon's own user pass, anyone else does not.  As root, a child
 *    that became uid 65534 connects to a world-writable socket and must
 *    get the error reply (the socket's mode would stop it otherwise).
 *  - tl_control_start() refuses a directory others may write to (unless
 *    sticky) or that belongs to someone else.
 *  - json_parse_flat(): bad UTF-8 and numbers JSON does not have.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../host/control.c"
#include "../../host/json.c"
#include "../../host/log.c"
#include "../../host/stats.c"
#include "../../host/trace.c"

#include "check.h"

static void each_device(void *ctx, tl_ctl_dev_fn fn, void *arg)
{
}

static int do_reload(void *ctx, char *err, size_t errlen)
{
	return 0;
}

static unsigned int nworkers(void *ctx)
{
	return 1;
}

static const struct tl_control_ops ops = {
	.each_device = each_device,
	.reload = do_reload,
	.workers = nworkers,
};

static char tmp[64];

static void test_peer_self(void)
{
	char who[96];
	int sv[2];

	CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	CHECK(tl_control_peer_allowed(sv[0], geteuid(), who, sizeof(who)));
	CHECK(strstr(who, "uid ") != NULL);
	/* Not root and not the daemon's user: refused. */
	if (geteuid() != 0)
		CHECK(!tl_control_peer_allowed(sv[0], geteuid() + 1, who,
					       sizeof(who)));
	close(sv[0]);
	close(sv[1]);
	/* Not a socket: refused, not crashed. */
	sv[0] = open("/dev/null", O_RDONLY);
	CHECK(!tl_control_peer_allowed(sv[0], 0, who, sizeof(who)));
	close(sv[0]);
}

/* As root: a real client of another uid against the running server. */
static void test_peer_other_uid(void)
{
	struct ev_loop *loop = ev_default_loop(0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char err[256], path[128], reply[256] = "";
	struct tl_control *c;
	int pfd[2];
	pid_t pid;
	ssize_t n;

	if (geteuid() != 0) {
		printf("  (not root: the other-uid client is not tried)\n");
		return;
	}
	snprintf(path, sizeof(path), "%s/ctl.sock", tmp);
	c = tl_control_start(loop, path, &ops, err, sizeof(err));
	CHECK(c != NULL);
	if (!c)
		return;
	CHECK_EQ(chmod(tmp, 0755), 0);
	CHECK_EQ(chmod(path, 0666), 0);	/* only SO_PEERCRED stands in the way */
	CHECK_EQ(pipe(pfd), 0);
	pid = fork();
	if (pid == 0) {
		int fd;

		close(pfd[0]);
		if (setresgid(65534, 65534, 65534) || setresuid(65534, 65534, 65534))
			_exit(3);
		fd = socket(AF_UNIX, SOCK_STREAM, 0);
		strcpy(sa.sun_path, path);
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)))
			_exit(4);
		if (write(fd, "{\"cmd\":\"status\"}\n", 17) != 17)
			_exit(5);
		while ((n = read(fd, reply, sizeof(reply) - 1)) > 0)
			if (write(pfd[1], reply, (size_t)n) != n)
				_exit(6);
		_exit(0);
	}
	close(pfd[1]);
	fcntl(pfd[0], F_SETFL, O_NONBLOCK);
	n = 0;
	for (int i = 0; i < 400; i++) {
		ssize_t r;

		ev_run(loop, EVRUN_NOWAIT);
		r = read(pfd[0], reply + n, sizeof(reply) - 1 - (size_t)n);
		if (r == 0)
			break;
		if (r > 0)
			n += r;
		poll(NULL, 0, 5);
	}
	reply[n] = '\0';
	CHECK(strstr(reply, "\"ok\":false") != NULL);
	CHECK(strstr(reply, "root only") != NULL);
	CHECK(strstr(reply, "tcmu-lua") == NULL);	/* no status was given */
	close(pfd[0]);
	waitpid(pid, NULL, 0);
	tl_control_stop(c);
	CHECK_EQ(chmod(tmp, 0700), 0);
}

static void test_socket_dir(void)
{
	struct ev_loop *loop = ev_default_loop(0);
	char err[256], dir[128], path[160];
	struct tl_control *c;

	snprintf(dir, sizeof(dir), "%s/d", tmp);
	snprintf(path, sizeof(path), "%s/ctl.sock", dir);
	CHECK_EQ(mkdir(dir, 0700), 0);
	c = tl_control_start(loop, path, &ops, err, sizeof(err));
	CHECK(c != NULL);
	tl_control_stop(c);

	CHECK_EQ(chmod(dir, 0777), 0);
	c = tl_control_start(loop, path, &ops, err, sizeof(err));
	CHECK(c == NULL);
	CHECK(c || strstr(err, "must not be writable by others"));
	tl_control_stop(c);

	CHECK_EQ(chmod(dir, 01777), 0);	/* sticky, like /tmp */
	c = tl_control_start(loop, path, &ops, err, sizeof(err));
	CHECK(c != NULL);
	tl_control_stop(c);

	if (geteuid() == 0) {
		CHECK_EQ(chmod(dir, 0755), 0);
		CHECK_EQ(chown(dir, 65534, 65534), 0);
		c = tl_control_start(loop, path, &ops, err, sizeof(err));
		CHECK(c == NULL);
		CHECK(c || strstr(err, "must belong to root"));
		tl_control_stop(c);
	}
	rmdir(dir);
}

static void test_json_strict(void)
{
	static const char *const bad[] = {
		"{\"cmd\":\"st\xff" "atus\"}", "{\"cmd\":\"\xc3\x28\"}",
		"{\"cmd\":\"\xed\xa0\x80\"}", "{\"cmd\":\"\xc0\xaf\"}",
		"{\"cmd\":\"\xf4\x90\x80\x80\"}", "{\"cmd\":\"\xe2\x82\"}",
		"{\"n\":nan}", "{\"n\":+1}", "{\"n\":.5}", "{\"n\":01}",
		"{\"n\":1.}", "{\"n\":1e}", "{\"n\":-}", "{\"n\":0x10}",
	};
	static const char *const good[] = {
		"{\"cmd\":\"stats\",\"dev\":\"d\xc3\xa9v\xe2\x82\xac\xf0\x9f\x92\xbe\"}",
		"{\"n\":-0.5e+10}", "{\"n\":0}", "{\"n\":12E-3}", "{\"b\":true}",
	};
	struct json_req req;
	const char *err;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK_EQ(json_parse_flat(bad[i], strlen(bad[i]), &req, &err), -1);
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		CHECK_EQ(json_parse_flat(good[i], strlen(good[i]), &req, &err), 0);
	json_parse_flat(good[0], strlen(good[0]), &req, &err);
	CHECK(!strcmp(json_get(&req, "dev"), "d\xc3\xa9v\xe2\x82\xac\xf0\x9f\x92\xbe"));
}

int main(void)
{
	snprintf(tmp, sizeof(tmp), "/tmp/test_ctl_security.XXXXXX");
	if (!mkdtemp(tmp))
		return 1;
	tl_log_threshold = TL_LOG_ERR;
	RUN(test_peer_self);
	RUN(test_peer_other_uid);
	RUN(test_socket_dir);
	RUN(test_json_strict);
	rmdir(tmp);
	return check_done();
}
