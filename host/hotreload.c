// SPDX-License-Identifier: MIT
/*
 * hotreload.c - inotify on the worker's loop, debounced reloads.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <ev.h>
#include <lauxlib.h>

#include "hotreload.h"
#include "log.h"
#include "lua_host.h"
#include "worker.h"

#define SETTLE_SECONDS 0.2	/* editors write, rename, chmod: wait it out */
#define MAX_FILES 256

struct tl_hotreload {
	int fd;
	ev_io io;
	ev_timer settle;
	struct tl_worker *w;
	char *files[MAX_FILES];	/* absolute paths that matter */
	int nfiles;
};

static void free_files(struct tl_hotreload *h)
{
	for (int i = 0; i < h->nfiles; i++)
		free(h->files[i]);
	h->nfiles = 0;
}

static void settle_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct tl_hotreload *h = t->data;
	char err[1024];

	if (tl_worker_reload(h->w, false, err, sizeof(err)))
		tl_err("hot reload failed, the running code stays: %s", err);
	else
		tl_info("hot reload: handlers reloaded");
}

/* Is dir/name one of the files we care about? */
static int watched(struct tl_hotreload *h, int wd, const char *name)
{
	size_t n = strlen(name);

	for (int i = 0; i < h->nfiles; i++) {
		const char *f = h->files[i];
		size_t fl = strlen(f);

		if (fl > n && f[fl - n - 1] == '/' && !strcmp(f + fl - n, name))
			return 1;
	}
	return 0;
}

static void inotify_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	struct tl_hotreload *h = io->data;
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	ssize_t len;
	int hit = 0;

	while ((len = read(h->fd, buf, sizeof(buf))) > 0) {
		for (char *p = buf; p < buf + len;) {
			struct inotify_event *ev = (struct inotify_event *)p;

			if (ev->len && watched(h, ev->wd, ev->name))
				hit = 1;
			p += sizeof(*ev) + ev->len;
		}
	}
	if (hit) {
		ev_timer_stop(loop, &h->settle);
		ev_timer_set(&h->settle, SETTLE_SECONDS, 0);
		ev_timer_start(loop, &h->settle);
	}
}

int tl_hotreload_start(struct tl_worker *w)
{
	struct tl_hotreload *h = calloc(1, sizeof(*h));

	if (!h)
		return -ENOMEM;
	h->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (h->fd < 0) {
		tl_warn("worker %d: no inotify (%s): handlers reload on request only",
			w->index, strerror(errno));
		free(h);
		return -errno;
	}
	h->w = w;
	ev_io_init(&h->io, inotify_cb, h->fd, EV_READ);
	h->io.data = h;
	ev_io_start(w->loop, &h->io);
	ev_timer_init(&h->settle, settle_cb, SETTLE_SECONDS, 0);
	h->settle.data = h;
	w->hotreload = h;
	return 0;
}

void tl_hotreload_refresh(struct tl_worker *w)
{
	struct tl_hotreload *h = w->hotreload;
	lua_State *L = w->L;
	int i, n;

	if (!h)
		return;
	free_files(h);
	n = tl_lua_watched_files(w);	/* pushes a table */
	for (i = 1; i <= n && h->nfiles < MAX_FILES; i++) {
		const char *f;
		char dir[PATH_MAX], *slash;

		lua_rawgeti(L, -1, i);
		f = lua_tostring(L, -1);
		if (f && (h->files[h->nfiles] = strdup(f))) {
			snprintf(dir, sizeof(dir), "%s", f);
			slash = strrchr(dir, '/');
			if (slash) {
				*slash = '\0';
				/* Same directory again returns the same watch. */
				inotify_add_watch(h->fd, *dir ? dir : "/",
						  IN_CLOSE_WRITE | IN_MOVED_TO |
						  IN_CREATE);
			}
			h->nfiles++;
		}
		lua_pop(L, 1);
	}
	lua_pop(L, 1);
}

void tl_hotreload_stop(struct tl_worker *w)
{
	struct tl_hotreload *h = w->hotreload;

	if (!h)
		return;
	ev_io_stop(w->loop, &h->io);
	ev_timer_stop(w->loop, &h->settle);
	close(h->fd);
	free_files(h);
	free(h);
	w->hotreload = NULL;
}
