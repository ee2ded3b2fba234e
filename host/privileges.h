/* SPDX-License-Identifier: MIT */
/*
 * privileges.h - give up, once at start-up, what the daemon never needs.
 *
 * What it needs (docs/security.md): CAP_NET_ADMIN for the TCM-USER
 * generic netlink family (its commands are GENL_ADMIN_PERM); write access
 * to configfs and /dev/uioN, which uid 0 has as their owner without any
 * capability; CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH for backing files
 * and handler directories that belong to other users; CAP_IPC_LOCK for
 * io_uring's locked memory.  Everything else goes: out of the bounding set
 * (no exec can bring it back), out of the permitted and effective sets,
 * and no_new_privs is set (no set-uid or file capabilities either).
 */
#ifndef TL_PRIVILEGES_H
#define TL_PRIVILEGES_H

#include <stddef.h>

/*
 * Call before any thread is created: capabilities are per thread, and a
 * thread starts with its creator's.  Returns 0, or -1 with a message
 * (the daemon then refuses to start: it would run with more than it says).
 */
int tl_privileges_drop(char *err, size_t errlen);

#endif /* TL_PRIVILEGES_H */
