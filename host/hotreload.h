/* SPDX-License-Identifier: MIT */
/*
 * hotreload.h - reload a worker's handlers when their files change.
 *
 * Each worker watches the files its Lua state loaded handlers and their
 * modules from (inotify on the containing directories, since editors
 * replace files by renaming), waits for the writes to settle, then runs
 * tl_worker_reload() between two batches.  A failed reload changes
 * nothing and is logged with file:line.
 */
#ifndef TL_HOTRELOAD_H
#define TL_HOTRELOAD_H

struct tl_worker;

/* Start watching (no-op with a warning if inotify is unavailable). */
int tl_hotreload_start(struct tl_worker *w);
/* Ask Lua which files matter now and watch their directories. */
void tl_hotreload_refresh(struct tl_worker *w);
void tl_hotreload_stop(struct tl_worker *w);

#endif /* TL_HOTRELOAD_H */
