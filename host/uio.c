// SPDX-License-Identifier: MIT
/*
 * uio.c - TCMU devices as the UIO layer shows them.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "configfs.h"
#include "device.h"
#include "log.h"
#include "uio.h"

#define UIO_CLASS "/sys/class/uio"
#define UIO_PREFIX "tcm-user/"

/* Copy the text up to the next '/' (or the end) into out. */
static const char *take_part(const char *s, char *out, size_t size,
			     bool *fits)
{
	size_t n = strcspn(s, "/");

	*fits = n < size;
	if (*fits) {
		memcpy(out, s, n);
		out[n] = '\0';
	}
	return s + n;
}

int tl_uio_parse_name(const char *s, struct tl_uio_name *n, const char **why)
{
	unsigned long hba;
	char *end;
	bool fits;

	memset(n, 0, sizeof(*n));
	if (strncmp(s, UIO_PREFIX, strlen(UIO_PREFIX))) {
		*why = "not a TCMU device";
		return -1;
	}
	s += strlen(UIO_PREFIX);
	if (!isdigit((unsigned char)*s)) {
		*why = "no HBA number";
		return -1;
	}
	errno = 0;
	hba = strtoul(s, &end, 10);
	if (errno || hba > 0xffffffffUL || *end != '/') {
		*why = "bad HBA number";
		return -1;
	}
	n->hba = (unsigned int)hba;

	s = take_part(end + 1, n->dev, sizeof(n->dev), &fits);
	if (!fits || !n->dev[0]) {
		*why = fits ? "empty device name" : "device name too long";
		return -1;
	}
	if (*s != '/' || !s[1]) {
		*why = "dev_config is empty, so there is no handler to serve it (write dev_config=<handler>/<config> before enabling)";
		return -1;
	}
	s = take_part(s + 1, n->subtype, sizeof(n->subtype), &fits);
	if (!fits) {
		*why = "handler name too long";
		return -1;
	}
	if (!tl_valid_handler_name(n->subtype)) {
		*why = "the handler name (before the first '/' of dev_config) may only contain letters, digits, _ and -";
		return -1;
	}
	if (*s == '/')
		s++;
	if (strlen(s) >= sizeof(n->cfgstring)) {
		*why = "config string too long";
		return -1;
	}
	strcpy(n->cfgstring, s);
	return 0;
}

int tl_uio_read_name(unsigned int minor, char *buf, size_t size)
{
	char path[64];

	snprintf(path, sizeof(path), UIO_CLASS "/uio%u/name", minor);
	return tl_cfs_read(path, buf, size);
}

int tl_uio_scan(int (*fn)(void *arg, unsigned int minor, const char *name),
		void *arg)
{
	char name[TL_NAME_MAX + TL_CFGSTR_MAX + 64];
	struct dirent *de;
	unsigned int minor;
	int rc = 0;
	DIR *dir;

	dir = opendir(UIO_CLASS);
	if (!dir)	/* no UIO device at all yet */
		return errno == ENOENT ? 0 : -errno;
	while (!rc && (de = readdir(dir))) {
		if (sscanf(de->d_name, "uio%u", &minor) != 1)
			continue;
		if (tl_uio_read_name(minor, name, sizeof(name)))
			continue;	/* gone meanwhile */
		if (strncmp(name, UIO_PREFIX, strlen(UIO_PREFIX)))
			continue;
		rc = fn(arg, minor, name);
	}
	closedir(dir);
	return rc;
}

int tl_uio_open_fd(unsigned int minor)
{
	struct timespec pause = { 0, 20 * 1000 * 1000 };
	char path[64];
	int fd, tries;

	snprintf(path, sizeof(path), "/dev/uio%u", minor);
	/*
	 * devtmpfs makes the node before the event reaches us, but a udev
	 * that renames or re-creates nodes may lag: give it a moment.
	 */
	for (tries = 0; tries < 50; tries++) {
		fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
		if (fd >= 0 || errno != ENOENT)
			return fd < 0 ? -errno : fd;
		nanosleep(&pause, NULL);
	}
	return -ENOENT;
}

struct tl_dev *tl_uio_attach(int fd, unsigned int minor, char *err,
			     size_t errlen, int *errnum)
{
	const char *why = NULL;
	char path[96];
	uint64_t size;
	struct tl_dev *d;
	void *map;
	int rc;

	snprintf(path, sizeof(path), UIO_CLASS "/uio%u/maps/map0/size", minor);
	rc = tl_cfs_read_u64(path, &size);
	if (rc || !size || size > SIZE_MAX) {
		snprintf(err, errlen, "uio%u: cannot read the map size from %s: %s",
			 minor, path, rc ? strerror(-rc) : "bad size");
		*errnum = rc ? rc : -EINVAL;
		close(fd);
		return NULL;
	}
	/* The kernel refuses any mapping but the exact size of map 0. */
	map = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED) {
		*errnum = -errno;
		snprintf(err, errlen, "/dev/uio%u: mmap of %llu bytes: %s",
			 minor, (unsigned long long)size, strerror(errno));
		close(fd);
		return NULL;
	}
	d = tl_dev_new(fd, map, (size_t)size, &why);
	if (!d) {
		snprintf(err, errlen, "/dev/uio%u: %s", minor,
			 why ? why : "cannot attach to the ring");
		*errnum = -EINVAL;
		munmap(map, (size_t)size);
		close(fd);
		return NULL;
	}
	return d;
}

struct tl_dev *tl_uio_open(unsigned int minor, char *err, size_t errlen,
			   int *errnum)
{
	int fd = tl_uio_open_fd(minor);

	if (fd < 0) {
		snprintf(err, errlen, "/dev/uio%u: %s%s", minor, strerror(-fd),
			 fd == -EBUSY ? " (another daemon serves it)" : "");
		*errnum = fd;
		return NULL;
	}
	return tl_uio_attach(fd, minor, err, errlen, errnum);
}

int tl_uio_read_info(const struct tl_uio_name *n, struct tl_dev_info *info,
		     char *err, size_t errlen)
{
	uint64_t bs = 0, size = 0, sectors = 0, wc = 0;
	int rc;

	snprintf(info->name, sizeof(info->name), "%s", n->dev);
	snprintf(info->subtype, sizeof(info->subtype), "%s", n->subtype);
	snprintf(info->cfgstring, sizeof(info->cfgstring), "%s", n->cfgstring);

	/*
	 * block_size is what the target core exports; while the kernel is
	 * still enabling the device (ADDED_DEVICE) it is 0 and hw_block_size
	 * is the value it will get.
	 */
	if (tl_cfs_dev_read_u64(n->hba, n->dev, "attrib/block_size", &bs) || !bs)
		rc = tl_cfs_dev_read_u64(n->hba, n->dev, "attrib/hw_block_size",
					 &bs);
	else
		rc = 0;
	if (rc || !bs || bs > 65536 || (bs & (bs - 1))) {
		snprintf(err, errlen, "%s: no usable block size in configfs (%s)",
			 n->dev, rc ? strerror(-rc) : "bad value");
		return rc ? rc : -EINVAL;
	}
	rc = tl_cfs_dev_read_u64(n->hba, n->dev, "attrib/dev_size", &size);
	if (rc) {
		snprintf(err, errlen, "%s: cannot read attrib/dev_size: %s",
			 n->dev, strerror(-rc));
		return rc;
	}
	/* hw_max_sectors counts logical blocks; 128 is the kernel default. */
	if (tl_cfs_dev_read_u64(n->hba, n->dev, "attrib/hw_max_sectors",
				&sectors) || !sectors || sectors > UINT32_MAX)
		sectors = 128;
	if (tl_cfs_dev_read_u64(n->hba, n->dev, "attrib/emulate_write_cache",
				&wc))
		wc = 0;

	info->block_size = (uint32_t)bs;
	info->size = size;
	info->num_blocks = size / bs;
	info->max_xfer_blocks = (uint32_t)sectors;
	info->write_cache = wc ? 1 : 0;
	if (size % bs)
		tl_warn("%s: dev_size %llu is not a multiple of the block size %llu: the last %llu bytes are not used",
			n->dev, (unsigned long long)size,
			(unsigned long long)bs, (unsigned long long)(size % bs));
	return 0;
}
