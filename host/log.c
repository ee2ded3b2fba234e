// SPDX-License-Identifier: MIT
/*
 * log.c - timestamped lines on stderr.  One write() per line so lines from
 * different workers never interleave.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

int tl_log_threshold = TL_LOG_INFO;

static const char *const level_names[] = { "error", "warn", "info", "debug" };

const char *tl_log_level_name(int level)
{
	if (level < 0 || level > TL_LOG_DEBUG)
		return "?";
	return level_names[level];
}

int tl_log_level_parse(const char *name)
{
	int i;

	for (i = 0; i <= TL_LOG_DEBUG; i++)
		if (!strcasecmp(name, level_names[i]))
			return i;
	if (!strcasecmp(name, "warning"))
		return TL_LOG_WARN;
	return -1;
}

void tl_log(enum tl_log_level level, const char *fmt, ...)
{
	char line[2048];
	struct timespec ts;
	struct tm tm;
	va_list ap;
	int n, m;

	if ((int)level > tl_log_threshold)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	localtime_r(&ts.tv_sec, &tm);
	n = snprintf(line, sizeof(line), "%02d:%02d:%02d.%03ld %-5s ",
		     tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
		     level_names[level]);
	va_start(ap, fmt);
	m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (m < 0)
		m = 0;
	n += m;
	if (n > (int)sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	if (write(STDERR_FILENO, line, (size_t)n) < 0)
		return;
}
