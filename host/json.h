/* SPDX-License-Identifier: MIT */
/*
 * json.h - the little JSON the control socket speaks: a writer into a
 * growing buffer, and a reader for flat request objects
 * ({"cmd":"stats","dev":"disk0"}).  Nothing nested is accepted in requests.
 */
#ifndef TL_JSON_H
#define TL_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct jbuf {
	char *s;
	size_t len, cap;
	bool oom;		/* an allocation failed: the reply is dropped */
	bool need_comma;
};

void jb_init(struct jbuf *b);
void jb_free(struct jbuf *b);
void jb_raw(struct jbuf *b, const char *s);
void jb_open(struct jbuf *b, char brace);	/* '{' or '[' */
void jb_close(struct jbuf *b, char brace);	/* '}' or ']' */
void jb_key(struct jbuf *b, const char *key);	/* "key": (in objects) */
void jb_str(struct jbuf *b, const char *s);	/* a quoted, escaped string */
void jb_u64(struct jbuf *b, uint64_t v);
void jb_double(struct jbuf *b, double v);
void jb_bool(struct jbuf *b, bool v);

/* key + value in one go, inside an object. */
void jb_kstr(struct jbuf *b, const char *key, const char *s);
void jb_ku64(struct jbuf *b, const char *key, uint64_t v);
void jb_kbool(struct jbuf *b, const char *key, bool v);

#define JSON_MAX_FIELDS 8
#define JSON_MAX_VALUE 256

struct json_req {
	unsigned int n;
	char key[JSON_MAX_FIELDS][32];
	char val[JSON_MAX_FIELDS][JSON_MAX_VALUE];	/* strings unescaped; numbers as text */
};

/* Parse one flat object.  Returns 0, or -1 with a static message in *err. */
int json_parse_flat(const char *text, size_t len, struct json_req *req,
		    const char **err);
const char *json_get(const struct json_req *req, const char *key);

#endif /* TL_JSON_H */
