// SPDX-License-Identifier: MIT
/*
 * test_names.c - hostile handler names, from YAML and from configfs.
 *
 * A handler name becomes <dir>/<name>.lua.  tl_valid_handler_name() is the
 * one check in C between such a name and a file name; the YAML parser and
 * the UIO name parser (what the kernel passes on from dev_config) both go
 * through it.  Also: YAML that spells a NUL byte, which a C string would
 * silently cut, and error messages that stay on one line whatever the
 * file holds (docs/security.md).
 */
#define _GNU_SOURCE
#include <string.h>

#include "../../host/config.c"
#include "../../host/configfs.c"
#include "../../host/log.c"
#include "../../host/uio.c"

#include "check.h"

/* uio.c's device layer: opening devices is the VM tests' job. */
struct tl_dev *tl_dev_new(int fd, void *map, size_t map_size, const char **err)
{
	*err = "not in this test";
	return NULL;
}

static const char *const hostile[] = {
	"../../etc/x", "/abs", "a.b", "", "..", ".", "ram/../ram", "ram\n",
	" ram", "r\xc3\xa9", "ram.lua", "ram;x", "~root", "ram\\x",
};

static void test_valid_handler_name(void)
{
	char n[301];

	for (size_t i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++)
		CHECK(!tl_valid_handler_name(hostile[i]));
	/* "x\0y" is "x" to C: fine, as nothing after the NUL is ever used. */
	CHECK(tl_valid_handler_name("x\0y"));
	memset(n, 'a', 300);
	n[300] = '\0';
	CHECK(!tl_valid_handler_name(n));
	n[64] = '\0';
	CHECK(!tl_valid_handler_name(n));
	n[63] = '\0';
	CHECK(tl_valid_handler_name(n));
	CHECK(tl_valid_handler_name("ram"));
	CHECK(tl_valid_handler_name("my_handler-2"));
}

static struct tl_config *parse(const char *text, size_t len, char *err)
{
	return tl_config_parse("t.yaml", text, len, err, 512);
}

static void test_yaml_handler_names(void)
{
	char text[1024], err[512];

	for (size_t i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
		/* Single-quoted: YAML takes every byte as it is. */
		int n = snprintf(text, sizeof(text),
				 "devices:\n  - name: d\n    handler: '%s'\n    size: 1M\n",
				 hostile[i]);
		struct tl_config *c;

		/* A newline must be escaped to survive. */
		if (!strcmp(hostile[i], "ram\n"))
			n = snprintf(text, sizeof(text),
				     "devices:\n  - name: d\n    handler: \"ram\\n\"\n    size: 1M\n");
		c = parse(text, (size_t)n, err);
		CHECK(!c);
		if (c) {
			fprintf(stderr, "  accepted handler \"%s\"\n", hostile[i]);
			tl_config_free(c);
		}
	}
}

static void test_yaml_nul(void)
{
	static const char *const docs[] = {
		"devices:\n  - name: d\n    handler: \"ram\\0../../x\"\n    size: 1M\n",
		"devices:\n  - name: \"d0\\0x\"\n    handler: ram\n    size: 1M\n",
		"devices:\n  - name: d\n    handler: ram\n    size: 1M\n    options: {path: \"/a\\0/b\"}\n",
		"daemon: {handler_dirs: \"/usr\\0/tmp\"}\n",
	};
	char err[512];

	for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
		struct tl_config *c = parse(docs[i], strlen(docs[i]), err);

		CHECK(!c);
		CHECK(c || strstr(err, "NUL byte in a string"));
		tl_config_free(c);
	}
}

static void test_one_line_errors(void)
{
	static const char *const docs[] = {
		"daemon: {\"wor\\nkers\": 1}\n",
		"devices:\n  - name: d\n    \"hand\\rler\": ram\n",
		"\"\\e[31mred\": 1\n",
	};
	char err[512];

	for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
		struct tl_config *c = parse(docs[i], strlen(docs[i]), err);

		CHECK(!c);
		CHECK(!strpbrk(err, "\n\r\x1b"));
		CHECK(!strncmp(err, "t.yaml:", 7));
		tl_config_free(c);
	}
}

static void test_uio_long_handler(void)
{
	struct tl_uio_name n;
	const char *why;
	char s[256];

	snprintf(s, sizeof(s), "tcm-user/1/d/%s/", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
	CHECK_EQ(tl_uio_parse_name(s, &n, &why), 0);	/* 63 */
	snprintf(s, sizeof(s), "tcm-user/1/d/%s/", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
	CHECK_EQ(tl_uio_parse_name(s, &n, &why), -1);	/* 64 */
}

int main(void)
{
	RUN(test_valid_handler_name);
	RUN(test_yaml_handler_names);
	RUN(test_yaml_nul);
	RUN(test_one_line_errors);
	RUN(test_uio_long_handler);
	return check_done();
}
