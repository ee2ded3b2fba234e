// SPDX-License-Identifier: MIT
/*
 * config.c - read the YAML configuration with libyaml's document API and
 * check every key against the schema below.
 *
 * libyaml gives us a node tree with a line and column per node, which is
 * all a good error message needs.  It does not resolve plain scalars, so
 * booleans and numbers are recognised here (YAML 1.2 core schema: only
 * true/false, not yes/no, so "no" stays the Norwegian country code).
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <yaml.h>

#include "config.h"
#include "log.h"

#define OPTIONS_MAX (64 * 1024)	/* bytes of Lua the options may become */
#define OPTIONS_DEPTH 16
#define PATH_MAX_LEN 256

struct pctx {
	const char *file;
	yaml_document_t *doc;
	char *err;
	size_t errlen;
	bool failed;
};

static void perr(struct pctx *p, const yaml_node_t *n, const char *path,
		 const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void perr(struct pctx *p, const yaml_node_t *n, const char *path,
		 const char *fmt, ...)
{
	size_t len;
	va_list ap;

	if (p->failed)	/* the first error is the one worth reading */
		return;
	p->failed = true;
	if (n)
		snprintf(p->err, p->errlen, "%s:%zu:%zu: %s%s", p->file,
			 n->start_mark.line + 1, n->start_mark.column + 1,
			 path ? path : "", path && *path ? ": " : "");
	else
		snprintf(p->err, p->errlen, "%s: %s%s", p->file,
			 path ? path : "", path && *path ? ": " : "");
	len = strlen(p->err);
	va_start(ap, fmt);
	vsnprintf(p->err + len, p->errlen - len, fmt, ap);
	va_end(ap);
	/* Keys from the file are quoted in it: keep the message one line. */
	for (; p->err[len]; len++)
		if ((unsigned char)p->err[len] < 0x20 || p->err[len] == 0x7f)
			p->err[len] = '?';
}

static yaml_node_t *node(struct pctx *p, int id)
{
	return yaml_document_get_node(p->doc, id);
}

static const char *scalar(const yaml_node_t *n)
{
	return n && n->type == YAML_SCALAR_NODE ?
		(const char *)n->data.scalar.value : NULL;
}

/* A mapping key already checked by check_keys(): never NULL. */
static const char *key_str(struct pctx *p, const yaml_node_pair_t *pair)
{
	const char *s = scalar(node(p, pair->key));

	return s ? s : "";
}

static bool is_plain(const yaml_node_t *n)
{
	return n->type == YAML_SCALAR_NODE &&
	       n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
}

static bool is_null(const yaml_node_t *n)
{
	const char *s = scalar(n);

	return s && is_plain(n) &&
	       (!*s || !strcmp(s, "~") || !strcmp(s, "null") ||
		!strcmp(s, "Null") || !strcmp(s, "NULL"));
}

static int plain_bool(const yaml_node_t *n)
{
	const char *s = scalar(n);

	if (!s || !is_plain(n))
		return -1;
	if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE"))
		return 1;
	if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE"))
		return 0;
	return -1;
}

static const char *node_kind(const yaml_node_t *n)
{
	switch (n->type) {
	case YAML_MAPPING_NODE:
		return "a mapping";
	case YAML_SEQUENCE_NODE:
		return "a list";
	default:
		return is_null(n) ? "null" : "a scalar";
	}
}

/* ---- typed values ------------------------------------------------------- */

static bool get_str(struct pctx *p, const yaml_node_t *n, const char *path,
		    char *buf, size_t size)
{
	const char *s = scalar(n);

	if (!s || is_null(n)) {
		perr(p, n, path, "expected a string, got %s", node_kind(n));
		return false;
	}
	if (!*s) {
		perr(p, n, path, "must not be empty");
		return false;
	}
	if (strlen(s) >= size) {
		perr(p, n, path, "too long (at most %zu bytes)", size - 1);
		return false;
	}
	strcpy(buf, s);
	return true;
}

static bool get_dup(struct pctx *p, const yaml_node_t *n, const char *path,
		    char **out)
{
	char buf[PATH_MAX];

	if (!get_str(p, n, path, buf, sizeof(buf)))
		return false;
	free(*out);
	*out = strdup(buf);
	if (!*out) {
		perr(p, n, path, "out of memory");
		return false;
	}
	return true;
}

static bool parse_u64(const char *s, uint64_t *out)
{
	char *end;

	if (!isdigit((unsigned char)*s))
		return false;
	errno = 0;
	*out = strtoull(s, &end, 0);
	return !errno && !*end;
}

static bool get_uint(struct pctx *p, const yaml_node_t *n, const char *path,
		     uint64_t min, uint64_t max, uint64_t *out)
{
	const char *s = scalar(n);

	if (!s || !is_plain(n) || !parse_u64(s, out)) {
		perr(p, n, path, "expected a whole number");
		return false;
	}
	if (*out < min || *out > max) {
		perr(p, n, path, "%" PRIu64 " is out of range (%" PRIu64
		     "..%" PRIu64 ")", *out, min, max);
		return false;
	}
	return true;
}

static bool get_u32(struct pctx *p, const yaml_node_t *n, const char *path,
		    uint32_t min, uint32_t max, uint32_t *out)
{
	uint64_t v;

	if (!get_uint(p, n, path, min, max, &v))
		return false;
	*out = (uint32_t)v;
	return true;
}

static bool get_bool(struct pctx *p, const yaml_node_t *n, const char *path,
		     bool *out)
{
	int b = plain_bool(n);

	if (b < 0) {
		perr(p, n, path, "expected true or false");
		return false;
	}
	*out = b;
	return true;
}

int tl_parse_size(const char *s, uint64_t *out)
{
	static const char units[] = "KMGTP";
	const char *u;
	uint64_t v, mul = 1;
	char *end;

	if (!isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -1;
	if (*end) {
		u = strchr(units, toupper((unsigned char)*end));
		if (!u)
			return -1;
		mul = 1ULL << (10 * (u - units + 1));
		end++;
		/* "1G", "1GB" and "1GiB" all mean 2^30 bytes */
		if (*end == 'i')
			end++;
		if (*end == 'B')
			end++;
		if (*end)
			return -1;
	}
	if (v > UINT64_MAX / mul)
		return -1;
	*out = v * mul;
	return 0;
}

static bool get_size(struct pctx *p, const yaml_node_t *n, const char *path,
		     uint64_t *out)
{
	const char *s = scalar(n);

	if (!s || !is_plain(n) || tl_parse_size(s, out) || !*out) {
		perr(p, n, path, "expected a size like 64M");
		return false;
	}
	return true;
}

/*
 * The one check between a name from configfs or YAML and a file name:
 * <dir>/<name>.lua can never leave dir.  Lua's tl.handlers says the same.
 */
bool tl_valid_handler_name(const char *s)
{
	size_t n = 0;

	for (; s[n]; n++)
		if (!isalnum((unsigned char)s[n]) && s[n] != '_' && s[n] != '-')
			return false;
	return n > 0 && n < CFG_NAME_MAX;
}

/* configfs directory names: no '/', and nothing that looks like . or .. */
static bool valid_object_name(const char *s)
{
	if (!*s || *s == '.')
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr("_-.:", *s))
			return false;
	return true;
}

/* ---- mappings ------------------------------------------------------------ */

#define for_each_pair(n, pair)						\
	for (pair = (n)->data.mapping.pairs.start;			\
	     pair < (n)->data.mapping.pairs.top; pair++)

static bool expect_map(struct pctx *p, const yaml_node_t *n, const char *path)
{
	if (n->type != YAML_MAPPING_NODE) {
		perr(p, n, path, "expected a mapping, got %s", node_kind(n));
		return false;
	}
	return true;
}

/*
 * Check that every key of a mapping is a known, unique string; names
 * lists the known keys, NULL-terminated.
 */
static bool check_keys(struct pctx *p, yaml_node_t *n, const char *path,
		       const char *const *names)
{
	yaml_node_pair_t *pair, *q;
	char known[256];
	size_t len = 0;
	int i;

	for (i = 0; names[i]; i++)
		len += (size_t)snprintf(known + len, sizeof(known) - len,
					"%s%s", i ? ", " : "", names[i]);
	for_each_pair(n, pair) {
		yaml_node_t *k = node(p, pair->key);
		const char *ks = scalar(k);

		if (!ks) {
			perr(p, k, path, "keys must be strings");
			return false;
		}
		for (i = 0; names[i]; i++)
			if (!strcmp(ks, names[i]))
				break;
		if (!names[i]) {
			perr(p, k, path, "unknown key '%s' (known: %s)", ks,
			     known);
			return false;
		}
		for (q = n->data.mapping.pairs.start; q < pair; q++)
			if (!strcmp(scalar(node(p, q->key)), ks)) {
				perr(p, k, path, "duplicate key '%s'", ks);
				return false;
			}
	}
	return true;
}

/* Key paths only label messages: cutting a very long one short is fine. */
static void pathf(char *buf, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void pathf(char *buf, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, PATH_MAX_LEN, fmt, ap);
	va_end(ap);
}

static void subpath(char *buf, const char *path, const char *key)
{
	pathf(buf, "%s%s%s", path, *path ? "." : "", key);
}

/* ---- options: a YAML value as a Lua table constructor ------------------ */

struct sbuf {
	char *s;
	size_t len, cap;
	bool overflow;
};

static void sb_add(struct sbuf *b, const char *s, size_t n)
{
	if (b->overflow || b->len + n + 1 > OPTIONS_MAX) {
		b->overflow = true;
		return;
	}
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 128;
		char *ns;

		while (cap < b->len + n + 1)
			cap *= 2;
		ns = realloc(b->s, cap);
		if (!ns) {
			b->overflow = true;
			return;
		}
		b->s = ns;
		b->cap = cap;
	}
	memcpy(b->s + b->len, s, n);
	b->len += n;
	b->s[b->len] = '\0';
}

static void sb_puts(struct sbuf *b, const char *s)
{
	sb_add(b, s, strlen(s));
}

/*
 * A Lua string literal that means exactly the bytes of s: quotes,
 * backslashes and control bytes are escaped as \ddd (always three digits,
 * so a digit that follows cannot extend the escape).
 */
static void sb_lua_string(struct sbuf *b, const char *s, size_t n)
{
	char esc[5];
	size_t i;

	sb_add(b, "\"", 1);
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"' || c == '\\' || c < 0x20 || c == 0x7f) {
			snprintf(esc, sizeof(esc), "\\%03u", c);
			sb_add(b, esc, 4);
		} else {
			sb_add(b, (const char *)&s[i], 1);
		}
	}
	sb_add(b, "\"", 1);
}

static bool lua_keyword(const char *s)
{
	static const char *const kw[] = {
		"and", "break", "do", "else", "elseif", "end", "false", "for",
		"function", "goto", "if", "in", "local", "nil", "not", "or",
		"repeat", "return", "then", "true", "until", "while", NULL,
	};
	int i;

	for (i = 0; kw[i]; i++)
		if (!strcmp(s, kw[i]))
			return true;
	return false;
}

static bool lua_identifier(const char *s)
{
	const char *c;

	if (!isalpha((unsigned char)*s) && *s != '_')
		return false;
	for (c = s; *c; c++)
		if (!isalnum((unsigned char)*c) && *c != '_')
			return false;
	return !lua_keyword(s);
}

/* A plain scalar that YAML 1.2 reads as an int or a float; NULL if not. */
static const char *lua_number(const char *s)
{
	static const struct { const char *yaml, *lua; } special[] = {
		{ ".inf", "(1/0)" }, { "+.inf", "(1/0)" }, { "-.inf", "(-1/0)" },
		{ ".Inf", "(1/0)" }, { "+.Inf", "(1/0)" }, { "-.Inf", "(-1/0)" },
		{ ".INF", "(1/0)" }, { "+.INF", "(1/0)" }, { "-.INF", "(-1/0)" },
		{ ".nan", "(0/0)" }, { ".NaN", "(0/0)" }, { ".NAN", "(0/0)" },
	};
	const char *c = s;
	bool digits = false;
	size_t i;

	for (i = 0; i < sizeof(special) / sizeof(special[0]); i++)
		if (!strcmp(s, special[i].yaml))
			return special[i].lua;
	if (!strncmp(s, "0x", 2) && s[2]) {
		for (c = s + 2; isxdigit((unsigned char)*c); c++)
			;
		return *c ? NULL : s;
	}
	/* [-+]? digits [. digits] [eE [-+]? digits] */
	if (*c == '-' || *c == '+')
		c++;
	for (; isdigit((unsigned char)*c); c++)
		digits = true;
	if (*c == '.')
		for (c++; isdigit((unsigned char)*c); c++)
			digits = true;
	if (!digits)
		return NULL;
	if (*c == 'e' || *c == 'E') {
		c++;
		if (*c == '-' || *c == '+')
			c++;
		if (!isdigit((unsigned char)*c))
			return NULL;
		while (isdigit((unsigned char)*c))
			c++;
	}
	if (*c)
		return NULL;
	/* Lua has no leading '+' */
	return *s == '+' ? s + 1 : s;
}

static bool lua_value(struct pctx *p, struct sbuf *b, yaml_node_t *n,
		      const char *path, int depth);

static bool lua_scalar(struct sbuf *b, const yaml_node_t *n)
{
	const char *s = scalar(n);
	const char *num;
	int bv;

	if (is_null(n)) {
		sb_puts(b, "nil");
		return true;
	}
	if (is_plain(n)) {
		bv = plain_bool(n);
		if (bv >= 0) {
			sb_puts(b, bv ? "true" : "false");
			return true;
		}
		num = lua_number(s);
		if (num) {
			sb_puts(b, num);
			return true;
		}
	}
	sb_lua_string(b, s, n->data.scalar.length);
	return true;
}

static bool lua_table(struct pctx *p, struct sbuf *b, yaml_node_t *n,
		      const char *path, int depth)
{
	char sub[PATH_MAX_LEN];
	bool first = true;

	if (depth > OPTIONS_DEPTH) {
		perr(p, n, path, "nested more than %d levels deep",
		     OPTIONS_DEPTH);
		return false;
	}
	sb_puts(b, "{");
	if (n->type == YAML_SEQUENCE_NODE) {
		yaml_node_item_t *it;
		int i = 0;

		for (it = n->data.sequence.items.start;
		     it < n->data.sequence.items.top; it++, i++) {
			pathf(sub, "%s[%d]", path, i);
			sb_puts(b, first ? " " : ", ");
			first = false;
			if (!lua_value(p, b, node(p, *it), sub, depth + 1))
				return false;
		}
	} else {
		yaml_node_pair_t *pair, *q;

		for_each_pair(n, pair) {
			yaml_node_t *k = node(p, pair->key);
			yaml_node_t *v = node(p, pair->value);
			const char *ks = scalar(k);

			if (!ks || is_null(k)) {
				perr(p, k, path, "option keys must be strings");
				return false;
			}
			for (q = n->data.mapping.pairs.start; q < pair; q++) {
				const char *qs = scalar(node(p, q->key));

				if (qs && !strcmp(qs, ks)) {
					perr(p, k, path, "duplicate key '%s'",
					     ks);
					return false;
				}
			}
			subpath(sub, path, ks);
			if (is_null(v))
				continue;	/* nil: as if absent */
			sb_puts(b, first ? " " : ", ");
			first = false;
			if (lua_identifier(ks)) {
				sb_puts(b, ks);
			} else {
				sb_puts(b, "[");
				if (is_plain(k) && lua_number(ks) &&
				    strspn(ks, "0123456789") == strlen(ks))
					sb_puts(b, ks);	/* 1: x is t[1] */
				else
					sb_lua_string(b, ks,
						      k->data.scalar.length);
				sb_puts(b, "]");
			}
			sb_puts(b, " = ");
			if (!lua_value(p, b, v, sub, depth + 1))
				return false;
		}
	}
	sb_puts(b, first ? "}" : " }");
	return true;
}

static bool lua_value(struct pctx *p, struct sbuf *b, yaml_node_t *n,
		      const char *path, int depth)
{
	bool ok;

	if (n->type == YAML_SCALAR_NODE)
		ok = lua_scalar(b, n);
	else
		ok = lua_table(p, b, n, path, depth);
	if (ok && b->overflow) {
		perr(p, n, path, "options too large (more than %d bytes of Lua)",
		     OPTIONS_MAX);
		return false;
	}
	return ok;
}

/*
 * The options again as "key=value;key=value", the form a handler also
 * reads from a configfs dev_config string (so a device we created still
 * says what it is to targetcli, or to a daemon started without this file).
 * Only flat options fit; anything else gives "" and the Lua table is the
 * only source.
 */
static void flat_cfgstring(struct pctx *p, yaml_node_t *n, char *buf,
			   size_t size)
{
	yaml_node_pair_t *pair;
	size_t len = 0;

	buf[0] = '\0';
	for_each_pair(n, pair) {
		const char *k = scalar(node(p, pair->key));
		yaml_node_t *v = node(p, pair->value);
		const char *vs = scalar(v), *c;
		int w;

		if (is_null(v))
			continue;
		if (!k || !vs || !*k || strspn(k, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
			"abcdefghijklmnopqrstuvwxyz0123456789_") != strlen(k))
			goto unfit;
		for (c = vs; *c; c++)
			if (*c == ';' || *c == ',' || (unsigned char)*c < 0x20)
				goto unfit;
		w = snprintf(buf + len, size - len, "%s%s=%s", len ? ";" : "",
			     k, vs);
		if (w < 0 || (size_t)w >= size - len)
			goto unfit;
		len += (size_t)w;
	}
	return;
unfit:
	buf[0] = '\0';
}

static bool get_options(struct pctx *p, yaml_node_t *n, const char *path,
			char **out, char *cfgstring, size_t cfglen)
{
	struct sbuf b = { 0 };

	cfgstring[0] = '\0';
	if (is_null(n)) {
		*out = strdup("{}");
		return *out != NULL;
	}
	if (!expect_map(p, n, path))
		return false;
	flat_cfgstring(p, n, cfgstring, cfglen);
	if (!lua_table(p, &b, n, path, 1) || b.overflow) {
		if (!p->failed)
			perr(p, n, path, "out of memory");
		free(b.s);
		return false;
	}
	*out = b.s;
	return true;
}

/* ---- exports ------------------------------------------------------------- */

static bool valid_naa(const char *s)
{
	size_t i;

	if (strncmp(s, "naa.", 4) || strlen(s) != 20)
		return false;
	for (i = 4; i < 20; i++)
		if (!isxdigit((unsigned char)s[i]))
			return false;
	return true;
}

static bool valid_iqn(const char *s)
{
	if (strncmp(s, "iqn.", 4) && strncmp(s, "eui.", 4) &&
	    strncmp(s, "naa.", 4))
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr(".-:", *s))
			return false;
	return true;
}

/* "1.2.3.4:3260", "[::1]:3260", or an address alone (port 3260). */
static bool parse_portal(const char *s, char *ip, size_t iplen, uint16_t *port)
{
	const char *colon, *end;
	uint64_t v;
	size_t n;

	*port = CFG_DEFAULT_ISCSI_PORT;
	if (*s == '[') {
		end = strchr(s, ']');
		if (!end)
			return false;
		colon = end[1] == ':' ? end + 1 : NULL;
		if (end[1] && !colon)
			return false;
		n = (size_t)(end - s) + 1;
	} else {
		colon = strrchr(s, ':');
		if (colon && strchr(s, ':') != colon)
			return false;	/* bare IPv6 needs brackets */
		n = colon ? (size_t)(colon - s) : strlen(s);
	}
	if (!n || n >= iplen)
		return false;
	memcpy(ip, s, n);
	ip[n] = '\0';
	if (strspn(ip, "0123456789.abcdefABCDEF:[]") != n)
		return false;
	if (colon) {
		if (!parse_u64(colon + 1, &v) || !v || v > 65535 ||
		    !isdigit((unsigned char)colon[1]))
			return false;
		*port = (uint16_t)v;
	}
	return true;
}

static bool parse_loop(struct pctx *p, yaml_node_t *n, const char *path,
		       struct cfg_loop_export *e)
{
	static const char *const keys[] = { "wwn", "lun", NULL };
	yaml_node_pair_t *pair;
	char sub[PATH_MAX_LEN];
	int b = plain_bool(n);

	if (b >= 0 || is_null(n)) {
		e->enabled = b > 0;
		return true;
	}
	if (n->type != YAML_MAPPING_NODE) {
		perr(p, n, path, "expected true, false or a mapping with wwn");
		return false;
	}
	if (!check_keys(p, n, path, keys))
		return false;
	e->enabled = true;
	for_each_pair(n, pair) {
		const char *k = key_str(p, pair);
		yaml_node_t *v = node(p, pair->value);

		subpath(sub, path, k);
		if (!strcmp(k, "wwn")) {
			if (!get_str(p, v, sub, e->wwn, sizeof(e->wwn)))
				return false;
			if (!valid_naa(e->wwn)) {
				perr(p, v, sub, "expected naa. and 16 hex digits");
				return false;
			}
		} else if (!get_u32(p, v, sub, 0, 255, &e->lun)) {
			return false;
		}
	}
	return true;
}

static bool parse_iscsi(struct pctx *p, yaml_node_t *n, const char *path,
			struct cfg_iscsi_export *e)
{
	static const char *const keys[] = { "iqn", "portal", "lun", NULL };
	yaml_node_pair_t *pair;
	char sub[PATH_MAX_LEN], portal[128];

	if (plain_bool(n) == 0 || is_null(n))
		return true;
	if (n->type != YAML_MAPPING_NODE) {
		perr(p, n, path, "expected a mapping with iqn and portal");
		return false;
	}
	if (!check_keys(p, n, path, keys))
		return false;
	e->enabled = true;
	strcpy(e->portal_ip, "127.0.0.1");
	e->port = CFG_DEFAULT_ISCSI_PORT;
	for_each_pair(n, pair) {
		const char *k = key_str(p, pair);
		yaml_node_t *v = node(p, pair->value);

		subpath(sub, path, k);
		if (!strcmp(k, "iqn")) {
			if (!get_str(p, v, sub, e->iqn, sizeof(e->iqn)))
				return false;
			if (!valid_iqn(e->iqn)) {
				perr(p, v, sub, "expected a name like iqn.2003-01.org.example:disk0");
				return false;
			}
		} else if (!strcmp(k, "portal")) {
			if (!get_str(p, v, sub, portal, sizeof(portal)))
				return false;
			if (!parse_portal(portal, e->portal_ip,
					  sizeof(e->portal_ip), &e->port)) {
				perr(p, v, sub, "expected address:port like 127.0.0.1:3260 or [::1]:3260");
				return false;
			}
		} else if (!get_u32(p, v, sub, 0, 255, &e->lun)) {
			return false;
		}
	}
	if (!e->iqn[0]) {
		perr(p, n, path, "iqn is required");
		return false;
	}
	return true;
}

static bool parse_exports(struct pctx *p, yaml_node_t *n, const char *path,
			  struct cfg_device *d)
{
	static const char *const keys[] = { "loop", "iscsi", NULL };
	yaml_node_pair_t *pair;
	char sub[PATH_MAX_LEN];

	if (is_null(n))
		return true;
	if (!expect_map(p, n, path) || !check_keys(p, n, path, keys))
		return false;
	for_each_pair(n, pair) {
		const char *k = key_str(p, pair);
		yaml_node_t *v = node(p, pair->value);

		subpath(sub, path, k);
		if (!strcmp(k, "loop") ? !parse_loop(p, v, sub, &d->loop) :
					 !parse_iscsi(p, v, sub, &d->iscsi))
			return false;
	}
	return true;
}

/* ---- devices -------------------------------------------------------------- */

/*
 * A loop target WWN of our own when the file names none: stable across
 * restarts (so a restarted daemon finds its target again) and distinct per
 * device.  5001405 is the IEEE prefix the Linux target uses for its own
 * generated NAA names.
 */
static void derive_wwn(const char *name, char *out, size_t size)
{
	uint64_t h = 0xcbf29ce484222325ULL;	/* FNV-1a */

	for (; *name; name++)
		h = (h ^ (unsigned char)*name) * 0x100000001b3ULL;
	snprintf(out, size, "naa.5001405%09" PRIx64,
		 h & (uint64_t)0xfffffffff);
}

static bool valid_block_size(uint32_t bs)
{
	return bs == 512 || bs == 1024 || bs == 2048 || bs == 4096;
}

static bool parse_device(struct pctx *p, yaml_node_t *n, const char *path,
			 struct cfg_device *d)
{
	static const char *const keys[] = {
		"name", "handler", "size", "block_size", "hw_max_sectors",
		"max_data_area_mb", "data_pages_per_blk", "cmd_ring_size_mb",
		"cmd_time_out", "read_only", "write_cache", "options", "exports", NULL,
	};
	yaml_node_t *size_node = NULL;
	yaml_node_pair_t *pair;
	char sub[PATH_MAX_LEN];
	uint64_t size = 0;

	d->line = (int)n->start_mark.line + 1;
	d->block_size = CFG_DEFAULT_BLOCK_SIZE;
	d->cmd_time_out = -1;
	if (!expect_map(p, n, path) || !check_keys(p, n, path, keys))
		return false;
	for_each_pair(n, pair) {
		const char *k = key_str(p, pair);
		yaml_node_t *v = node(p, pair->value);
		bool ok = true;

		subpath(sub, path, k);
		if (!strcmp(k, "name")) {
			ok = get_str(p, v, sub, d->name, sizeof(d->name));
			if (ok && !valid_object_name(d->name)) {
				perr(p, v, sub, "use only letters, digits and _ - . : (not first)");
				ok = false;
			}
		} else if (!strcmp(k, "handler")) {
			ok = get_str(p, v, sub, d->handler, sizeof(d->handler));
			if (ok && !tl_valid_handler_name(d->handler)) {
				perr(p, v, sub, "use only letters, digits, _ and -");
				ok = false;
			}
		} else if (!strcmp(k, "size")) {
			ok = get_size(p, v, sub, &size);
			size_node = v;
		} else if (!strcmp(k, "block_size")) {
			ok = get_u32(p, v, sub, 512, 4096, &d->block_size);
			if (ok && !valid_block_size(d->block_size)) {
				perr(p, v, sub, "expected 512, 1024, 2048 or 4096");
				ok = false;
			}
		} else if (!strcmp(k, "hw_max_sectors")) {
			ok = get_u32(p, v, sub, 1, 65535, &d->hw_max_sectors);
		} else if (!strcmp(k, "max_data_area_mb")) {
			ok = get_u32(p, v, sub, 1, 65536, &d->max_data_area_mb);
		} else if (!strcmp(k, "data_pages_per_blk")) {
			ok = get_u32(p, v, sub, 1, 512, &d->data_pages_per_blk);
		} else if (!strcmp(k, "cmd_ring_size_mb")) {
			/* The kernel caps the command ring at 8 MiB. */
			ok = get_u32(p, v, sub, 1, 8, &d->cmd_ring_size_mb);
		} else if (!strcmp(k, "cmd_time_out")) {
			uint32_t secs;

			ok = get_u32(p, v, sub, 0, 86400, &secs);
			d->cmd_time_out = (int32_t)secs;
		} else if (!strcmp(k, "read_only")) {
			ok = get_bool(p, v, sub, &d->read_only);
		} else if (!strcmp(k, "write_cache")) {
			ok = get_bool(p, v, sub, &d->write_cache);
		} else if (!strcmp(k, "options")) {
			free(d->options);
			d->options = NULL;
			ok = get_options(p, v, sub, &d->options,
					 d->cfgstring, sizeof(d->cfgstring));
		} else {
			ok = parse_exports(p, v, sub, d);
		}
		if (!ok)
			return false;
	}
	if (!d->name[0] || !d->handler[0] || !size_node) {
		perr(p, n, path, "%s is required",
		     !d->name[0] ? "name" : !d->handler[0] ? "handler" : "size");
		return false;
	}
	if (size % d->block_size) {
		subpath(sub, path, "size");
		perr(p, size_node, sub, "%" PRIu64 " is not a multiple of the block size %u",
		     size, d->block_size);
		return false;
	}
	d->size = size;
	if (!d->hw_max_sectors)
		d->hw_max_sectors = CFG_DEFAULT_MAX_IO_BYTES / d->block_size;
	/* The kernel refuses a data block larger than the data area. */
	if (d->data_pages_per_blk && d->max_data_area_mb &&
	    d->data_pages_per_blk > d->max_data_area_mb * 256u) {
		perr(p, n, path, "data_pages_per_blk %u is more than max_data_area_mb %u holds (%u pages)",
		     d->data_pages_per_blk, d->max_data_area_mb,
		     d->max_data_area_mb * 256u);
		return false;
	}
	if (d->loop.enabled && !d->loop.wwn[0])
		derive_wwn(d->name, d->loop.wwn, sizeof(d->loop.wwn));
	if (!d->options) {
		d->options = strdup("{}");
		if (!d->options) {
			perr(p, n, path, "out of memory");
			return false;
		}
	}
	return true;
}

/* Two devices must not claim the same name or the same LUN of a target. */
static bool check_conflicts(struct pctx *p, struct tl_config *c,
			    yaml_node_t *list)
{
	unsigned int i, j;
	char path[PATH_MAX_LEN];

	for (i = 0; i < c->n_devices; i++) {
		struct cfg_device *a = &c->devices[i];
		yaml_node_t *n = node(p, list->data.sequence.items.start[i]);

		pathf(path, "devices[%u]", i);
		for (j = 0; j < i; j++) {
			struct cfg_device *b = &c->devices[j];

			if (!strcmp(a->name, b->name)) {
				perr(p, n, path, "name '%s' is already used by devices[%u] (line %d)",
				     a->name, j, b->line);
				return false;
			}
			if (a->loop.enabled && b->loop.enabled &&
			    !strcmp(a->loop.wwn, b->loop.wwn) &&
			    a->loop.lun == b->loop.lun) {
				perr(p, n, path, "loop LUN %u of %s is already used by devices[%u] (line %d)",
				     a->loop.lun, a->loop.wwn, j, b->line);
				return false;
			}
			if (a->iscsi.enabled && b->iscsi.enabled &&
			    !strcmp(a->iscsi.iqn, b->iscsi.iqn) &&
			    a->iscsi.lun == b->iscsi.lun) {
				perr(p, n, path, "iSCSI LUN %u of %s is already used by devices[%u] (line %d)",
				     a->iscsi.lun, a->iscsi.iqn, j, b->line);
				return false;
			}
		}
	}
	return true;
}

static bool parse_devices(struct pctx *p, struct tl_config *c, yaml_node_t *n)
{
	yaml_node_item_t *it;
	char path[PATH_MAX_LEN];
	size_t count;
	unsigned int i = 0;

	if (is_null(n))
		return true;
	if (n->type != YAML_SEQUENCE_NODE) {
		perr(p, n, "devices", "expected a list, got %s", node_kind(n));
		return false;
	}
	count = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
	c->devices = calloc(count ? count : 1, sizeof(*c->devices));
	if (!c->devices) {
		perr(p, n, "devices", "out of memory");
		return false;
	}
	for (it = n->data.sequence.items.start;
	     it < n->data.sequence.items.top; it++, i++) {
		pathf(path, "devices[%u]", i);
		c->n_devices = i + 1;
		if (!parse_device(p, node(p, *it), path, &c->devices[i]))
			return false;
	}
	return check_conflicts(p, c, n);
}

/* ---- daemon ---------------------------------------------------------------- */

static bool add_handler_dir(struct pctx *p, struct tl_config *c,
			    yaml_node_t *v, const char *path)
{
	char buf[PATH_MAX];
	char **dirs;

	if (!get_str(p, v, path, buf, sizeof(buf)))
		return false;
	if (strchr(buf, ';')) {
		perr(p, v, path, "a directory name must not contain ';'");
		return false;
	}
	dirs = realloc(c->handler_dirs, (c->n_handler_dirs + 1) * sizeof(*dirs));
	if (!dirs || !(dirs[c->n_handler_dirs] = strdup(buf))) {
		if (dirs)
			c->handler_dirs = dirs;
		perr(p, v, path, "out of memory");
		return false;
	}
	c->handler_dirs = dirs;
	c->n_handler_dirs++;
	return true;
}

static bool parse_workers(struct pctx *p, yaml_node_t *v, const char *path,
			  unsigned int *out)
{
	const char *s = scalar(v);
	uint64_t n;
	long cpus;

	if (s && !strcmp(s, "auto")) {
		cpus = sysconf(_SC_NPROCESSORS_ONLN);
		*out = cpus < 1 ? 1 : cpus > 64 ? 64 : (unsigned int)cpus;
		return true;
	}
	if (!s || !is_plain(v) || !parse_u64(s, &n)) {
		perr(p, v, path, "expected a number of threads or auto");
		return false;
	}
	if (n < 1 || n > 64) {
		perr(p, v, path, "%" PRIu64 " is out of range (1..64)", n);
		return false;
	}
	*out = (unsigned int)n;
	return true;
}

static bool parse_daemon(struct pctx *p, struct tl_config *c, yaml_node_t *n)
{
	static const char *const keys[] = {
		"handler_dirs", "workers", "log_level", "control_socket",
		"pid_file", "hba", "hot_reload", "poll_us", "io_uring",
		"lua_timeout_ms", "lua_memory_limit", NULL,
	};
	yaml_node_pair_t *pair;
	char sub[PATH_MAX_LEN], level[16];
	uint64_t v64;

	if (is_null(n))
		return true;
	if (!expect_map(p, n, "daemon") || !check_keys(p, n, "daemon", keys))
		return false;
	for_each_pair(n, pair) {
		const char *k = key_str(p, pair);
		yaml_node_t *v = node(p, pair->value);
		bool ok = true;

		subpath(sub, "daemon", k);
		if (!strcmp(k, "handler_dirs")) {
			if (v->type == YAML_SEQUENCE_NODE) {
				yaml_node_item_t *it;
				char item[PATH_MAX_LEN];
				int i = 0;

				for (it = v->data.sequence.items.start;
				     ok && it < v->data.sequence.items.top;
				     it++, i++) {
					pathf(item, "%s[%d]",
						 sub, i);
					ok = add_handler_dir(p, c,
							     node(p, *it), item);
				}
			} else {
				ok = add_handler_dir(p, c, v, sub);
			}
		} else if (!strcmp(k, "workers")) {
			ok = parse_workers(p, v, sub, &c->workers);
		} else if (!strcmp(k, "log_level")) {
			ok = get_str(p, v, sub, level, sizeof(level));
			if (ok) {
				c->log_level = tl_log_level_parse(level);
				if (c->log_level < 0) {
					perr(p, v, sub, "expected error, warn, info or debug");
					ok = false;
				}
			}
		} else if (!strcmp(k, "control_socket")) {
			ok = get_dup(p, v, sub, &c->control_socket);
		} else if (!strcmp(k, "pid_file")) {
			ok = get_dup(p, v, sub, &c->pid_file);
		} else if (!strcmp(k, "hot_reload")) {
			ok = get_bool(p, v, sub, &c->hot_reload);
		} else if (!strcmp(k, "poll_us")) {
			ok = get_uint(p, v, sub, 0, 1000000, &v64);
			c->poll_us = (unsigned int)v64;
		} else if (!strcmp(k, "io_uring")) {
			ok = get_bool(p, v, sub, &c->io_uring);
		} else if (!strcmp(k, "lua_timeout_ms")) {
			ok = get_uint(p, v, sub, 0, 3600000, &v64);
			c->lua_timeout_ms = (unsigned int)v64;
		} else if (!strcmp(k, "lua_memory_limit")) {
			/* A size, or 0 for no limit. */
			const char *s0 = scalar(v);

			if (s0 && !strcmp(s0, "0"))
				c->lua_memory_limit = 0;
			else
				ok = get_size(p, v, sub, &c->lua_memory_limit);
		} else {
			ok = get_uint(p, v, sub, 0, 1000000, &v64);
			c->hba = (unsigned int)v64;
		}
		if (!ok)
			return false;
	}
	return true;
}

/* ---- the document ------------------------------------------------------- */

static bool parse_root(struct pctx *p, struct tl_config *c, yaml_node_t *root)
{
	static const char *const keys[] = { "daemon", "devices", NULL };
	yaml_node_pair_t *pair;

	if (!root || is_null(root))
		return true;	/* an empty file: all defaults */
	if (!expect_map(p, root, "") || !check_keys(p, root, "", keys))
		return false;
	for_each_pair(root, pair) {
		const char *k = key_str(p, pair);
		yaml_node_t *v = node(p, pair->value);

		if (!strcmp(k, "daemon") ? !parse_daemon(p, c, v) :
					   !parse_devices(p, c, v))
			return false;
	}
	return true;
}

struct tl_config *tl_config_default(void)
{
	struct tl_config *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->workers = CFG_DEFAULT_WORKERS;
	c->log_level = TL_LOG_INFO;
	c->hba = CFG_DEFAULT_HBA;
	c->io_uring = true;
	c->lua_timeout_ms = CFG_DEFAULT_LUA_TIMEOUT_MS;
	c->lua_memory_limit = CFG_DEFAULT_LUA_MEMORY_LIMIT;
	return c;
}

static void syntax_error(struct pctx *p, yaml_parser_t *yp)
{
	const yaml_mark_t *m = &yp->problem_mark;

	p->failed = true;
	if (yp->error == YAML_MEMORY_ERROR)
		snprintf(p->err, p->errlen, "%s: out of memory", p->file);
	else
		snprintf(p->err, p->errlen, "%s:%zu:%zu: YAML syntax error: %s%s%s",
			 p->file, m->line + 1, m->column + 1,
			 yp->problem ? yp->problem : "malformed",
			 yp->context ? " " : "",
			 yp->context ? yp->context : "");
}

/* YAML can spell a NUL byte ("\0"); a C string would silently end there. */
static bool nul_in_scalars(struct pctx *p)
{
	yaml_node_t *n;

	for (n = p->doc->nodes.start; n < p->doc->nodes.top; n++)
		if (n->type == YAML_SCALAR_NODE &&
		    memchr(n->data.scalar.value, '\0', n->data.scalar.length)) {
			perr(p, n, "", "NUL byte in a string");
			return true;
		}
	return false;
}

struct tl_config *tl_config_parse(const char *name, const char *text,
				  size_t len, char *err, size_t errlen)
{
	struct pctx p = { .file = name, .err = err, .errlen = errlen };
	yaml_document_t doc, extra;
	yaml_parser_t yp;
	struct tl_config *c;

	c = tl_config_default();
	if (!c || !(c->path = strdup(name))) {
		snprintf(err, errlen, "%s: out of memory", name);
		tl_config_free(c);
		return NULL;
	}
	if (!yaml_parser_initialize(&yp)) {
		snprintf(err, errlen, "%s: out of memory", name);
		tl_config_free(c);
		return NULL;
	}
	yaml_parser_set_input_string(&yp, (const unsigned char *)text, len);
	if (!yaml_parser_load(&yp, &doc)) {
		syntax_error(&p, &yp);
		yaml_parser_delete(&yp);
		tl_config_free(c);
		return NULL;
	}
	p.doc = &doc;
	if (!nul_in_scalars(&p))
		parse_root(&p, c, yaml_document_get_root_node(&doc));
	if (!p.failed) {
		/* A second document would be silently ignored: refuse it. */
		if (!yaml_parser_load(&yp, &extra)) {
			syntax_error(&p, &yp);
		} else {
			yaml_node_t *r = yaml_document_get_root_node(&extra);

			if (r)
				perr(&p, r, "", "only one YAML document is allowed");
			yaml_document_delete(&extra);
		}
	}
	yaml_document_delete(&doc);
	yaml_parser_delete(&yp);
	if (p.failed) {
		tl_config_free(c);
		return NULL;
	}
	return c;
}

struct tl_config *tl_config_load(const char *path, char *err, size_t errlen)
{
	struct tl_config *c;
	char *text = NULL;
	size_t len = 0, cap = 0;
	FILE *f;

	f = fopen(path, "re");
	if (!f) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	for (;;) {
		size_t n;

		if (len + 4096 > cap) {
			char *nt;

			cap = cap ? cap * 2 : 8192;
			nt = realloc(text, cap);
			if (!nt || cap > 16 * 1024 * 1024) {
				snprintf(err, errlen, "%s: %s", path,
					 nt ? "file too large" : "out of memory");
				free(nt ? nt : text);
				fclose(f);
				return NULL;
			}
			text = nt;
		}
		n = fread(text + len, 1, cap - len, f);
		len += n;
		if (n == 0)
			break;
	}
	if (ferror(f)) {
		snprintf(err, errlen, "%s: read error", path);
		free(text);
		fclose(f);
		return NULL;
	}
	fclose(f);
	c = tl_config_parse(path, text ? text : "", len, err, errlen);
	free(text);
	return c;
}

void tl_config_free(struct tl_config *c)
{
	unsigned int i;

	if (!c)
		return;
	for (i = 0; i < c->n_handler_dirs; i++)
		free(c->handler_dirs[i]);
	free(c->handler_dirs);
	for (i = 0; i < c->n_devices; i++)
		free(c->devices[i].options);
	free(c->devices);
	free(c->control_socket);
	free(c->pid_file);
	free(c->path);
	free(c);
}

const struct cfg_device *tl_config_find(const struct tl_config *c,
					const char *name)
{
	unsigned int i;

	for (i = 0; c && i < c->n_devices; i++)
		if (!strcmp(c->devices[i].name, name))
			return &c->devices[i];
	return NULL;
}

char *tl_config_handler_path(const struct tl_config *c)
{
	size_t len = 0;
	unsigned int i;
	char *s;

	if (!c->n_handler_dirs)
		return NULL;
	for (i = 0; i < c->n_handler_dirs; i++)
		len += strlen(c->handler_dirs[i]) + 1;
	s = malloc(len);
	if (!s)
		return NULL;
	s[0] = '\0';
	for (i = 0; i < c->n_handler_dirs; i++) {
		if (i)
			strcat(s, ";");
		strcat(s, c->handler_dirs[i]);
	}
	return s;
}
