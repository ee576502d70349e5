/* The word scanners of BuildKit's parser: builder flags (split_command.go's
 * extractBuilderFlags) and the quote-keeping words of ARG, ENV and LABEL
 * (line_parsers.go's parseWords), plus the byte-string vector they fill. */
#include "builder/internal.h"

#include <string.h>

void strv_push(builder_strv *v, const char *s, size_t len)
{
    v->v = xrealloc(v->v, (v->n + 2) * sizeof(char *));
    v->len = xrealloc(v->len, (v->n + 1) * sizeof(size_t));
    char *copy = xmalloc(len + 1);
    if (len)
        memcpy(copy, s, len);
    copy[len] = '\0';
    v->v[v->n] = copy;
    v->len[v->n++] = len;
    v->v[v->n] = NULL;
}

void builder_strv_clear(builder_strv *v)
{
    for (size_t i = 0; i < v->n; i++)
        free(v->v[i]);
    free(v->v);
    free(v->len);
    *v = (builder_strv){0};
}

char *builder_trim_dup(const char *s, size_t len)
{
    while (len && builder_is_space((unsigned char)*s))
        s++, len--;
    while (len && builder_is_space((unsigned char)s[len - 1]))
        len--;
    return xstrndup(s, len);
}

enum { IN_SPACES, IN_WORD, IN_QUOTE };

void builder_extract_flags(const char *line, char escape, builder_strv *flags, const char **rest)
{
    size_t len = strlen(line);
    int phase = IN_SPACES;
    char quote = 0;
    bool blank_ok = false;
    _cleanup_buf_ hypr_buf word = {0};
    buf_puts(&word, "");
    *rest = line + len;
    for (size_t pos = 0; pos <= len; pos++) {
        char ch = pos < len ? line[pos] : 0;
        if (phase == IN_SPACES) {
            if (pos == len)
                break;
            if (builder_is_space((unsigned char)ch))
                continue;
            /* Only a word starting with "--" is a flag. */
            if (ch != '-' || pos + 1 == len || line[pos + 1] != '-') {
                *rest = line + pos;
                return;
            }
            phase = IN_WORD;
        }
        if (pos == len) {
            if (strcmp(word.data, "--") && (blank_ok || word.len))
                strv_push(flags, word.data, word.len);
            break;
        }
        if (phase == IN_WORD) {
            if (builder_is_space((unsigned char)ch)) {
                phase = IN_SPACES;
                if (!strcmp(word.data, "--")) {
                    *rest = line + pos;
                    return;
                }
                if (blank_ok || word.len)
                    strv_push(flags, word.data, word.len);
                word.len = 0;
                word.data[0] = '\0';
                blank_ok = false;
                continue;
            }
            if (ch == '\'' || ch == '"') {
                quote = ch;
                blank_ok = true;
                phase = IN_QUOTE;
                continue;
            }
            if (ch == escape) {
                if (pos + 1 == len)
                    continue; /* an escape at the very end is dropped */
                ch = line[++pos];
            }
            buf_append(&word, &ch, 1);
            continue;
        }
        /* IN_QUOTE */
        if (ch == quote) {
            phase = IN_WORD;
            continue;
        }
        if (ch == escape) {
            if (pos + 1 == len) {
                phase = IN_WORD;
                continue;
            }
            ch = line[++pos];
        }
        buf_append(&word, &ch, 1);
    }
}

void builder_parse_words(const char *rest, char escape, builder_strv *words)
{
    size_t len = strlen(rest);
    int phase = IN_SPACES;
    char quote = 0;
    bool blank_ok = false;
    _cleanup_buf_ hypr_buf word = {0};
    buf_puts(&word, "");
    for (size_t pos = 0; pos <= len; pos++) {
        char ch = pos < len ? rest[pos] : 0;
        if (phase == IN_SPACES) {
            if (pos == len)
                break;
            if (builder_is_space((unsigned char)ch))
                continue;
            phase = IN_WORD;
        }
        if (pos == len) {
            if (blank_ok || word.len)
                strv_push(words, word.data, word.len);
            break;
        }
        if (phase == IN_WORD) {
            if (builder_is_space((unsigned char)ch)) {
                phase = IN_SPACES;
                if (blank_ok || word.len)
                    strv_push(words, word.data, word.len);
                word.len = 0;
                word.data[0] = '\0';
                blank_ok = false;
                continue;
            }
            if (ch == '\'' || ch == '"') {
                quote = ch;
                blank_ok = true;
                phase = IN_QUOTE;
            }
            if (ch == escape) {
                if (pos + 1 == len)
                    continue;
                /* Unquoted, the escape and the next character are both kept, even a
                 * quote. */
                buf_append(&word, &ch, 1);
                ch = rest[++pos];
            }
            buf_append(&word, &ch, 1);
            continue;
        }
        /* IN_QUOTE */
        if (ch == quote)
            phase = IN_WORD;
        /* The escape token escapes inside "..." only. */
        if (ch == escape && quote != '\'') {
            if (pos + 1 == len) {
                phase = IN_WORD;
                continue;
            }
            buf_append(&word, &ch, 1);
            ch = rest[++pos];
        }
        buf_append(&word, &ch, 1);
    }
}
