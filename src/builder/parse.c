/* The Dockerfile parser, following BuildKit's frontend/dockerfile/parser:
 * parser.go's line loop (directives, continuations, comments, heredoc bodies)
 * and line_parsers.go's per-instruction argument rules. FORMAT.md in the
 * BuildKit corpus states the rules this reproduces. */
#include "builder/internal.h"

#include <ctype.h>
#include <string.h>

#include "common/json_cleanup.h"

/* ---- freeing ------------------------------------------------------------------------ */

static void instr_clear(builder_instr *in)
{
    free(in->cmd);
    free(in->original);
    builder_strv_clear(&in->flags);
    builder_strv_clear(&in->args);
    if (in->inner) {
        instr_clear(in->inner);
        free(in->inner);
    }
    builder_heredocs_free(in->heredocs, in->n_heredocs);
    *in = (builder_instr){0};
}

void builder_dockerfile_free(builder_dockerfile *df)
{
    if (!df)
        return;
    for (size_t i = 0; i < df->n_instrs; i++)
        instr_clear(&df->instrs[i]);
    free(df->instrs);
    free(df->filename);
    free(df->syntax);
    free(df->escape);
    free(df->check);
    free(df);
}

/* ---- argument parsers (line_parsers.go) ------------------------------------------- */

/* parseJSON: 1 = exec form (args filled), 0 = not JSON, <0 = a JSON array holding a
 * non-string (an error: BuildKit refuses it rather than falling back). */
static int parse_json(const char *rest, builder_strv *args)
{
    while (builder_is_space((unsigned char)*rest))
        rest++;
    if (*rest != '[')
        return 0;
    /* Go's decoder takes invalid UTF-8 (as U+FFFD); jansson refuses it. */
    _cleanup_buf_ hypr_buf valid = {0};
    builder_utf8_sanitize(rest, strlen(rest), &valid);
    json_error_t jerr;
    _cleanup_json_ json_t *a = json_loads(valid.data, JSON_ALLOW_NUL, &jerr);
    if (!a || !json_is_array(a))
        return 0;
    size_t i;
    json_t *e;
    json_array_foreach(a, i, e) if (!json_is_string(e)) return -EINVAL;
    json_array_foreach(a, i, e) strv_push(args, json_string_value(e), json_string_length(e));
    return 1;
}

static void split_blanks(const char *rest, builder_strv *args)
{
    const char *p = rest;
    while (*p) {
        while (builder_is_blank((unsigned char)*p))
            p++;
        if (!*p)
            break;
        const char *start = p;
        while (*p && !builder_is_blank((unsigned char)*p))
            p++;
        strv_push(args, start, (size_t)(p - start));
    }
}

static const char not_string_array[] = "dockerfile parse error: can't use a non-string value in "
                                       "the JSON (exec) form of an instruction";

/* parseMaybeJSON (RUN, CMD, ENTRYPOINT, SHELL): JSON array or the whole text. */
static int parse_maybe_json(const char *rest, builder_instr *in, char **msg)
{
    if (!*rest)
        return 0;
    int r = parse_json(rest, &in->args);
    if (r < 0) {
        *msg = xstrdup(not_string_array);
        return r;
    }
    if (r > 0)
        in->json = true;
    else
        strv_push_str(&in->args, rest);
    return 0;
}

/* parseMaybeJSONToList (ADD, COPY, VOLUME): JSON array or the blank-separated words. */
static int parse_maybe_json_list(const char *rest, builder_instr *in, char **msg)
{
    int r = parse_json(rest, &in->args);
    if (r < 0) {
        *msg = xstrdup(not_string_array);
        return r;
    }
    if (r > 0)
        in->json = true;
    else
        split_blanks(rest, &in->args);
    return 0;
}

static int parse_string(const char *rest, builder_instr *in, char **msg)
{
    if (*rest)
        strv_push_str(&in->args, rest);
    return 0;
}

static int parse_blank_delimited(const char *rest, builder_instr *in, char **msg)
{
    split_blanks(rest, &in->args);
    return 0;
}

/* parseNameVal (ENV, LABEL): "KEY VALUE" (legacy) or KEY=VALUE words. */
static int parse_name_val(const char *rest, builder_instr *in, char escape, const char *key,
                          char **msg)
{
    builder_strv words = {0};
    builder_parse_words(rest, escape, &words);
    int r = 0;
    if (words.n == 0)
        goto out;
    if (!strchr(words.v[0], '=')) {
        const char *p = rest;
        while (*p && !builder_is_blank((unsigned char)*p))
            p++;
        const char *v = p;
        while (builder_is_blank((unsigned char)*v))
            v++;
        if (!*v) {
            *msg = xasprintf("%s must have two arguments", key);
            r = -EINVAL;
            goto out;
        }
        strv_push(&in->args, rest, (size_t)(p - rest));
        strv_push_str(&in->args, v);
        in->legacy_kv = true;
        goto out;
    }
    for (size_t i = 0; i < words.n; i++) {
        const char *eq = strchr(words.v[i], '=');
        if (!eq) {
            *msg = xasprintf("Syntax error - can't find = in \"%s\". Must be of the form: "
                             "name=value",
                             words.v[i]);
            r = -EINVAL;
            goto out;
        }
        strv_push(&in->args, words.v[i], (size_t)(eq - words.v[i]));
        strv_push_str(&in->args, eq + 1);
    }
out:
    builder_strv_clear(&words);
    return r;
}

/* parseHealthConfig: TYPE, then the RUN rule for the remainder. */
static int parse_health(const char *rest, builder_instr *in, char **msg)
{
    size_t sep = 0;
    while (rest[sep] && !builder_is_space((unsigned char)rest[sep]))
        sep++;
    if (sep == 0)
        return 0;
    size_t next = sep;
    while (rest[next] && builder_is_space((unsigned char)rest[next]))
        next++;
    strv_push(&in->args, rest, sep);
    return parse_maybe_json(rest + next, in, msg);
}

/* ---- instructions ---------------------------------------------------------------------- */

typedef enum {
    P_MAYBE_JSON,
    P_MAYBE_JSON_LIST,
    P_STRING,
    P_BLANKS,
    P_NAME_OR_NAME_VAL,
    P_ENV,
    P_LABEL,
    P_HEALTH,
    P_ONBUILD,
} parser_kind;

static const struct {
    const char *name;
    parser_kind kind;
} dispatch[] = {
    {"add", P_MAYBE_JSON_LIST},    {"arg", P_NAME_OR_NAME_VAL},
    {"cmd", P_MAYBE_JSON},         {"copy", P_MAYBE_JSON_LIST},
    {"entrypoint", P_MAYBE_JSON},  {"env", P_ENV},
    {"expose", P_BLANKS},          {"from", P_BLANKS},
    {"healthcheck", P_HEALTH},     {"label", P_LABEL},
    {"maintainer", P_STRING},      {"onbuild", P_ONBUILD},
    {"run", P_MAYBE_JSON},         {"shell", P_MAYBE_JSON},
    {"stopsignal", P_STRING},      {"user", P_STRING},
    {"volume", P_MAYBE_JSON_LIST}, {"workdir", P_STRING},
};

static int dispatch_kind(const char *cmd)
{
    for (size_t i = 0; i < ARRAY_SIZE(dispatch); i++)
        if (!strcmp(dispatch[i].name, cmd))
            return (int)dispatch[i].kind;
    return -1;
}

/* newNodeFromLine: the keyword, flags and arguments of one joined line. *msg gets
 * the reason of a failure (the caller adds the location). */
static int instr_from_line(const char *line, char escape, int depth, builder_instr *in, char **msg)
{
    _cleanup_free_ char *trimmed = builder_trim_dup(line, strlen(line));
    size_t kw = 0;
    while (trimmed[kw] && !builder_is_blank((unsigned char)trimmed[kw]))
        kw++;
    in->cmd = xstrndup(trimmed, kw);
    for (char *c = in->cmd; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    in->original = xstrdup(line);
    _cleanup_free_ char *rest = NULL;
    if (trimmed[kw]) {
        const char *r;
        builder_extract_flags(trimmed + kw, escape, &in->flags, &r);
        rest = builder_trim_dup(r, strlen(r));
    } else {
        rest = xstrdup("");
    }
    if (!*in->cmd) {
        *msg = xstrdup("a line continuation with no instruction");
        return -EINVAL;
    }
    switch (dispatch_kind(in->cmd)) {
    case P_MAYBE_JSON:
        return parse_maybe_json(rest, in, msg);
    case P_MAYBE_JSON_LIST:
        return parse_maybe_json_list(rest, in, msg);
    case P_STRING:
        return parse_string(rest, in, msg);
    case P_BLANKS:
        return parse_blank_delimited(rest, in, msg);
    case P_NAME_OR_NAME_VAL:
        builder_parse_words(rest, escape, &in->args);
        return 0;
    case P_ENV:
        return parse_name_val(rest, in, escape, "ENV", msg);
    case P_LABEL:
        return parse_name_val(rest, in, escape, "LABEL", msg);
    case P_HEALTH:
        return parse_health(rest, in, msg);
    case P_ONBUILD:
        if (!*rest)
            return 0;
        if (depth > 0) {
            *msg = xstrdup("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed");
            return -EINVAL;
        }
        strv_push_str(&in->args, rest);
        in->inner = xcalloc(1, sizeof(*in->inner));
        return instr_from_line(rest, escape, depth + 1, in->inner, msg);
    default:
        /* Unknown: kept as BuildKit's parser keeps it (an empty argument);
         * builder_stages_build refuses it. */
        strv_push_str(&in->args, "");
        return 0;
    }
}

static bool can_contain_heredoc(const builder_instr *in)
{
    if (!strcmp(in->cmd, "onbuild") && in->inner)
        in = in->inner;
    if (strcmp(in->cmd, "run") && strcmp(in->cmd, "copy") && strcmp(in->cmd, "add"))
        return false;
    return !in->json;
}

/* ---- lines and directives ----------------------------------------------------------------- */

typedef struct line_reader {
    const char *data;
    size_t len, pos;
    int lineno; /* lines consumed so far */
} line_reader;

/* The next line with its newline (scanLines); false at the end. */
static bool next_line(line_reader *lr, const char **s, size_t *n)
{
    if (lr->pos >= lr->len)
        return false;
    const char *start = lr->data + lr->pos;
    const char *nl = memchr(start, '\n', lr->len - lr->pos);
    *n = nl ? (size_t)(nl - start) + 1 : lr->len - lr->pos;
    *s = start;
    lr->pos += *n;
    lr->lineno++;
    return true;
}

static size_t trim_newline_len(const char *s, size_t n)
{
    while (n && (s[n - 1] == '\r' || s[n - 1] == '\n'))
        n--;
    return n;
}

static bool is_comment(const char *s, size_t n)
{
    n = trim_newline_len(s, n);
    size_t i = 0;
    while (i < n && builder_is_space((unsigned char)s[i]))
        i++;
    return i < n && s[i] == '#';
}

static bool is_empty_line(const char *s, size_t n)
{
    n = trim_newline_len(s, n);
    for (size_t i = 0; i < n; i++)
        if (!builder_is_space((unsigned char)s[i]))
            return false;
    return true;
}

typedef struct directive_state {
    bool done;
} directive_state;

/* possibleParserDirective: 0 when the line is not (or no longer may be) a directive
 * or was one; <0 with *msg on a repeated or invalid one. */
static int directive_line(directive_state *ds, builder_dockerfile *df, const char *s, size_t n,
                          char **msg)
{
    if (ds->done)
        return 0;
    size_t i = 0;
    if (i >= n || s[i] != '#')
        goto not_directive;
    i++;
    while (i < n && builder_is_space((unsigned char)s[i]))
        i++;
    size_t k0 = i;
    if (i >= n || !isalpha((unsigned char)s[i]))
        goto not_directive;
    while (i < n && isalnum((unsigned char)s[i]))
        i++;
    size_t k1 = i;
    while (i < n && builder_is_space((unsigned char)s[i]))
        i++;
    if (i >= n || s[i] != '=')
        goto not_directive;
    i++;
    while (i < n && builder_is_space((unsigned char)s[i]))
        i++;
    size_t v1 = n;
    while (v1 > i && builder_is_space((unsigned char)s[v1 - 1]))
        v1--;
    if (v1 == i)
        goto not_directive;
    char key[16];
    if (k1 - k0 >= sizeof(key))
        goto not_directive;
    for (size_t j = k0; j < k1; j++)
        key[j - k0] = (char)tolower((unsigned char)s[j]);
    key[k1 - k0] = '\0';
    char **slot = !strcmp(key, "syntax")   ? &df->syntax
                  : !strcmp(key, "escape") ? &df->escape
                  : !strcmp(key, "check")  ? &df->check
                                           : NULL;
    if (!slot)
        goto not_directive;
    if (*slot) {
        *msg = xasprintf("only one %s parser directive can be used", key);
        return -EINVAL;
    }
    *slot = xstrndup(s + i, v1 - i);
    if (slot == &df->escape) {
        if (strcmp(df->escape, "`") && strcmp(df->escape, "\\")) {
            *msg = xasprintf("invalid escape token '%s' does not match ` or \\", df->escape);
            return -EINVAL;
        }
        df->escape_token = df->escape[0];
    }
    return 0;
not_directive:
    ds->done = true;
    return 0;
}

/* trimContinuationCharacter: whether the line ends with the escape token (not itself
 * escaped) and blanks; *n is cut before the token. */
static bool trim_continuation(const char *s, size_t *n, char esc)
{
    size_t e = *n;
    while (e && (s[e - 1] == ' ' || s[e - 1] == '\t'))
        e--;
    if (e == 0 || s[e - 1] != esc)
        return false;
    if (e >= 2 && s[e - 2] == esc)
        return false;
    *n = e - 1;
    return true;
}

typedef struct parser {
    builder_dockerfile *df;
    directive_state ds;
    line_reader lr;
    hypr_error *err;
} parser;

static int fail_at(parser *p, int line, const char *msg)
{
    return hypr_err(p->err, HYPR_INVALID_ARGUMENT, EINVAL, "%s:%d: %s", p->df->filename, line, msg);
}

/* processLine: the line without its newline (and leading blanks for a first line),
 * NULL length 0 for a comment; checks it as a directive. */
static int process_line(parser *p, const char *s, size_t n, bool strip_left, const char **out,
                        size_t *out_n)
{
    n = trim_newline_len(s, n);
    if (strip_left)
        while (n && builder_is_space((unsigned char)*s))
            s++, n--;
    _cleanup_free_ char *msg = NULL;
    if (directive_line(&p->ds, p->df, s, n, &msg) < 0)
        return fail_at(p, p->lr.lineno, msg);
    if (is_comment(s, n))
        n = 0;
    *out = s;
    *out_n = n;
    return 0;
}

static int read_heredoc_bodies(parser *p, builder_instr *in, int start)
{
    for (size_t i = 0; i < in->n_heredocs; i++) {
        builder_heredoc *h = &in->heredocs[i];
        hypr_buf body = {0};
        buf_puts(&body, "");
        bool terminated = false;
        const char *s;
        size_t n;
        while (next_line(&p->lr, &s, &n)) {
            size_t tn = trim_newline_len(s, n);
            const char *t = s;
            if (h->chomp)
                while (tn && *t == '\t')
                    t++, tn--;
            if (tn == strlen(h->name) && !memcmp(t, h->name, tn)) {
                terminated = true;
                break;
            }
            buf_append(&body, s, n);
        }
        free(h->content);
        h->content = buf_steal(&body);
        if (!terminated)
            return fail_at(p, start, "unterminated heredoc");
    }
    return 0;
}

static int parse_lines(parser *p)
{
    builder_dockerfile *df = p->df;
    char esc = df->escape_token;
    const char *raw;
    size_t raw_n;
    while (next_line(&p->lr, &raw, &raw_n)) {
        if (p->lr.lineno == 1 && raw_n >= 3 && !memcmp(raw, "\xEF\xBB\xBF", 3))
            raw += 3, raw_n -= 3;
        const char *s;
        size_t n;
        int r = process_line(p, raw, raw_n, true, &s, &n);
        if (r < 0)
            return r;
        esc = df->escape_token;
        int start = p->lr.lineno;
        bool cont = trim_continuation(s, &n, esc);
        if (!cont && n == 0)
            continue;
        _cleanup_buf_ hypr_buf joined = {0};
        buf_append(&joined, s, n);
        while (cont && next_line(&p->lr, &raw, &raw_n)) {
            r = process_line(p, raw, raw_n, false, &s, &n);
            if (r < 0)
                return r;
            if (is_comment(raw, raw_n) || is_empty_line(s, n))
                continue;
            cont = trim_continuation(s, &n, esc);
            buf_append(&joined, s, n);
        }
        builder_instr in = {0};
        _cleanup_free_ char *msg = NULL;
        r = instr_from_line(joined.data, esc, 0, &in, &msg);
        if (r == 0 && can_contain_heredoc(&in) && strstr(joined.data, "<<")) {
            _cleanup_error_ hypr_error herr = HYPR_ERROR_INIT;
            r = builder_heredocs_from_line(joined.data, &in.heredocs, &in.n_heredocs, &herr);
            if (r < 0)
                msg = xstrdup(herr.message ? herr.message : "invalid heredoc");
        }
        if (r < 0) {
            instr_clear(&in);
            return fail_at(p, start, msg ? msg : "parse error");
        }
        r = read_heredoc_bodies(p, &in, start);
        if (r < 0) {
            instr_clear(&in);
            return r;
        }
        in.line = start;
        in.end_line = p->lr.lineno;
        df->instrs = xrealloc(df->instrs, (df->n_instrs + 1) * sizeof(*df->instrs));
        df->instrs[df->n_instrs++] = in;
    }
    return 0;
}

int builder_parse(const char *data, size_t len, const char *filename, builder_dockerfile **out,
                  hypr_error *err)
{
    if (!filename)
        filename = "Dockerfile";
    if (len > BUILDER_DOCKERFILE_MAX)
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EFBIG, "%s: larger than %u bytes", filename,
                        BUILDER_DOCKERFILE_MAX);
    const char *nul = memchr(data, '\0', len);
    if (nul) {
        int line = 1;
        for (const char *c = data; c < nul; c++)
            line += *c == '\n';
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL, "%s:%d: a NUL byte in the file",
                        filename, line);
    }
    _cleanup_dockerfile_ builder_dockerfile *df = xcalloc(1, sizeof(*df));
    df->filename = xstrdup(filename);
    df->escape_token = '\\';
    parser p = {.df = df, .lr = {.data = data, .len = len}, .err = err};
    int r = parse_lines(&p);
    if (r < 0)
        return r;
    if (df->n_instrs == 0)
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL, "%s:%d: file with no instructions",
                        filename, p.lr.lineno ? p.lr.lineno : 1);
    *out = TAKE_PTR(df);
    return 0;
}
