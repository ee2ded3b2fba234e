/* SPDX-License-Identifier: MIT */
/*
 * log.h - one logging function for the whole daemon, safe from any thread.
 */
#ifndef TL_LOG_H
#define TL_LOG_H

enum tl_log_level {
	TL_LOG_ERR = 0,
	TL_LOG_WARN,
	TL_LOG_INFO,
	TL_LOG_DEBUG,
};

extern int tl_log_threshold;

void tl_log(enum tl_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
int tl_log_level_parse(const char *name);
const char *tl_log_level_name(int level);

#define tl_err(...) tl_log(TL_LOG_ERR, __VA_ARGS__)
#define tl_warn(...) tl_log(TL_LOG_WARN, __VA_ARGS__)
#define tl_info(...) tl_log(TL_LOG_INFO, __VA_ARGS__)
#define tl_dbg(...)							\
	do {								\
		if (tl_log_threshold >= TL_LOG_DEBUG)			\
			tl_log(TL_LOG_DEBUG, __VA_ARGS__);		\
	} while (0)

#endif /* TL_LOG_H */
