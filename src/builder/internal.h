/* Shared between the builder module's files; not part of its interface. */
#ifndef HYPR_BUILDER_INTERNAL_H
#define HYPR_BUILDER_INTERNAL_H

#include <string.h>

#include "builder/builder.h"

/* [ \t\v\f\r]: BuildKit's reWhitespace. */
static inline bool builder_is_blank(int c)
{
    return c == ' ' || c == '\t' || c == '\v' || c == '\f' || c == '\r';
}
/* Go's unicode.IsSpace for ASCII (BuildKit's loops test it per byte). */
static inline bool builder_is_space(int c)
{
    return builder_is_blank(c) || c == '\n';
}

/* builder_strv: appends a copy of s[0..len). */
void strv_push(builder_strv *v, const char *s, size_t len);
static inline void strv_push_str(builder_strv *v, const char *s)
{
    strv_push(v, s, strlen(s));
}
void builder_strv_clear(builder_strv *v);

/* splitCommand's extractBuilderFlags: the leading --flag words of line go into
 * flags; *rest points at what follows them inside line. */
void builder_extract_flags(const char *line, char escape, builder_strv *flags, const char **rest);
/* parseWords: the words of ARG/ENV/LABEL, quotes and escapes kept. */
void builder_parse_words(const char *rest, char escape, builder_strv *words);

/* heredocsFromLine: the heredocs that the words of line declare, in order;
 * bodies are not read here. <0 with err (message without location) on a
 * delimiter the lexer rejects. */
int builder_heredocs_from_line(const char *line, builder_heredoc **out, size_t *n, hypr_error *err);
void builder_heredocs_free(builder_heredoc *h, size_t n);

/* Whitespace-trimmed copy of s[0..len) (Go's strings.TrimSpace for ASCII). */
char *builder_trim_dup(const char *s, size_t len);

/* Decodes one UTF-8 character into *cp: its length, 0 for an invalid sequence. */
size_t builder_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp);
/* s[0..n) with each invalid UTF-8 byte replaced by U+FFFD, as Go's decoders do. */
void builder_utf8_sanitize(const char *s, size_t n, hypr_buf *out);

#endif
