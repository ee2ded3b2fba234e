// SPDX-License-Identifier: MIT
/*
 * privileges.c - drop capabilities and set no_new_privs at start-up.
 *
 * Raw prctl() and capset() (the kernel's own interface, no libcap): the
 * sets are bit masks of at most 64 capabilities in two 32-bit words.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <linux/capability.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "log.h"
#include "privileges.h"

static const struct {
	int cap;
	const char *name;
} needed[] = {
	{ CAP_NET_ADMIN, "net_admin" },		/* TCM-USER netlink */
	{ CAP_DAC_OVERRIDE, "dac_override" },	/* others' backing files */
	{ CAP_DAC_READ_SEARCH, "dac_read_search" },
	{ CAP_IPC_LOCK, "ipc_lock" },		/* io_uring locked memory */
};

#define NEEDED (sizeof(needed) / sizeof(needed[0]))

static uint64_t needed_mask(void)
{
	uint64_t m = 0;

	for (size_t i = 0; i < NEEDED; i++)
		m |= 1ull << needed[i].cap;
	return m;
}

static int get_caps(uint64_t *eff, uint64_t *perm)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2];

	if (syscall(SYS_capget, &h, d) < 0)
		return -1;
	*eff = d[0].effective | (uint64_t)d[1].effective << 32;
	*perm = d[0].permitted | (uint64_t)d[1].permitted << 32;
	return 0;
}

static int set_caps(uint64_t keep)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2];

	memset(d, 0, sizeof(d));
	d[0].effective = d[0].permitted = (uint32_t)keep;
	d[1].effective = d[1].permitted = (uint32_t)(keep >> 32);
	/* inheritable stays empty, which also empties the ambient set */
	return (int)syscall(SYS_capset, &h, d);
}

int tl_privileges_drop(char *err, size_t errlen)
{
	uint64_t eff, perm, keep;
	char names[128] = "";
	bool bset;
	int cap;

	if (get_caps(&eff, &perm) < 0) {
		snprintf(err, errlen, "capget: %s", strerror(errno));
		return -1;
	}
	keep = perm & needed_mask();

	/* The bounding set needs CAP_SETPCAP, which goes with the rest. */
	bset = eff & (1ull << CAP_SETPCAP);
	for (cap = 0; bset && cap < 64; cap++) {
		if (keep & (1ull << cap))
			continue;
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0) {
			if (errno == EINVAL)
				break;	/* past the kernel's last capability */
			snprintf(err, errlen,
				 "dropping capability %d from the bounding set: %s",
				 cap, strerror(errno));
			return -1;
		}
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		snprintf(err, errlen, "PR_SET_NO_NEW_PRIVS: %s", strerror(errno));
		return -1;
	}
	if (set_caps(keep) < 0) {
		snprintf(err, errlen, "capset: %s", strerror(errno));
		return -1;
	}
	if (get_caps(&eff, &perm) < 0 || eff != keep || perm != keep) {
		snprintf(err, errlen, "capabilities did not drop");
		return -1;
	}
	for (size_t i = 0; i < NEEDED; i++)
		if (keep & (1ull << needed[i].cap))
			snprintf(names + strlen(names), sizeof(names) - strlen(names),
				 "%s%s", names[0] ? " " : "", needed[i].name);
	tl_info("privileges: no_new_privs; capabilities kept: %s (all others dropped%s)",
		names[0] ? names : "none",
		bset ? ", also from the bounding set" : "");
	return 0;
}
