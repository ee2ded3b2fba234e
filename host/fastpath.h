/* SPDX-License-Identifier: MIT */
/*
 * fastpath.h - READ/WRITE served in C for file-backed devices.
 */
#ifndef TL_FASTPATH_H
#define TL_FASTPATH_H

#include <stdbool.h>

struct tl_dev;
struct tl_cmd;

/*
 * Serve cmd in C if it is a plain READ/WRITE the fast path may take.
 * Returns true when the command was completed here; false leaves it,
 * untouched, for Lua (which answers every case the fast path declines,
 * including the errors).
 */
bool tl_fast_try(struct tl_dev *d, struct tl_cmd *cmd);

#endif /* TL_FASTPATH_H */
