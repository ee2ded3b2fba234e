// SPDX-License-Identifier: MIT
/*
 * test_uio.c - reading the kernel's UIO names of TCMU devices.
 *
 * The subtype in a UIO name picks the handler script that gets loaded, and
 * anyone who can write configfs chooses it: it must never be able to name
 * a path.  uio.c is compiled in with what it calls; the device layer is
 * stubbed (opening real devices is the VM tests' job).
 */
#define _GNU_SOURCE
#include <string.h>

#include "../../host/config.c"
#include "../../host/configfs.c"
#include "../../host/log.c"
#include "../../host/uio.c"

#include "check.h"

struct tl_dev *tl_dev_new(int fd, void *map, size_t map_size, const char **err)
{
	*err = "stub";
	return NULL;
}

static void good(const char *s, unsigned int hba, const char *dev,
		 const char *subtype, const char *cfgstring)
{
	struct tl_uio_name n;
	const char *why = NULL;

	if (tl_uio_parse_name(s, &n, &why)) {
		fprintf(stderr, "  %s: refused: %s\n", s, why);
		CHECK(!"refused");
		return;
	}
	CHECK_EQ(n.hba, hba);
	CHECK(!strcmp(n.dev, dev));
	CHECK(!strcmp(n.subtype, subtype));
	if (strcmp(n.cfgstring, cfgstring))
		fprintf(stderr, "  %s: cfgstring '%s', want '%s'\n", s,
			n.cfgstring, cfgstring);
	CHECK(!strcmp(n.cfgstring, cfgstring));
}

static void bad(const char *s, const char *want)
{
	struct tl_uio_name n;
	const char *why = "";

	CHECK_EQ(tl_uio_parse_name(s, &n, &why), -1);
	if (strncmp(why, want, strlen(want)))
		fprintf(stderr, "  %s: why '%s', want '%s...'\n", s, why, want);
	CHECK(!strncmp(why, want, strlen(want)));
}

static void test_good_names(void)
{
	good("tcm-user/1/disk0/ram/", 1, "disk0", "ram", "");
	good("tcm-user/1/disk0/ram", 1, "disk0", "ram", "");
	good("tcm-user/0/d/null/", 0, "d", "null", "");
	good("tcm-user/12/img/file//var/lib/disk.img", 12, "img", "file",
	     "/var/lib/disk.img");
	good("tcm-user/3/img/file/path=/x.img;create=true", 3, "img", "file",
	     "path=/x.img;create=true");
	good("tcm-user/4294967295/a.b-c_d/my_handler-2/x/y/z", 4294967295u,
	     "a.b-c_d", "my_handler-2", "x/y/z");
}

static void test_bad_names(void)
{
	char longname[600];

	bad("uio_pci_generic", "not a TCMU device");
	bad("tcm-user", "not a TCMU device");
	bad("tcm-user/x/d/ram/", "no HBA number");
	bad("tcm-user/-1/d/ram/", "no HBA number");
	bad("tcm-user/4294967296/d/ram/", "bad HBA number");
	bad("tcm-user/1d/ram/", "bad HBA number");
	bad("tcm-user/1//ram/", "empty device name");
	bad("tcm-user/1/d", "dev_config is empty");
	bad("tcm-user/1/d/", "dev_config is empty");
	/* Handler names that could leave the handler directories. */
	bad("tcm-user/1/d/../x", "the handler name");
	bad("tcm-user/1/d/..", "the handler name");
	bad("tcm-user/1/d//etc/passwd", "the handler name");
	bad("tcm-user/1/d/a.lua/", "the handler name");
	bad("tcm-user/1/d/a b/", "the handler name");

	memset(longname, 'a', sizeof(longname));
	memcpy(longname, "tcm-user/1/", 11);
	longname[sizeof(longname) - 1] = '\0';
	bad(longname, "device name too long");
	snprintf(longname, sizeof(longname), "tcm-user/1/d/%0200d/", 0);
	bad(longname, "handler name too long");
	snprintf(longname, sizeof(longname), "tcm-user/1/d/ram/%0520d", 0);
	bad(longname, "config string too long");
}

int main(void)
{
	RUN(test_good_names);
	RUN(test_bad_names);
	return check_done();
}
