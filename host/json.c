// SPDX-License-Identifier: MIT
/*
 * json.c - JSON writer and flat-object reader for the control socket.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

void jb_init(struct jbuf *b)
{
	memset(b, 0, sizeof(*b));
}

void jb_free(struct jbuf *b)
{
	free(b->s);
	jb_init(b);
}

static void put(struct jbuf *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		char *p;

		while (cap < b->len + n + 1)
			cap *= 2;
		p = realloc(b->s, cap);
		if (!p) {
			b->oom = true;
			return;
		}
		b->s = p;
		b->cap = cap;
	}
	memcpy(b->s + b->len, s, n);
	b->len += n;
	b->s[b->len] = '\0';
}

void jb_raw(struct jbuf *b, const char *s)
{
	put(b, s, strlen(s));
}

static void comma(struct jbuf *b)
{
	if (b->need_comma)
		put(b, ",", 1);
	b->need_comma = true;
}

void jb_open(struct jbuf *b, char brace)
{
	comma(b);
	put(b, &brace, 1);
	b->need_comma = false;
}

void jb_close(struct jbuf *b, char brace)
{
	put(b, &brace, 1);
	b->need_comma = true;
}

void jb_str(struct jbuf *b, const char *s)
{
	char esc[8];

	comma(b);
	put(b, "\"", 1);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			put(b, esc, 2);
		} else if (c < 0x20) {
			snprintf(esc, sizeof(esc), "\\u%04x", c);
			put(b, esc, 6);
		} else {
			put(b, (const char *)&c, 1);
		}
	}
	put(b, "\"", 1);
}

void jb_key(struct jbuf *b, const char *key)
{
	jb_str(b, key);
	put(b, ":", 1);
	b->need_comma = false;
}

void jb_u64(struct jbuf *b, uint64_t v)
{
	char num[24];

	comma(b);
	snprintf(num, sizeof(num), "%" PRIu64, v);
	jb_raw(b, num);
}

void jb_double(struct jbuf *b, double v)
{
	char num[32];

	comma(b);
	snprintf(num, sizeof(num), "%.3f", v);
	jb_raw(b, num);
}

void jb_bool(struct jbuf *b, bool v)
{
	comma(b);
	jb_raw(b, v ? "true" : "false");
}

void jb_kstr(struct jbuf *b, const char *key, const char *s)
{
	jb_key(b, key);
	jb_str(b, s);
}

void jb_ku64(struct jbuf *b, const char *key, uint64_t v)
{
	jb_key(b, key);
	jb_u64(b, v);
}

void jb_kbool(struct jbuf *b, const char *key, bool v)
{
	jb_key(b, key);
	jb_bool(b, v);
}

/* ---- reading ---- */

struct cursor {
	const char *p, *end;
};

static void skip_ws(struct cursor *c)
{
	while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' ||
				 *c->p == '\r' || *c->p == '\n'))
		c->p++;
}

static int hexval(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/*
 * Length of the UTF-8 sequence at p (shortest form, no surrogates, at most
 * U+10FFFF), or 0 if it is not one.
 */
static size_t utf8_len(const unsigned char *p, const unsigned char *end)
{
	unsigned int cp, n, i;

	if (p[0] < 0x80)
		return 1;
	if ((p[0] & 0xe0) == 0xc0)
		n = 1, cp = p[0] & 0x1f;
	else if ((p[0] & 0xf0) == 0xe0)
		n = 2, cp = p[0] & 0x0f;
	else if ((p[0] & 0xf8) == 0xf0)
		n = 3, cp = p[0] & 0x07;
	else
		return 0;
	if ((size_t)(end - p) <= n)
		return 0;
	for (i = 1; i <= n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) ||
	    (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n + 1;
}

/*
 * A string into out (cap bytes); \u escapes beyond ASCII are refused, and
 * so is anything that is not UTF-8 (it would be echoed into replies).
 */
static int read_string(struct cursor *c, char *out, size_t cap,
		       const char **err)
{
	size_t n = 0;

	if (c->p >= c->end || *c->p != '"') {
		*err = "expected a string";
		return -1;
	}
	c->p++;
	while (c->p < c->end && *c->p != '"') {
		size_t u = utf8_len((const unsigned char *)c->p,
				    (const unsigned char *)c->end);
		char ch;

		if (u == 0) {
			*err = "string is not UTF-8";
			return -1;
		}
		if (u > 1) {
			if (n + u >= cap) {
				*err = "string too long";
				return -1;
			}
			memcpy(out + n, c->p, u);
			n += u;
			c->p += u;
			continue;
		}
		ch = *c->p++;

		if ((unsigned char)ch < 0x20) {
			*err = "control character in string";
			return -1;
		}
		if (ch == '\\') {
			if (c->p >= c->end) {
				*err = "unterminated string";
				return -1;
			}
			ch = *c->p++;
			switch (ch) {
			case '"': case '\\': case '/': break;
			case 'n': ch = '\n'; break;
			case 't': ch = '\t'; break;
			case 'r': ch = '\r'; break;
			case 'b': ch = '\b'; break;
			case 'f': ch = '\f'; break;
			case 'u': {
				int v = 0;

				for (int i = 0; i < 4; i++) {
					int h = c->p < c->end ? hexval(*c->p++) : -1;

					if (h < 0) {
						*err = "bad \\u escape";
						return -1;
					}
					v = v * 16 + h;
				}
				if (v == 0 || v > 0x7f) {
					*err = "only ASCII \\u escapes are accepted";
					return -1;
				}
				ch = (char)v;
				break;
			}
			default:
				*err = "bad escape in string";
				return -1;
			}
		}
		if (n + 1 >= cap) {
			*err = "string too long";
			return -1;
		}
		out[n++] = ch;
	}
	if (c->p >= c->end) {
		*err = "unterminated string";
		return -1;
	}
	c->p++;
	out[n] = '\0';
	return 0;
}

/* RFC 8259: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][-+]?[0-9]+)? and no more. */
static bool json_number(const char *s)
{
	if (*s == '-')
		s++;
	if (*s == '0')
		s++;
	else if (*s >= '1' && *s <= '9')
		while (*s >= '0' && *s <= '9')
			s++;
	else
		return false;
	if (*s == '.') {
		if (!(*++s >= '0' && *s <= '9'))
			return false;
		while (*s >= '0' && *s <= '9')
			s++;
	}
	if (*s == 'e' || *s == 'E') {
		s++;
		if (*s == '+' || *s == '-')
			s++;
		if (!(*s >= '0' && *s <= '9'))
			return false;
		while (*s >= '0' && *s <= '9')
			s++;
	}
	return !*s;
}

/* A number, true, false or null, copied as text. */
static int read_atom(struct cursor *c, char *out, size_t cap, const char **err)
{
	size_t n = 0;

	while (c->p < c->end && strchr("+-.0123456789eEtrufalsn", *c->p)) {
		if (n + 1 >= cap) {
			*err = "value too long";
			return -1;
		}
		out[n++] = *c->p++;
	}
	out[n] = '\0';
	if (!n) {
		*err = "expected a value (objects and arrays are not accepted)";
		return -1;
	}
	if (!strcmp(out, "true") || !strcmp(out, "false") ||
	    !strcmp(out, "null"))
		return 0;
	if (!json_number(out)) {
		*err = "bad number";
		return -1;
	}
	return 0;
}

int json_parse_flat(const char *text, size_t len, struct json_req *req,
		    const char **err)
{
	struct cursor c = { text, text + len };

	memset(req, 0, sizeof(*req));
	skip_ws(&c);
	if (c.p >= c.end || *c.p != '{') {
		*err = "expected a JSON object";
		return -1;
	}
	c.p++;
	skip_ws(&c);
	if (c.p < c.end && *c.p == '}') {
		c.p++;
		goto done;
	}
	for (;;) {
		if (req->n == JSON_MAX_FIELDS) {
			*err = "too many fields";
			return -1;
		}
		skip_ws(&c);
		if (read_string(&c, req->key[req->n], sizeof(req->key[0]), err))
			return -1;
		skip_ws(&c);
		if (c.p >= c.end || *c.p != ':') {
			*err = "expected ':'";
			return -1;
		}
		c.p++;
		skip_ws(&c);
		if (c.p < c.end && *c.p == '"') {
			if (read_string(&c, req->val[req->n],
					sizeof(req->val[0]), err))
				return -1;
		} else if (read_atom(&c, req->val[req->n], sizeof(req->val[0]),
				     err)) {
			return -1;
		}
		req->n++;
		skip_ws(&c);
		if (c.p < c.end && *c.p == ',') {
			c.p++;
			continue;
		}
		if (c.p < c.end && *c.p == '}') {
			c.p++;
			break;
		}
		*err = "expected ',' or '}'";
		return -1;
	}
done:
	skip_ws(&c);
	if (c.p != c.end) {
		*err = "trailing characters after the object";
		return -1;
	}
	return 0;
}

const char *json_get(const struct json_req *req, const char *key)
{
	for (unsigned int i = 0; i < req->n; i++)
		if (!strcmp(req->key[i], key))
			return req->val[i];
	return NULL;
}
