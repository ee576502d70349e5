/* dotenv files (.env, --env-file, env_file:) with compose-go's syntax: KEY=VALUE,
 * an optional `export `, comments, 'single' (literal) and "double" quoted values
 * (escapes, several lines, ${VAR} expanded), unquoted values (trailing " # comment"
 * dropped, ${VAR} expanded). */
#include "compose/compose_internal.h"

#include <ctype.h>
#include <string.h>

json_t *cz_env_from_strv(char **envp)
{
    json_t *o = json_object();
    for (char **e = envp; e && *e; e++) {
        const char *eq = strchr(*e, '=');
        if (!eq || eq == *e)
            continue;
        _cleanup_free_ char *k = xstrndup(*e, (size_t)(eq - *e));
        json_object_set_new(o, k, json_string(eq + 1));
    }
    return o;
}

typedef struct {
    const char *p, *end;
    int line;
} cursor;

static void skip_blank(cursor *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t'))
        c->p++;
}

/* Expands ${VAR} in v from out, then lookup. */
static int expand_value(const char *v, const json_t *lookup, const json_t *out, char **res,
                        char **msg)
{
    if (!strchr(v, '$')) {
        *res = xstrdup(v);
        return 0;
    }
    _cleanup_json_ json_t *env = lookup ? json_copy((json_t *)lookup) : json_object();
    json_object_update(env, (json_t *)out);
    return cz_interpolate(v, env, res, msg);
}

int cz_dotenv_parse(const char *data, size_t len, const json_t *lookup, json_t *out, char **msg,
                    int *line)
{
    cursor c = {data, data + len, 1};
    *msg = NULL;
    *line = 0;
    while (c.p < c.end) {
        skip_blank(&c);
        if (c.p >= c.end)
            break;
        if (*c.p == '\n' || *c.p == '\r' || *c.p == '#') {
            while (c.p < c.end && *c.p != '\n')
                c.p++;
            if (c.p < c.end)
                c.p++, c.line++;
            continue;
        }
        if ((size_t)(c.end - c.p) > 7 && !memcmp(c.p, "export", 6) &&
            (c.p[6] == ' ' || c.p[6] == '\t')) {
            c.p += 6;
            skip_blank(&c);
        }
        const char *k = c.p;
        while (c.p < c.end && *c.p != '=' && *c.p != '\n' && *c.p != ' ' && *c.p != '\t' &&
               *c.p != '#')
            c.p++;
        size_t klen = (size_t)(c.p - k);
        int kline = c.line;
        skip_blank(&c);
        if (klen == 0 || memchr(k, '\0', klen)) {
            *msg = xstrdup("invalid line: expected KEY=VALUE");
            *line = kline;
            return -EINVAL;
        }
        for (size_t i = 0; i < klen; i++)
            if (!isalnum((unsigned char)k[i]) && !strchr("_.-[]", k[i])) {
                *msg = xasprintf("invalid variable name \"%.*s\"", (int)klen, k);
                *line = kline;
                return -EINVAL;
            }
        _cleanup_free_ char *key = xstrndup(k, klen);
        if (c.p >= c.end || *c.p != '=') {
            /* A bare KEY takes its value from the environment, when it has one. */
            while (c.p < c.end && (*c.p == ' ' || *c.p == '\t' || *c.p == '\r'))
                c.p++;
            if (c.p < c.end && *c.p == '#')
                while (c.p < c.end && *c.p != '\n')
                    c.p++;
            if (c.p < c.end && *c.p != '\n') {
                *msg = xasprintf("invalid line for \"%s\": expected KEY=VALUE", key);
                *line = kline;
                return -EINVAL;
            }
            const json_t *v = json_object_get(lookup, key);
            if (json_is_string(v))
                json_object_set_new(out, key, json_string(json_string_value(v)));
            continue;
        }
        c.p++; /* '=' */
        skip_blank(&c);
        _cleanup_buf_ hypr_buf val = {0};
        buf_puts(&val, "");
        if (c.p < c.end && (*c.p == '\'' || *c.p == '"')) {
            char q = *c.p++;
            bool closed = false;
            while (c.p < c.end) {
                char ch = *c.p++;
                if (ch == q) {
                    closed = true;
                    break;
                }
                if (ch == '\n')
                    c.line++;
                if (q == '"' && ch == '\\' && c.p < c.end) {
                    char e = *c.p++;
                    const char *rep = e == 'n' ? "\n" : e == 't' ? "\t" : e == 'r' ? "\r" : NULL;
                    if (rep) {
                        buf_puts(&val, rep);
                    } else if (e == '$') {
                        buf_puts(&val, "$$");
                    } else {
                        if (e != '"' && e != '\\')
                            buf_append(&val, "\\", 1);
                        buf_append(&val, &e, 1);
                    }
                    continue;
                }
                if (q == '\'' && ch == '$')
                    buf_puts(&val, "$");
                buf_append(&val, &ch, 1);
            }
            if (!closed) {
                *msg = xasprintf("unterminated quoted value for \"%s\"", key);
                *line = kline;
                return -EINVAL;
            }
            /* A single-quoted value is literal: its '$' were doubled above. */
            skip_blank(&c);
            if (c.p < c.end && *c.p == '#')
                while (c.p < c.end && *c.p != '\n')
                    c.p++;
        } else {
            const char *v = c.p;
            while (c.p < c.end && *c.p != '\n') {
                if (*c.p == '#' && c.p > v && (c.p[-1] == ' ' || c.p[-1] == '\t'))
                    break;
                c.p++;
            }
            const char *ve = c.p;
            while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t' || ve[-1] == '\r'))
                ve--;
            buf_append(&val, v, (size_t)(ve - v));
            while (c.p < c.end && *c.p != '\n')
                c.p++;
        }
        if (memchr(val.data, '\0', val.len)) {
            *msg = xasprintf("value of \"%s\" contains a NUL byte", key);
            *line = kline;
            return -EINVAL;
        }
        _cleanup_free_ char *res = NULL;
        if (expand_value(val.data, lookup, out, &res, msg) < 0) {
            *line = kline;
            return -EINVAL;
        }
        json_object_set_new(out, key, json_string(res));
    }
    return 0;
}

int cz_dotenv_load(const char *path, const json_t *lookup, json_t *out, hypr_error *err)
{
    _cleanup_free_ char *data = NULL;
    size_t len = 0;
    int r = read_file(path, COMPOSE_FILE_MAX, &data, &len);
    if (r == -ENOENT)
        return r;
    if (r < 0)
        return hypr_err(err, HYPR_INVALID_ARGUMENT, -r, "read %s: %s", path, strerror(-r));
    _cleanup_free_ char *msg = NULL;
    int line = 0;
    if (cz_dotenv_parse(data, len, lookup, out, &msg, &line) < 0)
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL, "%s:%d: %s", path, line, msg);
    return 0;
}
