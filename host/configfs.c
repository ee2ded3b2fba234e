// SPDX-License-Identifier: MIT
/*
 * configfs.c - make and unmake LIO objects for configured devices.
 *
 * Everything here is a mkdir, a symlink or a one-line write, but the order
 * matters to the kernel: a tcm_loop nexus must exist before a LUN is
 * linked and can only be dropped after every LUN is gone; a backstore can
 * only be removed once no LUN points at it.  Undoing the log backwards
 * gets that right by construction.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "configfs.h"
#include "log.h"

enum cfs_kind {
	CFS_MKDIR,	/* undo: rmdir */
	CFS_SHARED,	/* undo: rmdir if empty (HBA, fabric roots) */
	CFS_SYMLINK,	/* undo: unlink */
	CFS_NEXUS,	/* undo: write "NULL" to the tcm_loop nexus */
};

struct cfs_entry {
	enum cfs_kind kind;
	char *path;
	char *owner;
};

struct tl_cfs {
	struct cfs_entry *e;
	unsigned int n, cap;
};

/* ---- files ------------------------------------------------------------- */

int tl_cfs_read(const char *path, char *buf, size_t size)
{
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, size - 1);
	if (n < 0) {
		n = -errno;
		close(fd);
		return (int)n;
	}
	close(fd);
	buf[n] = '\0';
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		buf[--n] = '\0';
	return 0;
}

int tl_cfs_read_u64(const char *path, uint64_t *v)
{
	char buf[64], *end;
	int rc;

	rc = tl_cfs_read(path, buf, sizeof(buf));
	if (rc)
		return rc;
	errno = 0;
	*v = strtoull(buf, &end, 0);
	if (errno || end == buf)
		return -EINVAL;
	return 0;
}

int tl_cfs_write(const char *path, const char *val)
{
	size_t len = strlen(val);
	ssize_t n;
	int fd, rc = 0;

	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	/* configfs takes one write() as the whole value. */
	n = write(fd, val, len);
	if (n < 0)
		rc = -errno;
	else if ((size_t)n != len)
		rc = -EIO;
	close(fd);
	return rc;
}

static int dev_path(char *buf, size_t size, unsigned int hba, const char *dev,
		    const char *attr)
{
	int n = snprintf(buf, size, TL_CFS_ROOT "/core/user_%u/%s%s%s", hba,
			 dev, attr ? "/" : "", attr ? attr : "");

	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

int tl_cfs_dev_read(unsigned int hba, const char *dev, const char *attr,
		    char *buf, size_t size)
{
	char path[PATH_MAX];
	int rc = dev_path(path, sizeof(path), hba, dev, attr);

	return rc ? rc : tl_cfs_read(path, buf, size);
}

int tl_cfs_dev_read_u64(unsigned int hba, const char *dev, const char *attr,
			uint64_t *v)
{
	char path[PATH_MAX];
	int rc = dev_path(path, sizeof(path), hba, dev, attr);

	return rc ? rc : tl_cfs_read_u64(path, v);
}

int tl_cfs_dev_write(unsigned int hba, const char *dev, const char *attr,
		     const char *val)
{
	char path[PATH_MAX];
	int rc = dev_path(path, sizeof(path), hba, dev, attr);

	return rc ? rc : tl_cfs_write(path, val);
}

bool tl_cfs_available(char *err, size_t errlen)
{
	struct stat st;

	if (stat("/sys/kernel/config", &st) || !S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "configfs is not available (/sys/kernel/config is missing: is CONFIG_CONFIGFS_FS enabled?)");
		return false;
	}
	if (stat(TL_CFS_ROOT, &st)) {
		snprintf(err, errlen, "%s is missing: mount configfs (mount -t configfs none /sys/kernel/config) and load target_core_mod",
			 TL_CFS_ROOT);
		return false;
	}
	if (stat(TL_TCMU_PARAMS, &st)) {
		snprintf(err, errlen, "the target_core_user module is not loaded (modprobe target_core_user)");
		return false;
	}
	return true;
}

/* ---- the kernel's crash-recovery switches -------------------------------- */

int tl_cfs_block_netlink(bool on)
{
	return tl_cfs_write(TL_TCMU_PARAMS "/block_netlink", on ? "1" : "0");
}

int tl_cfs_reset_netlink(void)
{
	return tl_cfs_write(TL_TCMU_PARAMS "/reset_netlink", "1");
}

int tl_cfs_block_dev(unsigned int hba, const char *dev, bool on)
{
	return tl_cfs_dev_write(hba, dev, "action/block_dev", on ? "1" : "0");
}

int tl_cfs_reset_ring(unsigned int hba, const char *dev)
{
	/* 1: in-flight commands end with BUSY, so initiators retry them. */
	return tl_cfs_dev_write(hba, dev, "action/reset_ring", "1");
}

/* ---- the log --------------------------------------------------------------- */

struct tl_cfs *tl_cfs_new(void)
{
	return calloc(1, sizeof(struct tl_cfs));
}

void tl_cfs_free(struct tl_cfs *c)
{
	unsigned int i;

	if (!c)
		return;
	for (i = 0; i < c->n; i++) {
		free(c->e[i].path);
		free(c->e[i].owner);
	}
	free(c->e);
	free(c);
}

static bool logged(const struct tl_cfs *c, const char *path)
{
	unsigned int i;

	for (i = 0; i < c->n; i++)
		if (!strcmp(c->e[i].path, path))
			return true;
	return false;
}

static int log_add(struct tl_cfs *c, enum cfs_kind kind, const char *path,
		   const char *owner)
{
	struct cfs_entry *e;

	if (logged(c, path))	/* shared by two devices: undo it once */
		return 0;
	if (c->n == c->cap) {
		unsigned int cap = c->cap ? c->cap * 2 : 32;

		e = realloc(c->e, cap * sizeof(*e));
		if (!e)
			return -ENOMEM;
		c->e = e;
		c->cap = cap;
	}
	e = &c->e[c->n];
	e->kind = kind;
	e->path = strdup(path);
	e->owner = strdup(owner);
	if (!e->path || !e->owner) {
		free(e->path);
		free(e->owner);
		return -ENOMEM;
	}
	c->n++;
	return 0;
}

static int undo_one(const struct cfs_entry *e)
{
	switch (e->kind) {
	case CFS_MKDIR:
		return rmdir(e->path) ? -errno : 0;
	case CFS_SHARED:
		/* Still in use (by objects not ours, or ours): the caller
		 * leaves it. */
		return rmdir(e->path) ? -errno : 0;
	case CFS_SYMLINK:
		return unlink(e->path) && errno != ENOENT ? -errno : 0;
	case CFS_NEXUS: {
		int rc = tl_cfs_write(e->path, "NULL");

		return rc == -ENODEV ? 0 : rc;	/* ENODEV: no nexus left */
	}
	}
	return 0;
}

void tl_cfs_undo(struct tl_cfs *c, const char *owner)
{
	unsigned int i, kept = 0;
	int rc;

	for (i = c->n; i-- > 0;) {
		struct cfs_entry *e = &c->e[i];

		if (owner && strcmp(owner, e->owner))
			continue;
		rc = undo_one(e);
		if (rc == -ENOENT)
			rc = 0;		/* someone else removed it already */
		if (e->kind == CFS_SHARED &&
		    (rc == -ENOTEMPTY || rc == -EBUSY)) {
			/*
			 * Other devices still use it.  Removing one device
			 * keeps the entry (in its place, before what is in
			 * it) for whoever goes last; a full undo drops it.
			 */
			if (owner)
				continue;
			rc = 0;
		}
		if (rc)
			tl_warn("configfs: cannot remove %s: %s", e->path,
				strerror(-rc));
		else
			tl_dbg("configfs: removed %s", e->path);
		free(e->path);
		free(e->owner);
		e->path = e->owner = NULL;
	}
	/* Close the gaps, keeping the order of what is left. */
	for (i = 0; i < c->n; i++)
		if (c->e[i].path)
			c->e[kept++] = c->e[i];
	c->n = kept;
}

/* ---- building blocks --------------------------------------------------- */

struct ctx {
	struct tl_cfs *c;
	const char *owner;
	char *err;
	size_t errlen;
};

static int fail(struct ctx *x, int rc, const char *what, const char *path)
{
	snprintf(x->err, x->errlen, "%s %s: %s", what, path, strerror(-rc));
	return rc;
}

static int mkpath(struct ctx *x, char *buf, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int mkpath(struct ctx *x, char *buf, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, PATH_MAX, fmt, ap);
	va_end(ap);
	if (n < 0 || n >= PATH_MAX) {
		snprintf(x->err, x->errlen, "path too long: %.64s...", buf);
		return -ENAMETOOLONG;
	}
	return 0;
}

/*
 * mkdir that also accepts a directory that is already there (ours from a
 * run that died, or one we share).  Shared ones (the HBA, a fabric's top
 * directory) are removed at the end only if nothing else is in them; that
 * also unpins the kernel modules they hold.
 */
static int mkdir_logged(struct ctx *x, const char *path, bool own)
{
	int rc = 0;

	if (mkdir(path, 0755)) {
		if (errno != EEXIST)
			return fail(x, -errno, "cannot create", path);
	} else {
		tl_dbg("configfs: created %s", path);
	}
	rc = log_add(x->c, own ? CFS_MKDIR : CFS_SHARED, path, x->owner);
	return rc ? fail(x, rc, "cannot log", path) : 0;
}

static int write_attr(struct ctx *x, const char *dir, const char *attr,
		      const char *val)
{
	char path[PATH_MAX];
	int rc;

	rc = mkpath(x, path, "%s/%s", dir, attr);
	if (rc)
		return rc;
	rc = tl_cfs_write(path, val);
	if (rc) {
		snprintf(x->err, x->errlen, "writing '%s' to %s: %s", val, path,
			 strerror(-rc));
		return rc;
	}
	return 0;
}

static int write_control(struct ctx *x, const char *dir, const char *fmt,
			 unsigned long long v)
{
	char tok[64];

	snprintf(tok, sizeof(tok), fmt, v);
	return write_attr(x, dir, "control", tok);
}

/* ---- backstores ------------------------------------------------------------ */

int tl_cfs_dev_config(const struct cfg_device *d, char *buf, size_t size)
{
	int n;

	n = snprintf(buf, size, "%s/%s", d->handler, d->cfgstring);
	if (n >= 0 && (size_t)n < size && (size_t)n < CFG_CFGSTR_MAX)
		return 0;
	/* Too long for the kernel: the options still come from the file. */
	n = snprintf(buf, size, "%s/", d->handler);
	return n >= 0 && (size_t)n < size ? 0 : -ENAMETOOLONG;
}

/* An enabled backstore of ours from a previous run: serve it again. */
static int adopt_device(struct ctx *x, const char *path,
			const struct cfg_device *d)
{
	char attr[PATH_MAX], cfg[CFG_CFGSTR_MAX + 2];
	size_t hl = strlen(d->handler);
	int rc;

	rc = mkpath(x, attr, "%s/attrib/dev_config", path);
	if (rc)
		return rc;
	rc = tl_cfs_read(attr, cfg, sizeof(cfg));
	if (rc)
		return fail(x, rc, "cannot read", attr);
	if (strncmp(cfg, d->handler, hl) || (cfg[hl] && cfg[hl] != '/')) {
		snprintf(x->err, x->errlen,
			 "%s already exists with dev_config '%s', not handler %s: remove it or rename the device",
			 path, cfg, d->handler);
		return -EEXIST;
	}
	tl_info("%s: already in configfs (left by an earlier run?): adopting it",
		d->name);
	rc = log_add(x->c, CFS_MKDIR, path, x->owner);
	return rc ? fail(x, rc, "cannot log", path) : 0;
}

int tl_cfs_create_device(struct tl_cfs *c, unsigned int hba,
			 const struct cfg_device *d, char *err, size_t errlen)
{
	struct ctx x = { c, d->name, err, errlen };
	char hba_path[PATH_MAX], path[PATH_MAX], enable[PATH_MAX], tmr[PATH_MAX];
	char devcfg[CFG_CFGSTR_MAX + 1], on[8];
	int rc;

	if ((rc = mkpath(&x, hba_path, TL_CFS_ROOT "/core/user_%u", hba)) ||
	    (rc = mkpath(&x, path, "%s/%s", hba_path, d->name)) ||
	    (rc = mkpath(&x, enable, "%s/enable", path)))
		return rc;
	rc = mkdir_logged(&x, hba_path, false);
	if (rc)
		return rc;

	if (!tl_cfs_read(enable, on, sizeof(on))) {
		if (!strcmp(on, "1"))
			return adopt_device(&x, path, d);
		/* Half made by a run that died while creating it. */
		tl_info("%s: removing a disabled leftover %s", d->name, path);
		if (rmdir(path))
			return fail(&x, -errno, "cannot remove", path);
	}

	rc = mkdir_logged(&x, path, true);
	if (rc)
		return rc;
	if ((rc = write_control(&x, path, "dev_size=%llu", d->size)) ||
	    (rc = write_control(&x, path, "hw_block_size=%llu", d->block_size)) ||
	    (rc = write_control(&x, path, "hw_max_sectors=%llu",
				d->hw_max_sectors)))
		return rc;
	/* The data area's size first: the kernel checks the block against it. */
	if (d->max_data_area_mb &&
	    (rc = write_control(&x, path, "max_data_area_mb=%llu",
				d->max_data_area_mb)))
		return rc;
	if (d->data_pages_per_blk &&
	    (rc = write_control(&x, path, "data_pages_per_blk=%llu",
				d->data_pages_per_blk)))
		return rc;
	if (d->cmd_ring_size_mb &&
	    (rc = write_control(&x, path, "cmd_ring_size_mb=%llu",
				d->cmd_ring_size_mb)))
		return rc;
	/*
	 * dev_config goes through its attribute, not control: control splits
	 * its input at commas, and a handler's options may contain some.
	 */
	rc = tl_cfs_dev_config(d, devcfg, sizeof(devcfg));
	if (rc)
		return fail(&x, rc, "dev_config for", path);
	if ((rc = write_attr(&x, path, "attrib/dev_config", devcfg)))
		return rc;
	if (d->write_cache &&
	    (rc = write_attr(&x, path, "attrib/emulate_write_cache", "1")))
		return rc;
	if (d->cmd_time_out >= 0) {
		char secs[16];

		snprintf(secs, sizeof(secs), "%d", d->cmd_time_out);
		if ((rc = write_attr(&x, path, "attrib/cmd_time_out", secs)))
			return rc;
	}
	/*
	 * Let aborts and resets reach the handler (kernel 5.9 and later; on
	 * older ones the attribute is missing and nothing is lost but that).
	 */
	rc = mkpath(&x, tmr, "%s/attrib/tmr_notification", path);
	if (rc)
		return rc;
	if (!access(tmr, F_OK) && (rc = write_attr(&x, path,
						  "attrib/tmr_notification", "1")))
		return rc;

	/* The kernel now asks the daemon (netlink) and waits for its answer. */
	tl_dbg("configfs: enabling %s", path);
	rc = tl_cfs_write(enable, "1");
	if (rc) {
		snprintf(err, errlen, "enabling %s: %s%s", path, strerror(-rc),
			 rc == -EAGAIN ? " (netlink is blocked)" : "");
		return rc;
	}
	return 0;
}

/* ---- exports ------------------------------------------------------------------ */

static int link_lun(struct ctx *x, const char *tpg, unsigned int lun,
		    unsigned int hba, const char *name)
{
	char lun_path[PATH_MAX], link[PATH_MAX], target[PATH_MAX];
	int rc;

	if ((rc = mkpath(x, lun_path, "%s/lun/lun_%u", tpg, lun)) ||
	    (rc = mkpath(x, link, "%s/%s", lun_path, name)) ||
	    (rc = mkpath(x, target, TL_CFS_ROOT "/core/user_%u/%s", hba, name)))
		return rc;
	rc = mkdir_logged(x, lun_path, true);
	if (rc)
		return rc;
	if (symlink(target, link) && errno != EEXIST)
		return fail(x, -errno, "cannot link", link);
	rc = log_add(x->c, CFS_SYMLINK, link, x->owner);
	return rc ? fail(x, rc, "cannot log", link) : 0;
}

/* The initiator side of a loop target: a WWN of its own, derived. */
static void nexus_wwn(const char *target, char *out, size_t size)
{
	uint64_t h = 0xcbf29ce484222325ULL;	/* FNV-1a */

	for (; *target; target++)
		h = (h ^ (unsigned char)*target) * 0x100000001b3ULL;
	h = (h ^ 'I') * 0x100000001b3ULL;
	snprintf(out, size, "naa.5001405%09" PRIx64, h & (uint64_t)0xfffffffff);
}

int tl_cfs_export_loop(struct tl_cfs *c, unsigned int hba,
		       const struct cfg_device *d, char *err, size_t errlen)
{
	struct ctx x = { c, d->name, err, errlen };
	char fabric[PATH_MAX], wwn[PATH_MAX], tpg[PATH_MAX], nexus[PATH_MAX];
	char cur[CFG_WWN_MAX], ini[CFG_WWN_MAX];
	int rc;

	if ((rc = mkpath(&x, fabric, TL_CFS_ROOT "/loopback")) ||
	    (rc = mkpath(&x, wwn, "%s/%s", fabric, d->loop.wwn)) ||
	    (rc = mkpath(&x, tpg, "%s/tpgt_1", wwn)) ||
	    (rc = mkpath(&x, nexus, "%s/nexus", tpg)))
		return rc;
	if ((rc = mkdir_logged(&x, fabric, false)) ||
	    (rc = mkdir_logged(&x, wwn, true)) ||
	    (rc = mkdir_logged(&x, tpg, true)))
		return rc;
	/* The nexus first: tcm_loop attaches LUNs to its SCSI host. */
	if (tl_cfs_read(nexus, cur, sizeof(cur)) || !cur[0]) {
		nexus_wwn(d->loop.wwn, ini, sizeof(ini));
		rc = tl_cfs_write(nexus, ini);
		if (rc)
			return fail(&x, rc, "cannot write the nexus", nexus);
	}
	rc = log_add(c, CFS_NEXUS, nexus, d->name);
	if (rc)
		return fail(&x, rc, "cannot log", nexus);
	return link_lun(&x, tpg, d->loop.lun, hba, d->name);
}

int tl_cfs_export_iscsi(struct tl_cfs *c, unsigned int hba,
			const struct cfg_device *d, char *err, size_t errlen)
{
	struct ctx x = { c, d->name, err, errlen };
	char fabric[PATH_MAX], iqn[PATH_MAX], tpg[PATH_MAX], np[PATH_MAX];
	char enable[PATH_MAX], on[8];
	int rc;

	if ((rc = mkpath(&x, fabric, TL_CFS_ROOT "/iscsi")) ||
	    (rc = mkpath(&x, iqn, "%s/%s", fabric, d->iscsi.iqn)) ||
	    (rc = mkpath(&x, tpg, "%s/tpgt_1", iqn)) ||
	    (rc = mkpath(&x, np, "%s/np/%s:%u", tpg, d->iscsi.portal_ip,
			d->iscsi.port)) ||
	    (rc = mkpath(&x, enable, "%s/enable", tpg)))
		return rc;
	if ((rc = mkdir_logged(&x, fabric, false)) ||
	    (rc = mkdir_logged(&x, iqn, true)) ||
	    (rc = mkdir_logged(&x, tpg, true)))
		return rc;
	rc = link_lun(&x, tpg, d->iscsi.lun, hba, d->name);
	if (rc)
		return rc;
	/* Binding the portal is where a port already in use shows up. */
	rc = mkdir_logged(&x, np, true);
	if (rc)
		return rc;
	/*
	 * Demo mode: any initiator may log in and gets the TPG's LUNs, no
	 * CHAP.  Write protection is the device's own (read_only answers
	 * writes with DATA PROTECT), so the TPG is left writable.
	 */
	if ((rc = write_attr(&x, tpg, "attrib/generate_node_acls", "1")) ||
	    (rc = write_attr(&x, tpg, "attrib/cache_dynamic_acls", "1")) ||
	    (rc = write_attr(&x, tpg, "attrib/demo_mode_write_protect", "0")) ||
	    (rc = write_attr(&x, tpg, "attrib/authentication", "0")))
		return rc;
	/* A TPG that is already enabled refuses a second enable. */
	if (tl_cfs_read(enable, on, sizeof(on)) || strcmp(on, "1"))
		return write_attr(&x, tpg, "enable", "1");
	return 0;
}
