// SPDX-License-Identifier: MIT
/*
 * daemon.c - the main thread of `tcmu-lua daemon`.
 *
 * It owns the netlink socket, the registry of devices (uio minor ->
 * struct tl_dev and its worker) and the configfs log.  Configfs writes
 * that make the kernel wait for a netlink answer (enabling or removing a
 * backstore) run on a short-lived job thread, so that this thread is free
 * to give that answer.
 *
 * Start-up, crash-safe:
 *   1. block netlink, reset it (frees configfs writes still waiting for a
 *      daemon that died), join the multicast group, SET_FEATURES;
 *   2. serve every TCMU device already there: block it, reset its ring
 *      (in-flight commands end BUSY and are retried), open, unblock;
 *   3. unblock netlink, then create the configured devices (job thread).
 * Stop: undo the configfs log (job thread; LUN removal drains the I/O),
 * close what is left, tell the kernel we no longer answer events.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <ev.h>

#include "config.h"
#include "configfs.h"
#include "control.h"
#include "daemon.h"
#include "device.h"
#include "log.h"
#include "netlink.h"
#include "privileges.h"
#include "tcmu_uapi.h"
#include "uio.h"
#include "worker.h"

struct ddev {
	struct ddev *next;
	unsigned int minor;
	struct tl_uio_name name;
	struct tl_dev *dev;
	struct tl_worker *w;
	bool nl_reply;		/* the kernel waits for our answers */
};

enum job_kind { JOB_NONE, JOB_CREATE, JOB_RELOAD, JOB_TEARDOWN };

/* What a config reload does to each device of the new file. */
enum {
	ACT_CREATE = 1 << 0,	/* new (or its creation failed before) */
	ACT_REMOVE = 1 << 1,	/* re-created: removed first */
	ACT_SIZE = 1 << 2,	/* write attrib/dev_size */
	ACT_WCACHE = 1 << 3,	/* write attrib/emulate_write_cache */
	ACT_FAILED = 1 << 4,	/* set by the job: could not be created */
};

/* The reload's device changes, carried out on the job thread. */
struct reload_plan {
	char **gone;		/* names no longer in the file, file order */
	unsigned int ngone;
	unsigned int *act;	/* per device of the new config: ACT_* */
	unsigned int nact;
};

struct daemon {
	struct ev_loop *loop;
	struct tl_config *cfg;
	bool kernel;

	struct tl_worker **workers;
	unsigned int nworkers, next_worker;

	struct tl_nl *nl;
	ev_io nl_io;
	ev_signal sig_term, sig_int, sig_hup;

	struct ddev *devs;
	struct tl_cfs *cfs;
	struct tl_control *ctl;		/* NULL: no control socket */

	/* The configfs job thread; one at a time. */
	enum job_kind job;
	pthread_t job_thread;
	ev_async job_done;
	int job_rc;
	char job_err[512];

	struct reload_plan plan;	/* JOB_RELOAD's work */
	bool *missing;		/* per configured device: creation failed */
	bool reload_pending;	/* asked for while a job was running */

	/* daemon.hot_reload: the config file's directory, watched. */
	int cfg_inotify;
	ev_io cfg_io;
	ev_timer cfg_settle;

	bool stopping;		/* a signal asked us to stop */
	bool tearing_down;
	int exit_code;
};

static const int handled_signals[] = { SIGTERM, SIGINT, SIGHUP };

/* ---- the registry --------------------------------------------------------- */

static struct ddev *find_minor(struct daemon *dm, unsigned int minor)
{
	struct ddev *e;

	for (e = dm->devs; e; e = e->next)
		if (e->minor == minor)
			return e;
	return NULL;
}

static const struct cfg_device *cfg_of(struct daemon *dm,
				       const struct tl_uio_name *n)
{
	if (n->hba != dm->cfg->hba)
		return NULL;
	return tl_config_find(dm->cfg, n->dev);
}

static struct tl_worker *pick_worker(struct daemon *dm)
{
	/* Round robin: devices are few and their load unknown up front. */
	return dm->workers[dm->next_worker++ % dm->nworkers];
}

/*
 * Serve uio<minor>: open it (fd comes from the caller, already opened),
 * read its geometry, hand it to a worker, which opens the handler.
 * Returns 0 or a negative errno for the kernel.
 */
static int serve(struct daemon *dm, unsigned int minor, int fd,
		 const struct tl_uio_name *n)
{
	const struct cfg_device *cd = cfg_of(dm, n);
	char err[512], val[16];
	struct ddev *e;
	int errnum = 0;

	e = calloc(1, sizeof(*e));
	if (!e) {
		close(fd);
		return -ENOMEM;
	}
	e->minor = minor;
	e->name = *n;
	e->dev = tl_uio_attach(fd, minor, err, sizeof(err), &errnum);
	if (!e->dev) {
		tl_err("%s: %s", n->dev, err);
		free(e);
		return errnum;
	}
	errnum = tl_uio_read_info(n, &e->dev->info, err, sizeof(err));
	if (errnum) {
		tl_err("%s", err);
		goto fail;
	}
	e->dev->info.read_only = cd && cd->read_only;
	/* Set at enable time from the module-wide SET_FEATURES answer. */
	e->nl_reply = !tl_cfs_dev_read(n->hba, n->dev,
				       "attrib/nl_reply_supported", val,
				       sizeof(val)) && atoi(val) > 0;

	e->w = pick_worker(dm);
	if (tl_worker_add_device(e->w, e->dev, cd ? cd->options : NULL, err,
				 sizeof(err))) {
		tl_err("%s: handler %s refused the device: %s", n->dev,
		       n->subtype, err);
		errnum = -EINVAL;
		goto fail;
	}
	tl_info("%s: uio%u, handler %s, %llu x %u bytes, worker %d%s", n->dev,
		minor, n->subtype,
		(unsigned long long)e->dev->info.num_blocks,
		e->dev->info.block_size, e->w->index,
		cd ? "" : " (not in the config file)");
	e->next = dm->devs;
	dm->devs = e;
	return 0;
fail:
	tl_dev_free(e->dev);
	free(e);
	return errnum;
}

static void unserve(struct daemon *dm, struct ddev *e)
{
	struct ddev **pp;

	for (pp = &dm->devs; *pp; pp = &(*pp)->next)
		if (*pp == e) {
			*pp = e->next;
			break;
		}
	if (dm->ctl)
		tl_control_forget_dev(dm->ctl, e->dev);
	/* The worker closes the handler, fails what is left, frees it. */
	tl_worker_remove_device(e->w, e->dev);
	tl_info("%s: no longer served", e->name.dev);
	free(e);
}

/* ---- netlink events ---------------------------------------------------------- */

static void reply(struct daemon *dm, const struct tl_nl_event *ev,
		  bool kernel_waits, int status)
{
	if (!ev->has_dev_id)
		return;
	/*
	 * An answer nobody waits for makes the kernel log an error; but when
	 * unsure (a device we do not know), answer: a kernel that waits for
	 * nothing is better than an admin's shell that hangs.
	 */
	if (!kernel_waits)
		return;
	tl_nl_reply(dm->nl, ev->cmd, ev->dev_id, status);
}

static void on_added(struct daemon *dm, const struct tl_nl_event *ev)
{
	struct tl_uio_name n;
	const char *why;
	char val[16];
	bool waits;
	int fd, rc;

	if (tl_uio_parse_name(ev->device, &n, &why)) {
		tl_err("uio%u (%s): refused: %s", ev->minor, ev->device, why);
		reply(dm, ev, true, -EINVAL);
		return;
	}
	/* Whether the kernel waits is the device's own setting. */
	waits = tl_cfs_dev_read(n.hba, n.dev, "attrib/nl_reply_supported", val,
				sizeof(val)) || atoi(val) > 0;
	if (find_minor(dm, ev->minor)) {	/* found by the start-up scan */
		reply(dm, ev, waits, 0);
		return;
	}
	if (dm->stopping) {
		tl_warn("%s: refused: the daemon is stopping", n.dev);
		reply(dm, ev, waits, -ESHUTDOWN);
		return;
	}
	fd = tl_uio_open_fd(ev->minor);
	if (fd < 0) {
		tl_err("%s: /dev/uio%u: %s", n.dev, ev->minor, strerror(-fd));
		reply(dm, ev, waits, fd);
		return;
	}
	rc = serve(dm, ev->minor, fd, &n);
	reply(dm, ev, waits, rc);
}

static void on_removed(struct daemon *dm, const struct tl_nl_event *ev)
{
	struct ddev *e = find_minor(dm, ev->minor);
	bool waits = e ? e->nl_reply : true;

	if (e)
		unserve(dm, e);
	reply(dm, ev, waits, 0);
}

static int reconfig(struct daemon *dm, struct ddev *e,
		    const struct tl_nl_event *ev)
{
	struct tl_dev_info *info = &e->dev->info;
	char cur[TL_NAME_MAX + TL_CFGSTR_MAX + 2];

	if (ev->dev_cfg) {
		snprintf(cur, sizeof(cur), "%s/%s", e->name.subtype,
			 e->name.cfgstring);
		if (!strcmp(ev->dev_cfg, cur))
			return 0;
		/* Another handler or config under a live device: too risky. */
		tl_err("%s: refusing to change dev_config from '%s' to '%s' on a live device: remove and re-create it",
		       e->name.dev, cur, ev->dev_cfg);
		return -EOPNOTSUPP;
	}
	if (ev->has_size) {
		if (ev->size < info->block_size) {
			tl_err("%s: refusing size %llu: smaller than a block",
			       e->name.dev, (unsigned long long)ev->size);
			return -EINVAL;
		}
		tl_info("%s: resized from %llu to %llu bytes", e->name.dev,
			(unsigned long long)info->size,
			(unsigned long long)ev->size);
		tl_worker_resize_device(e->w, e->dev, ev->size);
	}
	if (ev->has_write_cache) {
		tl_info("%s: write cache %s", e->name.dev,
			ev->write_cache ? "on" : "off");
		info->write_cache = ev->write_cache ? 1 : 0;
	}
	return 0;
}

static void on_reconfig(struct daemon *dm, const struct tl_nl_event *ev)
{
	struct ddev *e = find_minor(dm, ev->minor);

	if (!e) {
		tl_warn("uio%u (%s): reconfiguration of a device we do not serve",
			ev->minor, ev->device);
		reply(dm, ev, true, -ENODEV);
		return;
	}
	reply(dm, ev, e->nl_reply, reconfig(dm, e, ev));
}

static void on_event(void *arg, const struct tl_nl_event *ev)
{
	struct daemon *dm = arg;

	switch (ev->cmd) {
	case TCMU_CMD_ADDED_DEVICE:
		on_added(dm, ev);
		break;
	case TCMU_CMD_REMOVED_DEVICE:
		on_removed(dm, ev);
		break;
	case TCMU_CMD_RECONFIG_DEVICE:
		on_reconfig(dm, ev);
		break;
	}
}

static void nl_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct daemon *dm = w->data;

	tl_nl_dispatch(dm->nl);
}

/* ---- start-up: devices that are already there ---------------------------- */

/*
 * A device from before us (made by targetcli, or ours from a run that
 * died).  Its ring may hold commands a dead daemon never finished: block
 * it, reset the ring so they end BUSY and get retried, then serve it.
 */
static int adopt(void *arg, unsigned int minor, const char *name)
{
	struct daemon *dm = arg;
	struct tl_uio_name n;
	const char *why;
	int fd, rc;

	if (find_minor(dm, minor))
		return 0;
	if (tl_uio_parse_name(name, &n, &why)) {
		tl_warn("uio%u (%s): not served: %s", minor, name, why);
		return 0;
	}
	/* Open first: if another daemon serves it, leave its ring alone. */
	fd = tl_uio_open_fd(minor);
	if (fd < 0) {
		tl_warn("%s: /dev/uio%u: %s%s", n.dev, minor, strerror(-fd),
			fd == -EBUSY ? " (another daemon serves it)" : "");
		return 0;
	}
	rc = tl_cfs_block_dev(n.hba, n.dev, true);
	if (!rc)
		rc = tl_cfs_reset_ring(n.hba, n.dev);
	if (rc)
		tl_warn("%s: cannot reset the ring (%s): serving it as it is",
			n.dev, strerror(-rc));
	rc = serve(dm, minor, fd, &n);
	tl_cfs_block_dev(n.hba, n.dev, false);
	if (rc)
		tl_err("%s: not served", n.dev);
	return 0;
}

/*
 * Two of us would fight over block/reset_netlink and the devices: hold an
 * abstract socket name while running (it goes away with the process, even
 * on SIGKILL, so there is no stale lock to clean up).
 */
static int claim_instance(void)
{
	static const char name[] = "tcmu-lua-daemon";
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	socklen_t len = offsetof(struct sockaddr_un, sun_path) + sizeof(name);
	int fd;

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	memcpy(sa.sun_path + 1, name, sizeof(name) - 1);
	if (bind(fd, (struct sockaddr *)&sa, len)) {
		int rc = -errno;

		close(fd);
		return rc;
	}
	return fd;	/* kept open until exit */
}

static int kernel_start(struct daemon *dm)
{
	char err[512];
	int rc;

	rc = claim_instance();
	if (rc < 0) {
		tl_err("%s", rc == -EADDRINUSE ?
		       "another tcmu-lua daemon is already running" :
		       strerror(-rc));
		return -1;
	}

	if (!tl_cfs_available(err, sizeof(err))) {
		tl_err("%s", err);
		tl_err("the kernel side of TCMU is missing; --no-kernel runs without it");
		return -1;
	}
	rc = tl_cfs_block_netlink(true);
	if (rc) {
		tl_err("cannot block TCMU netlink (%s/block_netlink): %s%s",
		       TL_TCMU_PARAMS, strerror(-rc),
		       rc == -EACCES || rc == -EPERM ? " (run as root)" : "");
		return -1;
	}
	rc = tl_cfs_reset_netlink();
	if (rc)
		tl_warn("cannot reset TCMU netlink: %s", strerror(-rc));

	dm->nl = tl_nl_open(on_event, dm, err, sizeof(err));
	if (!dm->nl) {
		tl_err("%s", err);
		tl_cfs_block_netlink(false);
		return -1;
	}
	rc = tl_nl_set_features(dm->nl, true);
	if (rc)
		tl_warn("the kernel did not take SET_FEATURES (%s): configfs writes will not wait for us",
			strerror(-rc));
	ev_io_init(&dm->nl_io, nl_cb, tl_nl_fd(dm->nl), EV_READ);
	dm->nl_io.data = dm;
	ev_io_start(dm->loop, &dm->nl_io);

	rc = tl_uio_scan(adopt, dm);
	if (rc)
		tl_warn("scanning /sys/class/uio: %s", strerror(-rc));

	rc = tl_cfs_block_netlink(false);
	if (rc) {
		tl_err("cannot unblock TCMU netlink: %s", strerror(-rc));
		return -1;
	}
	return 0;
}

/* ---- the configfs job thread ----------------------------------------------- */

static int create_all(struct daemon *dm)
{
	const struct tl_config *c = dm->cfg;
	char err[400];
	unsigned int i;
	int rc = 0;

	for (i = 0; i < c->n_devices && !rc; i++) {
		const struct cfg_device *d = &c->devices[i];

		rc = tl_cfs_create_device(dm->cfs, c->hba, d, err, sizeof(err));
		if (!rc && d->loop.enabled)
			rc = tl_cfs_export_loop(dm->cfs, c->hba, d, err,
						sizeof(err));
		if (!rc && d->iscsi.enabled)
			rc = tl_cfs_export_iscsi(dm->cfs, c->hba, d, err,
						 sizeof(err));
		if (rc)
			snprintf(dm->job_err, sizeof(dm->job_err),
				 "%s:%d: devices[%u] (%s): %s", c->path, d->line,
				 i, d->name, err);
	}
	return rc;
}

static void job_error(struct daemon *dm, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Append one line to job_err (as much as fits). */
static void job_error(struct daemon *dm, const char *fmt, ...)
{
	size_t len = strlen(dm->job_err);
	va_list ap;

	if (len && len + 2 < sizeof(dm->job_err))
		dm->job_err[len++] = '\n', dm->job_err[len] = '\0';
	va_start(ap, fmt);
	vsnprintf(dm->job_err + len, sizeof(dm->job_err) - len, fmt, ap);
	va_end(ap);
}

/*
 * A config reload's device changes, in the order a person would do them:
 * what went away first (last first, as at stop), then what is re-created
 * is removed, sizes and write caches change, and what is new is created
 * and exported as at start.  A device that cannot be created is removed
 * again and reported; the others go on.
 */
static int reload_devices(struct daemon *dm)
{
	const struct tl_config *c = dm->cfg;
	struct reload_plan *p = &dm->plan;
	char err[400], val[32];
	unsigned int i;
	int rc, failed = 0;

	for (i = p->ngone; i-- > 0;) {
		tl_info("reload: removing device %s", p->gone[i]);
		tl_cfs_undo(dm->cfs, p->gone[i]);
	}
	for (i = p->nact; i-- > 0;)
		if (p->act[i] & ACT_REMOVE) {
			tl_info("reload: removing device %s to create it again",
				c->devices[i].name);
			tl_cfs_undo(dm->cfs, c->devices[i].name);
		}
	for (i = 0; i < p->nact; i++) {
		const struct cfg_device *d = &c->devices[i];

		if (p->act[i] & ACT_SIZE) {
			snprintf(val, sizeof(val), "%llu",
				 (unsigned long long)d->size);
			rc = tl_cfs_dev_write(c->hba, d->name,
					      "attrib/dev_size", val);
			if (rc) {
				job_error(dm, "%s:%d: %s: cannot resize to %s bytes: %s",
					  c->path, d->line, d->name, val,
					  strerror(-rc));
				failed++;
			}
		}
		if (p->act[i] & ACT_WCACHE) {
			rc = tl_cfs_dev_write(c->hba, d->name,
					      "attrib/emulate_write_cache",
					      d->write_cache ? "1" : "0");
			if (rc) {
				job_error(dm, "%s:%d: %s: cannot change the write cache: %s",
					  c->path, d->line, d->name,
					  strerror(-rc));
				failed++;
			}
		}
	}
	for (i = 0; i < p->nact; i++) {
		const struct cfg_device *d = &c->devices[i];

		if (!(p->act[i] & ACT_CREATE))
			continue;
		tl_info("reload: creating device %s", d->name);
		rc = tl_cfs_create_device(dm->cfs, c->hba, d, err, sizeof(err));
		if (!rc && d->loop.enabled)
			rc = tl_cfs_export_loop(dm->cfs, c->hba, d, err,
						sizeof(err));
		if (!rc && d->iscsi.enabled)
			rc = tl_cfs_export_iscsi(dm->cfs, c->hba, d, err,
						 sizeof(err));
		if (rc) {
			job_error(dm, "%s:%d: devices[%u] (%s): %s", c->path,
				  d->line, i, d->name, err);
			tl_cfs_undo(dm->cfs, d->name);
			p->act[i] |= ACT_FAILED;
			failed++;
		}
	}
	return failed ? -1 : 0;
}

static void *job_main(void *arg)
{
	struct daemon *dm = arg;

	if (dm->job == JOB_CREATE) {
		dm->job_rc = create_all(dm);
	} else if (dm->job == JOB_RELOAD) {
		dm->job_rc = reload_devices(dm);
	} else {
		tl_cfs_undo(dm->cfs, NULL);
		dm->job_rc = 0;
	}
	ev_async_send(dm->loop, &dm->job_done);
	return NULL;
}

static int start_job(struct daemon *dm, enum job_kind kind)
{
	sigset_t all, old;
	int rc;

	dm->job = kind;
	dm->job_rc = 0;
	dm->job_err[0] = '\0';
	/* Signals are for the main thread's loop only. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	rc = pthread_create(&dm->job_thread, NULL, job_main, dm);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc) {
		dm->job = JOB_NONE;
		tl_err("cannot start a thread: %s", strerror(rc));
		return -rc;
	}
	return 0;
}

static void finish(struct daemon *dm)
{
	while (dm->devs)
		unserve(dm, dm->devs);
	ev_break(dm->loop, EVBREAK_ALL);
}

static void teardown(struct daemon *dm)
{
	if (dm->tearing_down)
		return;
	dm->tearing_down = true;
	if (start_job(dm, JOB_TEARDOWN))
		finish(dm);	/* cannot undo; at least close cleanly */
}

static void reload_done(struct daemon *dm);
static void reload_again(struct daemon *dm);

static void job_done_cb(struct ev_loop *loop, ev_async *a, int revents)
{
	struct daemon *dm = a->data;
	enum job_kind kind = dm->job;

	pthread_join(dm->job_thread, NULL);
	dm->job = JOB_NONE;
	if (kind == JOB_CREATE) {
		if (dm->job_rc) {
			tl_err("%s", dm->job_err);
			tl_err("start-up failed: removing what was created");
			dm->exit_code = 1;
			teardown(dm);
		} else if (dm->stopping) {
			teardown(dm);
		} else {
			tl_info("ready: %u configured device%s created",
				dm->cfg->n_devices,
				dm->cfg->n_devices == 1 ? "" : "s");
			if (dm->reload_pending)
				reload_again(dm);
		}
	} else if (kind == JOB_RELOAD) {
		reload_done(dm);
		if (dm->stopping)
			teardown(dm);
		else if (dm->reload_pending)
			reload_again(dm);
	} else {
		finish(dm);
	}
}

/* ---- signals ------------------------------------------------------------------ */

static void stop_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct daemon *dm = w->data;

	if (dm->stopping) {
		tl_warn("already stopping (waiting for the kernel to release the devices)");
		return;
	}
	tl_info("signal %d: stopping", w->signum);
	dm->stopping = true;
	if (dm->job == JOB_NONE)
		teardown(dm);
	/* else: job_done_cb() tears down when creation is over */
}

/*
 * SIGHUP, the control socket's "reload" and (with daemon.hot_reload) a
 * change of the configuration file: apply the file again.
 *
 *   1. The whole new file is parsed and checked first: a bad file changes
 *      nothing and its error (file:line:column) is returned.
 *   2. Daemon settings: log_level applies at once; those fixed at start
 *      (workers, hba, handler_dirs, control_socket, ...) are reported as
 *      needing a restart and keep their running values.
 *   3. Handlers whose files changed are reloaded on every worker (as hot
 *      reload does); a failure keeps the old code and is reported.
 *   4. Devices, diffed by name: changed handler options reopen the handler
 *      with the new options on its worker (a refusal keeps the old ones);
 *      then, on the job thread as at start: removed devices are unexported
 *      and removed (the kernel drains their I/O); devices whose handler,
 *      block size, limits, read-only flag or exports changed are removed
 *      and created again; sizes and write caches change through their
 *      configfs attributes (the kernel sends RECONFIG); new devices are
 *      created and exported.
 * Returns 0 (the device changes may still be under way: their outcome is
 * logged), or -1 with the first problem in err.
 */

static void plan_free(struct reload_plan *p)
{
	unsigned int i;

	for (i = 0; i < p->ngone; i++)
		free(p->gone[i]);
	free(p->gone);
	free(p->act);
	memset(p, 0, sizeof(*p));
}

static bool same_exports(const struct cfg_device *a, const struct cfg_device *b)
{
	if (a->loop.enabled != b->loop.enabled ||
	    a->iscsi.enabled != b->iscsi.enabled)
		return false;
	if (a->loop.enabled && (strcmp(a->loop.wwn, b->loop.wwn) ||
				a->loop.lun != b->loop.lun))
		return false;
	if (a->iscsi.enabled && (strcmp(a->iscsi.iqn, b->iscsi.iqn) ||
				 strcmp(a->iscsi.portal_ip, b->iscsi.portal_ip) ||
				 a->iscsi.port != b->iscsi.port ||
				 a->iscsi.lun != b->iscsi.lun))
		return false;
	return true;
}

/* What cannot change on a live backstore: it is created again. */
static bool needs_recreate(const struct cfg_device *a,
			   const struct cfg_device *b)
{
	return strcmp(a->handler, b->handler) ||
	       a->block_size != b->block_size ||
	       a->hw_max_sectors != b->hw_max_sectors ||
	       a->max_data_area_mb != b->max_data_area_mb ||
	       a->data_pages_per_blk != b->data_pages_per_blk ||
	       a->cmd_ring_size_mb != b->cmd_ring_size_mb ||
	       a->cmd_time_out != b->cmd_time_out ||
	       a->read_only != b->read_only || !same_exports(a, b);
}

static struct ddev *find_served(struct daemon *dm, unsigned int hba,
				const char *name)
{
	struct ddev *e;

	for (e = dm->devs; e; e = e->next)
		if (e->name.hba == hba && !strcmp(e->name.dev, name))
			return e;
	return NULL;
}

static bool str_differs(const char *a, const char *b)
{
	return (a == NULL) != (b == NULL) || (a && strcmp(a, b));
}

#define SWAP(a, b) do { __typeof__(a) t_ = (a); (a) = (b); (b) = t_; } while (0)

/*
 * Settings read once at start: say so, and keep the running values in nc
 * (so that the next reload compares against what really runs).
 */
static void settings_needing_restart(struct daemon *dm, struct tl_config *nc)
{
	struct tl_config *oc = dm->cfg;
	char *od = tl_config_handler_path(oc), *nd = tl_config_handler_path(nc);

	if (nc->workers != oc->workers)
		tl_warn("reload: daemon.workers changed (%u -> %u): needs a restart",
			oc->workers, nc->workers);
	if (nc->hba != oc->hba) {
		tl_warn("reload: daemon.hba changed (%u -> %u): needs a restart; devices stay in user_%u",
			oc->hba, nc->hba, oc->hba);
		nc->hba = oc->hba;
	}
	if (str_differs(od, nd))
		tl_warn("reload: daemon.handler_dirs changed: needs a restart");
	if (str_differs(oc->control_socket, nc->control_socket))
		tl_warn("reload: daemon.control_socket changed: needs a restart");
	if (str_differs(oc->pid_file, nc->pid_file))
		tl_warn("reload: daemon.pid_file changed: needs a restart");
	if (oc->hot_reload != nc->hot_reload)
		tl_warn("reload: daemon.hot_reload changed: needs a restart");
	if (oc->poll_us != nc->poll_us)
		tl_warn("reload: daemon.poll_us changed (%u -> %u): needs a restart",
			oc->poll_us, nc->poll_us);
	if (oc->io_uring != nc->io_uring)
		tl_warn("reload: daemon.io_uring changed: needs a restart");
	free(od);
	free(nd);
	nc->io_uring = oc->io_uring;
	nc->workers = oc->workers;
	nc->hot_reload = oc->hot_reload;
	nc->poll_us = oc->poll_us;
	if (oc->lua_timeout_ms != nc->lua_timeout_ms ||
	    oc->lua_memory_limit != nc->lua_memory_limit)
		tl_warn("reload: daemon.lua_timeout_ms/lua_memory_limit changed: needs a restart");
	nc->lua_timeout_ms = oc->lua_timeout_ms;
	nc->lua_memory_limit = oc->lua_memory_limit;
	SWAP(nc->handler_dirs, oc->handler_dirs);
	SWAP(nc->n_handler_dirs, oc->n_handler_dirs);
	SWAP(nc->control_socket, oc->control_socket);
	SWAP(nc->pid_file, oc->pid_file);
}

/*
 * Diff dm->cfg against nc into dm->plan; reopen handlers whose options
 * changed.  Returns how many device changes the job has to make.
 */
static unsigned int plan_devices(struct daemon *dm, struct tl_config *nc,
				 char *err, size_t errlen, int *rc)
{
	struct tl_config *oc = dm->cfg;
	struct reload_plan *p = &dm->plan;
	char rerr[1024];
	unsigned int i, work = 0;

	p->act = calloc(nc->n_devices ? nc->n_devices : 1, sizeof(*p->act));
	p->gone = calloc(oc->n_devices ? oc->n_devices : 1, sizeof(*p->gone));
	if (!p->act || !p->gone) {
		snprintf(err, errlen, "out of memory");
		*rc = -1;
		return 0;
	}
	p->nact = nc->n_devices;
	for (i = 0; i < oc->n_devices; i++) {
		const char *name = oc->devices[i].name;

		if (tl_config_find(nc, name) || dm->missing[i])
			continue;
		p->gone[p->ngone] = strdup(name);
		if (p->gone[p->ngone])
			p->ngone++;
	}
	for (i = 0; i < nc->n_devices; i++) {
		struct cfg_device *d = &nc->devices[i], *o = NULL;
		struct ddev *e;
		unsigned int oi;

		for (oi = 0; oi < oc->n_devices; oi++)
			if (!strcmp(oc->devices[oi].name, d->name)) {
				o = &oc->devices[oi];
				break;
			}
		if (!o || dm->missing[oi]) {
			p->act[i] = ACT_CREATE;
		} else if (needs_recreate(o, d)) {
			p->act[i] = ACT_REMOVE | ACT_CREATE;
		} else {
			if (o->size != d->size)
				p->act[i] |= ACT_SIZE;
			if (o->write_cache != d->write_cache)
				p->act[i] |= ACT_WCACHE;
			if (!strcmp(o->options, d->options))
				goto next;
			e = find_served(dm, oc->hba, d->name);
			if (!e) {
				tl_warn("reload: %s: options changed but the device is not served",
					d->name);
				goto next;
			}
			tl_info("reload: %s: new options %s", d->name,
				d->options);
			if (tl_worker_reopen_device(e->w, e->dev, d->options,
						    rerr, sizeof(rerr))) {
				tl_err("reload: %s: new options refused, keeping the old ones: %s",
				       d->name, rerr);
				/* What runs is what the next reload compares. */
				SWAP(d->options, o->options);
				memcpy(d->cfgstring, o->cfgstring,
				       sizeof(d->cfgstring));
				if (!*rc)
					snprintf(err, errlen, "%s:%d: %s: %s",
						 nc->path, d->line, d->name,
						 rerr);
				*rc = -1;
			}
		}
next:
		if (p->act[i])
			work++;
	}
	return work + p->ngone;
}

static int daemon_reload(struct daemon *dm, char *err, size_t errlen)
{
	struct tl_config *nc = NULL;
	char werr[1024];
	unsigned int i, work = 0;
	bool *missing;
	int rc = 0;

	err[0] = '\0';
	if (dm->stopping) {
		snprintf(err, errlen, "the daemon is stopping");
		return -1;
	}
	if (dm->cfg->path) {
		nc = tl_config_load(dm->cfg->path, err, errlen);
		if (!nc) {
			tl_err("reload: %s (keeping the running configuration)",
			       err);
			return -1;
		}
	}
	if (dm->job != JOB_NONE) {
		/* The file is good: apply it once the devices are done. */
		tl_info("reload: queued behind the device changes under way");
		dm->reload_pending = true;
		tl_config_free(nc);
		return 0;
	}
	if (nc) {
		if (nc->log_level != dm->cfg->log_level) {
			tl_log_threshold = nc->log_level;
			tl_info("reload: log level %s",
				tl_log_level_name(nc->log_level));
		}
		settings_needing_restart(dm, nc);
	}
	for (i = 0; i < dm->nworkers; i++) {
		if (!tl_worker_reload(dm->workers[i], false, werr, sizeof(werr)))
			continue;
		tl_err("reload: worker %u: handler reload failed, the running code stays: %s",
		       i, werr);
		if (!rc)
			snprintf(err, errlen, "%s", werr);
		rc = -1;
	}
	if (!nc)
		goto done;

	missing = calloc(nc->n_devices ? nc->n_devices : 1, sizeof(*missing));
	if (!missing) {
		tl_config_free(nc);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	plan_free(&dm->plan);
	if (dm->kernel) {
		work = plan_devices(dm, nc, err, errlen, &rc);
	}
	/* From here on the new file is the configuration. */
	tl_config_free(dm->cfg);
	dm->cfg = nc;
	free(dm->missing);
	dm->missing = missing;
	if (work) {
		if (start_job(dm, JOB_RELOAD)) {
			snprintf(err, errlen, "cannot start the configfs job");
			plan_free(&dm->plan);
			return -1;
		}
		tl_info("reload: %u device change%s under way", work,
			work == 1 ? "" : "s");
		return rc;
	}
	plan_free(&dm->plan);
done:
	if (!rc)
		tl_info("reloaded (log level %s)",
			tl_log_level_name(tl_log_threshold));
	return rc;
}

/* The job thread finished a reload's device changes. */
static void reload_done(struct daemon *dm)
{
	struct reload_plan *p = &dm->plan;
	unsigned int i;

	for (i = 0; i < p->nact && i < dm->cfg->n_devices; i++)
		if (p->act[i] & ACT_FAILED)
			dm->missing[i] = true;
	if (dm->job_rc) {
		tl_err("reload: %s", dm->job_err);
		tl_err("reload: done, with errors (a device that could not be created is tried again at the next reload)");
	} else {
		tl_info("reload: done: %u configured device%s",
			dm->cfg->n_devices, dm->cfg->n_devices == 1 ? "" : "s");
	}
	plan_free(p);
}

static void reload_again(struct daemon *dm)
{
	char err[1024];

	dm->reload_pending = false;
	daemon_reload(dm, err, sizeof(err));
}

/* Signals and file changes: a reload asked for during a job waits for it. */
static void reload_async(struct daemon *dm)
{
	if (dm->job != JOB_NONE && !dm->stopping) {
		tl_info("reload: waiting for the device changes under way");
		dm->reload_pending = true;
		return;
	}
	reload_again(dm);
}

static void hup_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct daemon *dm = w->data;

	tl_info("SIGHUP: reloading %s", dm->cfg->path ? dm->cfg->path :
		"the handlers");
	reload_async(dm);
}

/* ---- daemon.hot_reload: the configuration file -------------------------------- */

#define CFG_SETTLE_SECONDS 0.2	/* editors write, rename, chmod: wait it out */

static void cfg_settle_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct daemon *dm = t->data;

	tl_info("%s changed: reloading", dm->cfg->path);
	reload_async(dm);
}

static void cfg_inotify_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	struct daemon *dm = io->data;
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	const char *base = strrchr(dm->cfg->path, '/');
	ssize_t len;
	bool hit = false;

	base = base ? base + 1 : dm->cfg->path;
	while ((len = read(dm->cfg_inotify, buf, sizeof(buf))) > 0) {
		for (char *p = buf; p < buf + len;) {
			struct inotify_event *ev = (struct inotify_event *)p;

			if (ev->len && !strcmp(ev->name, base))
				hit = true;
			p += sizeof(*ev) + ev->len;
		}
	}
	if (hit) {
		ev_timer_stop(loop, &dm->cfg_settle);
		ev_timer_set(&dm->cfg_settle, CFG_SETTLE_SECONDS, 0);
		ev_timer_start(loop, &dm->cfg_settle);
	}
}

/* Watch the file's directory: editors replace the file by a rename. */
static void watch_config(struct daemon *dm)
{
	char dir[4096], *slash;

	dm->cfg_inotify = -1;
	if (!dm->cfg->hot_reload || !dm->cfg->path)
		return;
	snprintf(dir, sizeof(dir), "%s", dm->cfg->path);
	slash = strrchr(dir, '/');
	if (slash)
		*(slash == dir ? slash + 1 : slash) = '\0';
	else
		snprintf(dir, sizeof(dir), ".");
	dm->cfg_inotify = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (dm->cfg_inotify < 0 ||
	    inotify_add_watch(dm->cfg_inotify, dir, IN_CLOSE_WRITE |
			      IN_MOVED_TO | IN_CREATE) < 0) {
		tl_warn("cannot watch %s (%s): the configuration reloads on SIGHUP or ctl reload only",
			dir, strerror(errno));
		if (dm->cfg_inotify >= 0)
			close(dm->cfg_inotify);
		dm->cfg_inotify = -1;
		return;
	}
	ev_io_init(&dm->cfg_io, cfg_inotify_cb, dm->cfg_inotify, EV_READ);
	dm->cfg_io.data = dm;
	ev_io_start(dm->loop, &dm->cfg_io);
	ev_timer_init(&dm->cfg_settle, cfg_settle_cb, CFG_SETTLE_SECONDS, 0);
	dm->cfg_settle.data = dm;
}

static void unwatch_config(struct daemon *dm)
{
	if (dm->cfg_inotify < 0)
		return;
	ev_io_stop(dm->loop, &dm->cfg_io);
	ev_timer_stop(dm->loop, &dm->cfg_settle);
	close(dm->cfg_inotify);
	dm->cfg_inotify = -1;
}

/* ---- the control socket's view of us ------------------------------------- */

static void ctl_each_device(void *ctx, tl_ctl_dev_fn fn, void *arg)
{
	struct daemon *dm = ctx;
	struct ddev *e;

	for (e = dm->devs; e; e = e->next) {
		struct tl_ctl_dev d = {
			.name = e->name.dev,
			.handler = e->name.subtype,
			.worker = tl_worker_live(e->w)->index,
			.dev = e->dev,
		};

		fn(arg, &d);
	}
}

static int ctl_reload(void *ctx, char *err, size_t errlen)
{
	return daemon_reload(ctx, err, errlen);
}

static unsigned int ctl_workers(void *ctx)
{
	return ((struct daemon *)ctx)->nworkers;
}

static const char *ctl_problem(void *ctx, unsigned int i)
{
	struct daemon *dm = ctx;

	return i < dm->nworkers ? tl_worker_live(dm->workers[i])->wd_report :
				  NULL;
}

static void start_control(struct daemon *dm)
{
	struct tl_control_ops ops = {
		.ctx = dm,
		.each_device = ctl_each_device,
		.reload = ctl_reload,
		.workers = ctl_workers,
		.problem = ctl_problem,
	};
	char err[512];

	if (!dm->cfg->control_socket)
		return;
	dm->ctl = tl_control_start(dm->loop, dm->cfg->control_socket, &ops,
				   err, sizeof(err));
	if (!dm->ctl)
		tl_warn("control socket %s: %s", dm->cfg->control_socket, err);
}

/* ---- main ------------------------------------------------------------------------- */

static void usage(FILE *out)
{
	fprintf(out,
		"usage: tcmu-lua daemon [-c CONFIG.yaml] [--check] [--no-kernel]\n"
		"  -c, --config FILE  devices to create and daemon settings (YAML)\n"
		"      --check        check the configuration file and exit\n"
		"      --no-kernel    do not touch configfs or netlink\n"
		"  -v, --verbose      log at debug level\n");
}

static int write_pid_file(const char *path)
{
	char buf[32];
	int fd, n;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	n = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
	if (write(fd, buf, (size_t)n) != n) {
		close(fd);
		return -EIO;
	}
	close(fd);
	return 0;
}

static int make_workers(struct daemon *dm)
{
	struct tl_worker_opts o = { 0 };
	char err[512];
	char *dirs = tl_config_handler_path(dm->cfg);
	unsigned int i;

	o.handler_dirs = dirs;
	o.hot_reload = dm->cfg->hot_reload;
	o.poll_us = dm->cfg->poll_us;
	o.no_uring = !dm->cfg->io_uring;
	o.lua_timeout_ms = dm->cfg->lua_timeout_ms;
	o.lua_memory_limit = dm->cfg->lua_memory_limit;
	dm->workers = calloc(dm->cfg->workers, sizeof(*dm->workers));
	if (!dm->workers) {
		free(dirs);
		return -ENOMEM;
	}
	for (i = 0; i < dm->cfg->workers; i++) {
		dm->workers[i] = tl_worker_new((int)i, true, &o, err,
					       sizeof(err));
		if (!dm->workers[i]) {
			tl_err("worker %u: %s", i, err);
			free(dirs);
			return -1;
		}
		dm->nworkers++;
	}
	free(dirs);
	return 0;
}

static void free_workers(struct daemon *dm)
{
	unsigned int i;

	for (i = 0; i < dm->nworkers; i++)
		tl_worker_free(dm->workers[i]);
	free(dm->workers);
	dm->workers = NULL;
	dm->nworkers = 0;
}

static void watch_signals(struct daemon *dm)
{
	ev_signal_init(&dm->sig_term, stop_cb, SIGTERM);
	ev_signal_init(&dm->sig_int, stop_cb, SIGINT);
	ev_signal_init(&dm->sig_hup, hup_cb, SIGHUP);
	dm->sig_term.data = dm->sig_int.data = dm->sig_hup.data = dm;
	ev_signal_start(dm->loop, &dm->sig_term);
	ev_signal_start(dm->loop, &dm->sig_int);
	ev_signal_start(dm->loop, &dm->sig_hup);
}

int tl_daemon_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check", no_argument, NULL, 'C' },
		{ "no-kernel", no_argument, NULL, 'K' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct daemon dm = { 0 };
	const char *config_path = NULL;
	bool check = false, verbose = false;
	sigset_t mask, old;
	char err[512];
	size_t i;
	int c;

	dm.kernel = true;
	dm.cfg_inotify = -1;
	optind = 1;
	while ((c = getopt_long(argc, argv, "c:vh", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			config_path = optarg;
			break;
		case 'C':
			check = true;
			break;
		case 'K':
			dm.kernel = false;
			break;
		case 'v':
			verbose = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "tcmu-lua daemon: unexpected argument '%s'\n",
			argv[optind]);
		usage(stderr);
		return 2;
	}

	/* The whole file is checked before anything is touched. */
	dm.cfg = config_path ? tl_config_load(config_path, err, sizeof(err)) :
			       tl_config_default();
	if (!dm.cfg) {
		fprintf(stderr, "%s\n", config_path ? err : "out of memory");
		return 1;
	}
	if (check) {
		printf("%s: ok, %u device%s\n", config_path ? config_path :
		       "(defaults)", dm.cfg->n_devices,
		       dm.cfg->n_devices == 1 ? "" : "s");
		tl_config_free(dm.cfg);
		return 0;
	}
	dm.missing = calloc(dm.cfg->n_devices ? dm.cfg->n_devices : 1,
			    sizeof(*dm.missing));
	if (!dm.missing) {
		fprintf(stderr, "out of memory\n");
		tl_config_free(dm.cfg);
		return 1;
	}
	tl_log_threshold = verbose ? TL_LOG_DEBUG : dm.cfg->log_level;
	signal(SIGPIPE, SIG_IGN);

	dm.loop = ev_default_loop(EVFLAG_AUTO);
	dm.cfs = tl_cfs_new();
	if (!dm.loop || !dm.cfs) {
		tl_err("cannot create the event loop");
		tl_config_free(dm.cfg);
		tl_cfs_free(dm.cfs);
		free(dm.missing);
		return 1;
	}
	ev_async_init(&dm.job_done, job_done_cb);
	dm.job_done.data = &dm;
	ev_async_start(dm.loop, &dm.job_done);

	/* Before any thread exists: they inherit what we keep. */
	if (tl_privileges_drop(err, sizeof(err))) {
		tl_err("dropping privileges: %s", err);
		dm.exit_code = 1;
		goto out;
	}

	/* Worker threads inherit a mask without our signals. */
	sigemptyset(&mask);
	for (i = 0; i < sizeof(handled_signals) / sizeof(handled_signals[0]); i++)
		sigaddset(&mask, handled_signals[i]);
	pthread_sigmask(SIG_BLOCK, &mask, &old);
	c = make_workers(&dm);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (c) {
		dm.exit_code = 1;
		goto out;
	}
	watch_signals(&dm);
	start_control(&dm);
	watch_config(&dm);

	if (dm.cfg->pid_file && (c = write_pid_file(dm.cfg->pid_file)))
		tl_warn("pid file %s: %s", dm.cfg->pid_file, strerror(-c));

	if (dm.kernel) {
		if (kernel_start(&dm)) {
			dm.exit_code = 1;
			goto out;
		}
		if (dm.cfg->n_devices) {
			if (start_job(&dm, JOB_CREATE)) {
				dm.exit_code = 1;
				goto out;
			}
		} else {
			tl_info("ready: serving devices as the kernel adds them");
		}
	} else {
		if (dm.cfg->n_devices)
			tl_warn("--no-kernel: %u configured device%s not created",
				dm.cfg->n_devices,
				dm.cfg->n_devices == 1 ? " is" : "s are");
		tl_info("ready (no kernel)");
	}
	ev_run(dm.loop, 0);

out:
	while (dm.devs)
		unserve(&dm, dm.devs);
	if (dm.nl) {
		/*
		 * With nobody to answer, a configfs write must not wait: new
		 * devices are then made with nl_reply_supported=0.
		 */
		tl_nl_set_features(dm.nl, false);
		ev_io_stop(dm.loop, &dm.nl_io);
		tl_nl_close(dm.nl);
	}
	if (dm.ctl)
		tl_control_stop(dm.ctl);
	unwatch_config(&dm);
	plan_free(&dm.plan);
	free(dm.missing);
	free_workers(&dm);
	if (dm.cfg->pid_file)
		unlink(dm.cfg->pid_file);
	tl_cfs_free(dm.cfs);
	tl_config_free(dm.cfg);
	tl_info("exiting with status %d", dm.exit_code);
	return dm.exit_code;
}
