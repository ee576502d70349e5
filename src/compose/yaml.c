/* YAML in and out: libfyaml parses (anchors, aliases and << merge keys resolved),
 * the document becomes a jansson tree with interpolated scalars, and the model is
 * written back as block YAML for `compose config`. */
#include "compose/compose_internal.h"

#include <ctype.h>
#include <libfyaml.h>
#include <math.h>
#include <string.h>

/* Aliases can multiply a small file into a huge tree ("billion laughs"). */
#define CZ_MAX_NODES 1000000

DEFINE_CLEANUP_FUNC(struct fy_document, fy_document_destroy)
DEFINE_CLEANUP_FUNC(struct fy_diag, fy_diag_unref)

static void record(cz_ctx *c, const json_t *node, const char *file, int line, const char *raw)
{
    if (c->nsrcs == c->capsrcs) {
        c->capsrcs = c->capsrcs ? c->capsrcs * 2 : 256;
        c->srcs = xrealloc(c->srcs, c->capsrcs * sizeof(*c->srcs));
    }
    c->srcs[c->nsrcs++] = (cz_src){node, file, line, raw ? xstrdup(raw) : NULL};
}

/* YAML 1.2 core schema for a plain scalar. */
static json_t *plain_scalar(const char *s, size_t n, bool *numeric)
{
    *numeric = false;
    _cleanup_free_ char *t = xstrndup(s, n);
    if (!n || !strcmp(t, "~") || !strcmp(t, "null") || !strcmp(t, "Null") || !strcmp(t, "NULL"))
        return json_null();
    if (!strcmp(t, "true") || !strcmp(t, "True") || !strcmp(t, "TRUE"))
        return json_true();
    if (!strcmp(t, "false") || !strcmp(t, "False") || !strcmp(t, "FALSE"))
        return json_false();
    const char *d = t;
    int base = 10;
    if (!strncmp(t, "0o", 2) && n > 2)
        base = 8, d = t + 2;
    else if (!strncmp(t, "0x", 2) && n > 2)
        base = 16, d = t + 2;
    bool ok = *d != '\0';
    for (const char *p = d; *p && ok; p++)
        ok = base == 16  ? isxdigit((unsigned char)*p)
             : base == 8 ? (*p >= '0' && *p <= '7')
                         : (isdigit((unsigned char)*p) ||
                            (p == d && (*p == '-' || *p == '+') && p[1] != '\0'));
    if (ok) {
        errno = 0;
        char *end;
        long long v = strtoll(d, &end, base);
        if (!errno && !*end) {
            *numeric = true;
            return json_integer(v);
        }
        return json_stringn(s, n);
    }
    /* float: [-+]? ( . [0-9]+ | [0-9]+ ( . [0-9]* )? ) ( [eE] [-+]? [0-9]+ )? */
    const char *p = t;
    if (*p == '-' || *p == '+')
        p++;
    size_t digits = 0;
    while (isdigit((unsigned char)*p))
        p++, digits++;
    if (*p == '.') {
        p++;
        while (isdigit((unsigned char)*p))
            p++, digits++;
    }
    if (digits && (*p == 'e' || *p == 'E')) {
        p++;
        if (*p == '-' || *p == '+')
            p++;
        size_t ed = 0;
        while (isdigit((unsigned char)*p))
            p++, ed++;
        if (!ed)
            digits = 0;
    }
    if (digits && !*p) {
        double v = strtod(t, NULL);
        if (isfinite(v)) {
            *numeric = true;
            return json_real(v);
        }
    }
    return json_stringn(s, n);
}

/* A tagged plain scalar (!!str 80) is taken as a string. The tag's text is not
 * read: libfyaml 0.7.12 reads past the buffer on some malformed tags. */
static bool tagged(struct fy_node *n)
{
    return fy_node_get_tag_token(n) != NULL;
}

static int convert(cz_ctx *c, struct fy_node *n, const char *file, const char *path, json_t **out);

/* libfyaml 0.7 has marks on tokens only: a collection's line is its first entry's. */
static int node_line(struct fy_node *n, int depth)
{
    if (!n || depth > 64)
        return 0;
    void *it = NULL;
    switch (fy_node_get_type(n)) {
    case FYNT_SCALAR: {
        struct fy_token *t = fy_node_get_scalar_token(n);
        const struct fy_mark *m = t ? fy_token_start_mark(t) : NULL;
        return m ? m->line + 1 : 0;
    }
    case FYNT_SEQUENCE:
        return node_line(fy_node_sequence_iterate(n, &it), depth + 1);
    case FYNT_MAPPING: {
        struct fy_node_pair *p = fy_node_mapping_iterate(n, &it);
        return p ? node_line(fy_node_pair_key(p), depth + 1) : 0;
    }
    }
    return 0;
}

/* A single-quoted scalar with '' escapes or line breaks, decoded here from its
 * source: libfyaml 0.7.12 leaks the text it builds for some of them. NULL for any
 * other scalar (libfyaml's text is used). */
static char *single_quoted(const cz_ctx *c, struct fy_node *n, size_t *len)
{
    struct fy_token *t =
        fy_node_get_style(n) == FYNS_SINGLE_QUOTED ? fy_node_get_scalar_token(n) : NULL;
    const struct fy_mark *a = t ? fy_token_start_mark(t) : NULL,
                         *b = t ? fy_token_end_mark(t) : NULL;
    if (!a || !b || b->input_pos > c->text_len || a->input_pos + 2 > b->input_pos)
        return NULL;
    const char *r = c->text + a->input_pos + 1, *end = c->text + b->input_pos - 1;
    if (r[-1] != '\'' || *end != '\'')
        return NULL;
    size_t n_ = (size_t)(end - r);
    if (!memmem(r, n_, "''", 2) && !memchr(r, '\n', n_))
        return NULL;
    hypr_buf o = {0};
    buf_puts(&o, "");
    for (const char *p = r; p < end;) {
        if (p[0] == '\'' && p + 1 < end && p[1] == '\'') {
            buf_append(&o, "'", 1);
            p += 2;
        } else if (*p == '\n' || *p == '\r') {
            /* line folding: trailing and leading blanks go, one break is a space,
             * each further (empty) line a newline */
            while (o.len && (o.data[o.len - 1] == ' ' || o.data[o.len - 1] == '\t'))
                o.data[--o.len] = '\0';
            size_t breaks = 0;
            while (p < end && (*p == '\n' || *p == '\r' || *p == ' ' || *p == '\t')) {
                breaks += *p == '\n';
                p++;
            }
            if (breaks <= 1)
                buf_append(&o, " ", 1);
            for (size_t i = 1; i < breaks; i++)
                buf_append(&o, "\n", 1);
        } else {
            buf_append(&o, p++, 1);
        }
    }
    *len = o.len;
    return buf_steal(&o);
}

static int convert_scalar(cz_ctx *c, struct fy_node *n, const char *file, const char *path,
                          int line, json_t **out)
{
    size_t len = 0;
    _cleanup_free_ char *decoded = single_quoted(c, n, &len);
    const char *s = decoded ? decoded : fy_node_get_scalar(n, &len);
    if (!s)
        s = "", len = 0;
    bool plain = fy_node_get_style(n) == FYNS_PLAIN && !tagged(n);
    if (memchr(s, '\0', len))
        return cz_errf(c, NULL, path, "%s:%d: NUL character in a value", file, line);
    if (memchr(s, '$', len)) {
        _cleanup_free_ char *text = xstrndup(s, len), *res = NULL, *msg = NULL;
        if (cz_interpolate(text, c->env, &res, &msg) < 0) {
            int r = hypr_err(c->err, HYPR_INVALID_ARGUMENT, EINVAL, "%s:%d: %s: %s", file, line,
                             str_empty(path) ? "(root)" : path, msg);
            return r;
        }
        *out = json_string(res);
        if (!*out)
            return hypr_err(c->err, HYPR_INVALID_ARGUMENT, EINVAL,
                            "%s:%d: %s: value is not valid UTF-8", file, line, path);
        record(c, *out, file, line, NULL);
        return 0;
    }
    bool numeric = false;
    *out = plain ? plain_scalar(s, len, &numeric) : json_stringn(s, len);
    if (!*out)
        return hypr_err(c->err, HYPR_INVALID_ARGUMENT, EINVAL,
                        "%s:%d: %s: value is not valid UTF-8", file, line, path);
    if (!json_is_null(*out) && !json_is_boolean(*out)) {
        _cleanup_free_ char *raw = numeric ? xstrndup(s, len) : NULL;
        record(c, *out, file, line, raw);
    }
    return 0;
}

/* libfyaml 0.7.12 leaks the text it builds for a key with escapes ('' or \\) or line
 * folding; compose keys never need either, so such keys are refused, judged from
 * their source text, before their text is asked for. */
static bool key_needs_processing(const cz_ctx *c, struct fy_node *k)
{
    struct fy_token *t =
        k && fy_node_get_type(k) == FYNT_SCALAR ? fy_node_get_scalar_token(k) : NULL;
    const struct fy_mark *a = t ? fy_token_start_mark(t) : NULL,
                         *b = t ? fy_token_end_mark(t) : NULL;
    if (!a || !b || b->input_pos > c->text_len || a->input_pos > b->input_pos)
        return false;
    const char *s = c->text + a->input_pos;
    size_t n = b->input_pos - a->input_pos;
    enum fy_node_style st = fy_node_get_style(k);
    if (memchr(s, '\n', n) || memchr(s, '\r', n))
        return true;
    if (st == FYNS_DOUBLE_QUOTED && memchr(s, '\\', n))
        return true;
    return st == FYNS_SINGLE_QUOTED && n > 2 && memmem(s + 1, n - 2, "''", 2);
}

static int convert(cz_ctx *c, struct fy_node *n, const char *file, const char *path, json_t **out)
{
    *out = NULL;
    if (++c->nodes > CZ_MAX_NODES)
        return hypr_err(c->err, HYPR_INVALID_ARGUMENT, E2BIG,
                        "%s: document too large (more than %d nodes once aliases are expanded)",
                        file, CZ_MAX_NODES);
    if (!n) {
        *out = json_null();
        return 0;
    }
    int line = node_line(n, 0);
    switch (fy_node_get_type(n)) {
    case FYNT_SCALAR:
        return convert_scalar(c, n, file, path, line, out);
    case FYNT_SEQUENCE: {
        _cleanup_json_ json_t *a = json_array();
        void *it = NULL;
        size_t i = 0;
        for (struct fy_node *e; (e = fy_node_sequence_iterate(n, &it)); i++) {
            _cleanup_free_ char *p = xasprintf("%s[%zu]", path, i);
            json_t *v;
            if (convert(c, e, file, p, &v) < 0)
                return -EINVAL;
            json_array_append_new(a, v);
        }
        record(c, a, file, line, NULL);
        *out = TAKE_PTR(a);
        return 0;
    }
    case FYNT_MAPPING: {
        _cleanup_json_ json_t *o = json_object();
        void *it = NULL;
        for (struct fy_node_pair *pr; (pr = fy_node_mapping_iterate(n, &it));) {
            struct fy_node *k = fy_node_pair_key(pr);
            if (key_needs_processing(c, k))
                return hypr_err(c->err, HYPR_INVALID_ARGUMENT, EINVAL,
                                "%s:%d: %s: mapping keys with escapes or line breaks are not "
                                "supported",
                                file, node_line(k, 0), str_empty(path) ? "(root)" : path);
            size_t kl = 0;
            const char *ks =
                k && fy_node_get_type(k) == FYNT_SCALAR ? fy_node_get_scalar(k, &kl) : NULL;
            if (!ks || memchr(ks, '\0', kl))
                return hypr_err(c->err, HYPR_INVALID_ARGUMENT, EINVAL,
                                "%s:%d: %s: mapping keys must be strings", file, line,
                                str_empty(path) ? "(root)" : path);
            for (size_t i = 0; i < kl; i++)
                if ((unsigned char)ks[i] < 0x20 || ks[i] == 0x7f)
                    return hypr_err(c->err, HYPR_INVALID_ARGUMENT, EINVAL,
                                    "%s:%d: %s: control character in a mapping key", file,
                                    node_line(k, 0), str_empty(path) ? "(root)" : path);
            if (memchr(ks, '\'', kl) && (memchr(ks, '"', kl) || memchr(ks, '\\', kl)))
                return hypr_err(c->err, HYPR_INVALID_ARGUMENT, EINVAL,
                                "%s:%d: %s: a mapping key with both ' and \" or \\", file,
                                node_line(k, 0), str_empty(path) ? "(root)" : path);
            _cleanup_free_ char *key = xstrndup(ks, kl);
            _cleanup_free_ char *p = str_empty(path) ? xstrdup(key) : xasprintf("%s.%s", path, key);
            json_t *v;
            if (convert(c, fy_node_pair_value(pr), file, p, &v) < 0)
                return -EINVAL;
            if (json_object_set_new(o, key, v) < 0)
                return hypr_err(c->err, HYPR_INVALID_ARGUMENT, EINVAL,
                                "%s:%d: %s: key is not valid UTF-8", file, line, p);
        }
        record(c, o, file, line, NULL);
        *out = TAKE_PTR(o);
        return 0;
    }
    }
    return hypr_err(c->err, HYPR_INVALID_ARGUMENT, EINVAL, "%s:%d: unsupported YAML node", file,
                    line);
}

/* libfyaml's collected errors leak their tokens (0.7.12): its text output is
 * captured instead, the first line of it kept ("3:5: error: ..."). */
static void capture_diag(struct fy_diag *diag, void *user, const char *buf, size_t len)
{
    hypr_buf *b = user;
    if (!b->len)
        buf_append(b, buf, len);
}

static struct fy_document *parse(cz_ctx *c, const char *data, size_t len, const char *file,
                                 bool report)
{
    _cleanup_buf_ hypr_buf out = {0};
    struct fy_diag_cfg dcfg;
    fy_diag_cfg_default(&dcfg);
    dcfg.fp = NULL;
    dcfg.output_fn = capture_diag;
    dcfg.user = &out;
    dcfg.colorize = false;
    dcfg.show_source = false;
    dcfg.show_position = true;
    dcfg.show_type = false;
    dcfg.show_module = false;
    dcfg.position_width = 0;
    _cleanup_(fy_diag_unrefp) struct fy_diag *diag = fy_diag_create(&dcfg);
    struct fy_parse_cfg cfg = {
        .flags = FYPCF_RESOLVE_DOCUMENT | FYPCF_DEFAULT_VERSION_1_2 | FYPCF_JSON_NONE,
        .diag = diag,
    };
    struct fy_document *fyd = fy_document_build_from_string(&cfg, data, len);
    if (fyd) {
        struct fy_diag *dd = fy_document_get_diag(fyd);
        bool bad = dd && fy_diag_got_error(dd);
        if (dd)
            fy_diag_unref(dd);
        if (!bad)
            return fyd;
        fy_document_destroy(fyd);
    }
    if (report) {
        /* "<memory-@...>:<line>:<column>: error: <message>" */
        int line = 0;
        const char *msg = out.len ? out.data : "invalid YAML";
        const char *pos = msg[0] == '<' && strstr(msg, ">:") ? strstr(msg, ">:") + 2 : msg;
        char *end;
        long l = strtol(pos, &end, 10);
        if (end != pos && *end == ':') {
            line = (int)l;
            strtol(end + 1, &end, 10);
            msg = *end == ':' ? end + 1 : end;
            while (*msg == ' ')
                msg++;
            if (str_startswith(msg, "error: "))
                msg += 7;
        }
        _cleanup_free_ char *m = xstrdup(msg);
        m[strcspn(m, "\n")] = '\0';
        hypr_err(c->err, HYPR_INVALID_ARGUMENT, EINVAL, "%s:%d: %s", file, line, m);
    }
    return NULL;
}

/* The offset of the first byte that is not well-formed UTF-8, or len. Checked before
 * libfyaml sees the text: a compose file is UTF-8, and libfyaml 0.7.12 leaks on some
 * malformed sequences. */
static size_t utf8_invalid_at(const char *data, size_t len)
{
    const unsigned char *s = (const unsigned char *)data;
    for (size_t i = 0; i < len;) {
        unsigned char b = s[i];
        size_t n;
        if (b < 0x80) {
            i++;
            continue;
        }
        if ((b & 0xe0) == 0xc0 && b >= 0xc2)
            n = 1;
        else if ((b & 0xf0) == 0xe0)
            n = 2;
        else if ((b & 0xf8) == 0xf0 && b <= 0xf4)
            n = 3;
        else
            return i;
        if (i + n >= len)
            return i;
        for (size_t k = 1; k <= n; k++)
            if ((s[i + k] & 0xc0) != 0x80)
                return i;
        i += n + 1;
    }
    return len;
}

int cz_yaml_load(cz_ctx *c, const char *data, size_t len, const char *file, json_t **out)
{
    *out = NULL;
    if (len == 0 || !data)
        return hypr_err(c->err, HYPR_INVALID_ARGUMENT, EINVAL, "%s: empty compose file", file);
    /* libfyaml 0.7.12 can loop forever scanning a malformed directive; compose files
     * have no use for %YAML / %TAG, so a line starting with '%' is refused. */
    for (size_t i = 0; i < len; i++)
        if (data[i] == '%' && (i == 0 || data[i - 1] == '\n')) {
            int line = 1;
            for (size_t j = 0; j < i; j++)
                line += data[j] == '\n';
            return hypr_err(c->err, HYPR_INVALID_ARGUMENT, EINVAL,
                            "%s:%d: YAML directives (%%YAML, %%TAG) are not supported", file, line);
        }
    size_t bad = utf8_invalid_at(data, len);
    if (bad < len) {
        int line = 1;
        for (size_t j = 0; j < bad; j++)
            line += data[j] == '\n';
        return hypr_err(c->err, HYPR_INVALID_ARGUMENT, EILSEQ, "%s:%d: not valid UTF-8", file,
                        line);
    }
    _cleanup_(fy_document_destroyp) struct fy_document *fyd = parse(c, data, len, file, true);
    if (!fyd)
        return -EINVAL;
    c->text = data;
    c->text_len = len;
    struct fy_node *root = fy_document_root(fyd);
    if (!root || fy_node_get_type(root) != FYNT_MAPPING)
        return hypr_err(c->err, HYPR_INVALID_ARGUMENT, EINVAL,
                        "%s:1: the top level must be a mapping", file);
    json_t *v;
    if (convert(c, root, file, "", &v) < 0)
        return -EINVAL;
    json_array_append_new(c->keep, v); /* held by keep; *out is borrowed */
    *out = v;
    return 0;
}

char *cz_yaml_peek_name(cz_ctx *c, const char *data, size_t len)
{
    if (!data || !len || data[0] == '%' || memmem(data, len, "\n%", 2))
        return NULL;
    _cleanup_(fy_document_destroyp) struct fy_document *fyd = parse(c, data, len, "", false);
    struct fy_node *root = fyd ? fy_document_root(fyd) : NULL;
    if (!root || fy_node_get_type(root) != FYNT_MAPPING)
        return NULL;
    struct fy_node *n = fy_node_mapping_lookup_by_string(root, "name", 4);
    size_t l = 0;
    const char *s = n && fy_node_get_type(n) == FYNT_SCALAR ? fy_node_get_scalar(n, &l) : NULL;
    if (!s || memchr(s, '\0', l))
        return NULL;
    _cleanup_free_ char *raw = xstrndup(s, l), *res = NULL, *msg = NULL;
    if (cz_interpolate(raw, c->env, &res, &msg) < 0)
        return NULL;
    return TAKE_PTR(res);
}

/* ---- emitter ---------------------------------------------------------------------- */

/* Plain when YAML reads it back as the same string. */
static bool needs_quotes(const char *s)
{
    if (!*s)
        return true;
    bool numeric;
    json_t *v = plain_scalar(s, strlen(s), &numeric);
    bool str = json_is_string(v);
    json_decref(v);
    if (!str)
        return true;
    if (strchr("-?:,[]{}#&*!|>'\"%@`~ ", s[0]) || s[strlen(s) - 1] == ' ' ||
        s[strlen(s) - 1] == ':')
        return true;
    for (const char *p = s; *p; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return true;
        if ((*p == ':' && (p[1] == ' ' || !p[1])) || (*p == ' ' && p[1] == '#'))
            return true;
        if (strchr("{}[],", *p))
            return true;
    }
    return false;
}

/* The output is a compose file again: a literal '$' is written "$$" so loading it
 * does not interpolate twice. */
static void emit_text(hypr_buf *b, const char *s, bool value)
{
    _cleanup_buf_ hypr_buf esc = {0};
    if (value && strchr(s, '$')) {
        for (const char *p = s; *p; p++)
            buf_append(&esc, *p == '$' ? "$$" : p, *p == '$' ? 2 : 1);
        s = esc.data;
    }
    if (!needs_quotes(s)) {
        buf_puts(b, s);
        return;
    }
    /* Keys are read back without escapes (see key_needs_processing): single quotes
     * when double ones would need any. The loader refuses keys that fit neither. */
    if (!value && strpbrk(s, "\"\\") && !strchr(s, '\'')) {
        buf_printf(b, "'%s'", s);
        return;
    }
    buf_puts(b, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            buf_printf(b, "\\%c", *p);
        else if (*p == '\n')
            buf_puts(b, "\\n");
        else if (*p == '\t')
            buf_puts(b, "\\t");
        else if (*p < 0x20 || *p == 0x7f)
            buf_printf(b, "\\x%02x", *p);
        else
            buf_append(b, p, 1);
    }
    buf_puts(b, "\"");
}

/* The shortest text that reads back as the same double, and as a float: "4.0". */
static void emit_real(hypr_buf *b, double d)
{
    char t[40];
    snprintf(t, sizeof(t), "%.15g", d);
    if (strtod(t, NULL) != d)
        snprintf(t, sizeof(t), "%.17g", d);
    buf_puts(b, t);
    if (!strpbrk(t, ".eEn"))
        buf_puts(b, ".0");
}

static void emit_scalar(hypr_buf *b, const json_t *v)
{
    if (json_is_string(v))
        emit_text(b, json_string_value(v), true);
    else if (json_is_integer(v))
        buf_printf(b, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    else if (json_is_real(v))
        emit_real(b, json_real_value(v));
    else if (json_is_true(v))
        buf_puts(b, "true");
    else if (json_is_false(v))
        buf_puts(b, "false");
    else
        buf_puts(b, "null");
}

static bool empty_container(const json_t *v)
{
    return (json_is_object(v) && !json_object_size(v)) || (json_is_array(v) && !json_array_size(v));
}

static void emit_node(hypr_buf *b, const json_t *v, int indent);

static void emit_value_after_key(hypr_buf *b, const json_t *v, int indent)
{
    if (empty_container(v)) {
        buf_puts(b, json_is_object(v) ? " {}\n" : " []\n");
    } else if (json_is_object(v) || json_is_array(v)) {
        buf_puts(b, "\n");
        emit_node(b, v, indent + 2);
    } else {
        buf_puts(b, " ");
        emit_scalar(b, v);
        buf_puts(b, "\n");
    }
}

static int cmp_keys(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void emit_node(hypr_buf *b, const json_t *v, int indent)
{
    if (json_is_object(v)) {
        size_t n = json_object_size(v), i = 0;
        const char **keys = xcalloc(n ? n : 1, sizeof(*keys));
        const char *k;
        json_t *x;
        json_object_foreach((json_t *)v, k, x) keys[i++] = k;
        qsort(keys, n, sizeof(*keys), cmp_keys);
        for (i = 0; i < n; i++) {
            buf_printf(b, "%*s", indent, "");
            emit_text(b, keys[i], false);
            buf_puts(b, ":");
            emit_value_after_key(b, json_object_get(v, keys[i]), indent);
        }
        free(keys);
    } else if (json_is_array(v)) {
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x)
        {
            buf_printf(b, "%*s-", indent, "");
            if (json_is_object(x) && json_object_size(x)) {
                /* "- key: value" with the other keys aligned under the first */
                _cleanup_buf_ hypr_buf inner = {0};
                emit_node(&inner, x, indent + 2);
                buf_puts(b, " ");
                buf_puts(b, inner.data + indent + 2);
            } else if (json_is_array(x) && json_array_size(x)) {
                buf_puts(b, "\n");
                emit_node(b, x, indent + 2);
            } else if (empty_container(x)) {
                buf_puts(b, json_is_object(x) ? " {}\n" : " []\n");
            } else {
                buf_puts(b, " ");
                emit_scalar(b, x);
                buf_puts(b, "\n");
            }
        }
    } else {
        buf_printf(b, "%*s", indent, "");
        emit_scalar(b, v);
        buf_puts(b, "\n");
    }
}

char *cz_emit_yaml(const json_t *v)
{
    hypr_buf b = {0};
    buf_puts(&b, "");
    emit_node(&b, v, 0);
    return buf_steal(&b);
}
