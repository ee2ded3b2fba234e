// SPDX-License-Identifier: MIT
/*
 * replay.c - main() for a harness built without libFuzzer.
 *
 * Runs LLVMFuzzerTestOneInput() once per file named on the command line;
 * a directory stands for the files in it (sorted, dot files and *.md
 * skipped).  A crash or abort() in the harness fails the run, and each
 * input gets an alarm so a hang fails it too.  This is what ctest runs over
 * the committed corpus and regressions where libFuzzer is not available.
 *
 *   fuzz_ring_replay tests/fuzz/corpus/ring tests/fuzz/regressions/ring
 *
 * Environment: TL_FUZZ_TIMEOUT seconds per input (default 25).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

/* Harnesses may look: e.g. fuzz_cdb keeps LuaJIT's JIT on when replaying. */
int tl_fuzz_replaying = 1;

static unsigned int timeout_s = 25;
static unsigned long replayed;

static int run_file(const char *path)
{
	struct stat st;
	uint8_t *buf;
	FILE *f;
	size_t n;

	f = fopen(path, "rb");
	if (!f || fstat(fileno(f), &st) < 0) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		if (f)
			fclose(f);
		return -1;
	}
	/* One spare byte so that an empty file still has a buffer. */
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		fclose(f);
		return -1;
	}
	n = fread(buf, 1, (size_t)st.st_size, f);
	fclose(f);
	fprintf(stderr, "replay: %s (%zu bytes)\n", path, n);
	alarm(timeout_s);
	LLVMFuzzerTestOneInput(buf, n);
	alarm(0);
	free(buf);
	replayed++;
	return 0;
}

static int skip(const struct dirent *d)
{
	size_t n = strlen(d->d_name);

	return d->d_name[0] != '.' &&
	       !(n > 3 && !strcmp(d->d_name + n - 3, ".md"));
}

static int run_path(const char *path)
{
	struct dirent **names;
	struct stat st;
	int i, n, rc = 0;

	if (stat(path, &st) < 0) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode))
		return run_file(path);
	n = scandir(path, &names, skip, alphasort);
	if (n < 0) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		return -1;
	}
	for (i = 0; i < n; i++) {
		char *full;

		if (asprintf(&full, "%s/%s", path, names[i]->d_name) < 0)
			return -1;
		if (stat(full, &st) == 0 && S_ISREG(st.st_mode) &&
		    run_file(full))
			rc = -1;
		free(full);
		free(names[i]);
	}
	free(names);
	return rc;
}

int main(int argc, char **argv)
{
	const char *t = getenv("TL_FUZZ_TIMEOUT");
	int i, rc = 0;

	if (t && atoi(t) > 0)
		timeout_s = (unsigned int)atoi(t);
	if (LLVMFuzzerInitialize)
		LLVMFuzzerInitialize(&argc, &argv);
	if (argc < 2) {
		fprintf(stderr, "usage: %s FILE|DIR...\n", argv[0]);
		return 2;
	}
	for (i = 1; i < argc; i++)
		if (run_path(argv[i]))
			rc = 1;
	fprintf(stderr, "replay: %lu inputs ran%s\n", replayed,
		rc ? "; some paths could not be read" : ", no failure");
	return rc;
}
