/* Compose variable interpolation, as compose-go's template package. */
#include "compose/compose_internal.h"

#include <ctype.h>
#include <string.h>

#define INTERP_MAX_DEPTH 32

static bool name_start(char ch)
{
    return ch == '_' || isalpha((unsigned char)ch);
}
static bool name_char(char ch)
{
    return ch == '_' || isalnum((unsigned char)ch);
}

static const char *lookup(const json_t *env, const char *name, size_t n)
{
    _cleanup_free_ char *k = xstrndup(name, n);
    const json_t *v = json_object_get(env, k);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static int expand(const char *s, size_t len, const json_t *env, hypr_buf *b, char **msg, int depth);

/* s[0..len) is the inside of ${...}. */
static int expand_braced(const char *s, size_t len, const json_t *env, hypr_buf *b, char **msg,
                         int depth)
{
    size_t n = 0;
    if (len == 0 || !name_start(s[0]))
        goto invalid;
    while (n < len && name_char(s[n]))
        n++;
    const char *val = lookup(env, s, n);
    if (n == len) {
        if (val)
            buf_puts(b, val);
        return 0;
    }
    bool colon = s[n] == ':';
    size_t op = n + colon;
    if (op >= len || !strchr("-?+", s[op]))
        goto invalid;
    char kind = s[op];
    const char *word = s + op + 1;
    size_t wlen = len - op - 1;
    bool set = val && (!colon || *val);
    switch (kind) {
    case '-':
        if (set) {
            buf_puts(b, val);
            return 0;
        }
        return expand(word, wlen, env, b, msg, depth + 1);
    case '+':
        if (set)
            return expand(word, wlen, env, b, msg, depth + 1);
        return 0;
    default: /* '?' */
        if (set) {
            buf_puts(b, val);
            return 0;
        }
        {
            _cleanup_buf_ hypr_buf m = {0};
            if (expand(word, wlen, env, &m, msg, depth + 1) < 0)
                return -EINVAL;
            *msg = xasprintf("required variable %.*s is missing a value%s%s", (int)n, s,
                             m.len ? ": " : "", m.len ? m.data : "");
        }
        return -EINVAL;
    }
invalid:
    *msg = xasprintf("invalid interpolation format for \"${%.*s}\"", (int)len, s);
    return -EINVAL;
}

static int expand(const char *s, size_t len, const json_t *env, hypr_buf *b, char **msg, int depth)
{
    if (depth > INTERP_MAX_DEPTH) {
        *msg = xstrdup("interpolation nested too deeply");
        return -EINVAL;
    }
    for (size_t i = 0; i < len; i++) {
        if (s[i] != '$') {
            buf_append(b, s + i, 1);
            continue;
        }
        if (i + 1 < len && s[i + 1] == '$') {
            buf_puts(b, "$");
            i++;
        } else if (i + 1 < len && s[i + 1] == '{') {
            size_t j = i + 2, open = 1;
            for (; j < len; j++) {
                if (s[j] == '{' && s[j - 1] == '$')
                    open++;
                else if (s[j] == '}' && --open == 0)
                    break;
            }
            if (j >= len) {
                *msg = xasprintf("invalid interpolation format: unterminated \"${\" in \"%.*s\"",
                                 (int)len, s);
                return -EINVAL;
            }
            if (expand_braced(s + i + 2, j - i - 2, env, b, msg, depth) < 0)
                return -EINVAL;
            i = j;
        } else if (i + 1 < len && name_start(s[i + 1])) {
            size_t j = i + 1;
            while (j < len && name_char(s[j]))
                j++;
            const char *val = lookup(env, s + i + 1, j - i - 1);
            if (val)
                buf_puts(b, val);
            i = j - 1;
        } else {
            *msg = xasprintf("invalid interpolation format for \"%.*s\": a '$' must be followed "
                             "by a name, '{' or '$' (write $$ for a literal $)",
                             (int)len, s);
            return -EINVAL;
        }
    }
    return 0;
}

int cz_interpolate(const char *s, const json_t *env, char **out, char **msg)
{
    _cleanup_buf_ hypr_buf b = {0};
    *out = NULL;
    *msg = NULL;
    buf_puts(&b, "");
    if (expand(s, strlen(s), env, &b, msg, 0) < 0)
        return -EINVAL;
    *out = buf_steal(&b);
    return 0;
}
