/* BuildKit's shell lexer (frontend/dockerfile/shell/lex.go): variable expansion,
 * quote and escape removal, and the word splitting of ProcessWords. Bytes, not
 * runes: multi-byte UTF-8 passes through untouched, '?' in patterns takes a
 * whole character. */
#include "builder/internal.h"

#include <string.h>

enum { SW_EOF = -1, SW_MAX_DEPTH = 200 };

typedef struct shell_words {
    hypr_buf buf;
    bool in_word;
    char **v;
    size_t n, cap; /* cap: room in v, the NULL included */
} shell_words;

typedef struct shell_lex {
    const char *s;
    size_t pos, len;
    int esc;
    bool raw_quotes, raw_escapes, skip_unset;
    char *const *env;
    char *errmsg; /* set on the first error */
    int depth;
} shell_lex;

static int sw_peek(const shell_lex *sw)
{
    return sw->pos < sw->len ? (unsigned char)sw->s[sw->pos] : SW_EOF;
}

static int sw_next(shell_lex *sw)
{
    return sw->pos < sw->len ? (unsigned char)sw->s[sw->pos++] : SW_EOF;
}

static int sw_fail(shell_lex *sw, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int sw_fail(shell_lex *sw, const char *fmt, ...)
{
    if (!sw->errmsg) {
        va_list ap;
        va_start(ap, fmt);
        sw->errmsg = xvasprintf(fmt, ap);
        va_end(ap);
    }
    return -EINVAL;
}

static void words_push(shell_words *w)
{
    if (w->n + 2 > w->cap) { /* doubling: a large expansion has many words */
        w->cap = w->cap ? w->cap * 2 : 8;
        w->v = xrealloc(w->v, w->cap * sizeof(char *));
    }
    w->v[w->n++] = xstrndup(w->buf.data ? w->buf.data : "", w->buf.len);
    w->v[w->n] = NULL;
    w->buf.len = 0;
    if (w->buf.data)
        w->buf.data[0] = '\0';
}

static void words_add_raw_char(shell_words *w, char c)
{
    buf_append(&w->buf, &c, 1);
    w->in_word = true;
}

static void words_add_char(shell_words *w, char c)
{
    if (builder_is_space((unsigned char)c)) {
        if (w->in_word && w->buf.len) {
            words_push(w);
            w->in_word = false;
        }
    } else {
        words_add_raw_char(w, c);
    }
}

static void words_add_string(shell_words *w, const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        words_add_char(w, s[i]);
}

static void words_add_raw_string(shell_words *w, const char *s, size_t len)
{
    buf_append(&w->buf, s, len);
    w->in_word = true;
}

static void words_finish(shell_words *w)
{
    if (w->buf.len)
        words_push(w);
}

static void words_free(shell_words *w)
{
    buf_free(&w->buf);
    for (size_t i = 0; i < w->n; i++)
        free(w->v[i]);
    free(w->v);
    w->v = NULL;
    w->n = w->cap = 0;
}

static const char *sw_getenv(const shell_lex *sw, const char *name, bool *set)
{
    size_t n = strlen(name);
    const char *found = NULL;
    for (char *const *e = sw->env; e && *e; e++)
        if (!strncmp(*e, name, n) && (*e)[n] == '=')
            found = *e + n + 1;
    *set = found != NULL;
    return found ? found : "";
}

/* ---- shell patterns (${V#p}, ${V%s}, ${V/p/r}) ----------------------------------- */

enum { PAT_STAR = 256, PAT_ANY = 257 };

/* convertShellPatternToRegex's reading of the pattern: '*', '?', "\*", "\?",
 * "\\" and "\}" / "\/" (the backslash dropped); any other escape is an error. */
static int pattern_compile(shell_lex *sw, const char *p, int **out, size_t *n)
{
    size_t len = strlen(p);
    int *t = xmalloc((len + 1) * sizeof(int));
    size_t k = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '*') {
            t[k++] = PAT_STAR;
        } else if (c == '?') {
            t[k++] = PAT_ANY;
        } else if (c == '\\') {
            if (i + 1 < len && (p[i + 1] == '}' || p[i + 1] == '/'))
                continue;
            if (i + 1 >= len || (p[i + 1] != '*' && p[i + 1] != '?' && p[i + 1] != '\\')) {
                free(t);
                return sw_fail(sw, "invalid pattern (%s) in substitution: invalid escape", p);
            }
            t[k++] = (unsigned char)p[++i];
        } else {
            t[k++] = c;
        }
    }
    *out = t;
    *n = k;
    return 0;
}

/* The length of the UTF-8 character starting at s, or (reversed) ending at s: '?'
 * takes a whole character. avail: the bytes there are in that direction. */
static size_t char_len(const char *s, size_t avail, bool reversed)
{
    size_t i = 1;
    if (reversed) {
        while (i < avail && i < 4 && ((unsigned char)*(s - (i - 1)) & 0xC0) == 0x80)
            i++;
    } else if ((unsigned char)s[0] >= 0xC0) {
        while (i < avail && i < 4 && ((unsigned char)s[i] & 0xC0) == 0x80)
            i++;
    }
    return i;
}

/* Runs the pattern as an NFA over s[0..len) (a state per token, '*' staying put):
 * the shortest and longest prefix it matches whole, -1 when none. O(len * nt). */
static void pattern_prefixes(const int *t, size_t nt, const char *s, size_t len, bool reversed,
                             ssize_t *shortest, ssize_t *longest)
{
    enum { RING = 5 };
    size_t w = nt + 1;
    _cleanup_free_ bool *ring = xcalloc(RING * w, sizeof(bool));
    *shortest = *longest = -1;
    ring[0] = true;
    size_t live = 1; /* states set in the ring */
    for (size_t p = 0; p <= len && live; p++) {
        bool *cur = ring + (p % RING) * w;
        for (size_t k = 0; k < nt; k++) /* closure: '*' may match nothing */
            if (cur[k] && t[k] == PAT_STAR)
                cur[k + 1] = true;
        if (cur[nt]) {
            if (*shortest < 0)
                *shortest = (ssize_t)p;
            *longest = (ssize_t)p;
        }
        if (p < len) {
            const char *at = reversed ? s + len - 1 - p : s + p;
            size_t cl = char_len(at, len - p, reversed);
            bool *next1 = ring + ((p + 1) % RING) * w, *nextc = ring + ((p + cl) % RING) * w;
            for (size_t k = 0; k < nt; k++) {
                if (!cur[k])
                    continue;
                if (t[k] == PAT_STAR)
                    nextc[k] = true;
                else if (t[k] == PAT_ANY)
                    nextc[k + 1] = true;
                else if (t[k] == (unsigned char)*at)
                    next1[k + 1] = true;
            }
        }
        memset(cur, 0, w * sizeof(bool));
        live = 0;
        for (size_t i = 0; i < RING * w; i++)
            live += ring[i];
    }
}

/* ${V#p} / ${V##p} (prefix) and ${V%s} / ${V%%s} (suffix). */
static int trim_affix(shell_lex *sw, const char *pat, const char *value, bool greedy, bool suffix,
                      hypr_buf *res)
{
    _cleanup_free_ int *t = NULL;
    size_t nt;
    if (pattern_compile(sw, pat, &t, &nt) < 0)
        return -EINVAL;
    size_t len = strlen(value);
    if (suffix) /* the pattern backwards over the value backwards */
        for (size_t i = 0; i < nt / 2; i++) {
            int tmp = t[i];
            t[i] = t[nt - 1 - i];
            t[nt - 1 - i] = tmp;
        }
    ssize_t shortest, longest;
    pattern_prefixes(t, nt, value, len, suffix, &shortest, &longest);
    ssize_t l = greedy ? longest : shortest;
    if (l < 0)
        buf_puts(res, value);
    else if (suffix)
        buf_append(res, value, len - (size_t)l);
    else
        buf_append(res, value + l, len - (size_t)l);
    return 0;
}

/* The longest match starting at value[i], or -1. */
static ssize_t match_at(const int *t, size_t nt, const char *value, size_t len, size_t i)
{
    ssize_t shortest, longest;
    pattern_prefixes(t, nt, value + i, len - i, false, &shortest, &longest);
    return longest;
}

#define SHELL_MAX_EXPANSION (1 << 20)

static int replace_pattern(shell_lex *sw, const char *pat, const char *rep, const char *value,
                           bool all, hypr_buf *res)
{
    _cleanup_free_ int *t = NULL;
    size_t nt;
    if (pattern_compile(sw, pat, &t, &nt) < 0)
        return -EINVAL;
    size_t len = strlen(value);
    size_t i = 0;
    ssize_t last_end = -1;
    bool done = false;
    while (i <= len) {
        ssize_t l = done ? -1 : match_at(t, nt, value, len, i);
        if (l >= 0 && !(l == 0 && (ssize_t)i == last_end)) {
            /* Nested replacements multiply: ${V//} in the replacement of ${V//} ... */
            if (res->len + strlen(rep) > SHELL_MAX_EXPANSION)
                return sw_fail(sw, "variable expansion is larger than %d MiB",
                               SHELL_MAX_EXPANSION >> 20);
            buf_puts(res, rep);
            last_end = (ssize_t)(i + (size_t)l);
            done = !all;
            if (l > 0) {
                i += (size_t)l;
                continue;
            }
        }
        if (i < len)
            buf_append(res, value + i, 1);
        i++;
    }
    return 0;
}

/* ---- the lexer ---------------------------------------------------------------------- */

static int process_stop_on(shell_lex *sw, int stop, bool raw_escapes, hypr_buf *result,
                           shell_words *words);

static int process_single_quote(shell_lex *sw, hypr_buf *res)
{
    int ch = sw_next(sw);
    if (sw->raw_quotes)
        buf_append(res, &(char){(char)ch}, 1);
    for (;;) {
        ch = sw_next(sw);
        if (ch == SW_EOF)
            return sw_fail(sw, "unexpected end of statement while looking for matching "
                               "single-quote");
        if (ch == '\'') {
            if (sw->raw_quotes)
                buf_append(res, "'", 1);
            return 0;
        }
        buf_append(res, &(char){(char)ch}, 1);
    }
}

static int process_dollar(shell_lex *sw, hypr_buf *res);

static int process_double_quote(shell_lex *sw, hypr_buf *res)
{
    int ch = sw_next(sw);
    if (sw->raw_quotes)
        buf_append(res, &(char){(char)ch}, 1);
    for (;;) {
        int p = sw_peek(sw);
        if (p == SW_EOF)
            return sw_fail(sw, "unexpected end of statement while looking for matching "
                               "double-quote");
        if (p == '"') {
            sw_next(sw);
            if (sw->raw_quotes)
                buf_append(res, "\"", 1);
            return 0;
        }
        if (p == '$') {
            if (process_dollar(sw, res) < 0)
                return -EINVAL;
            continue;
        }
        ch = sw_next(sw);
        if (ch == sw->esc) {
            if (sw->raw_escapes)
                buf_append(res, &(char){(char)ch}, 1);
            int q = sw_peek(sw);
            if (q == SW_EOF)
                continue;
            if (q == '"' || q == '$' || q == sw->esc)
                ch = sw_next(sw);
        }
        buf_append(res, &(char){(char)ch}, 1);
    }
}

static bool is_special_param(int c)
{
    return c == '@' || c == '*' || c == '#' || c == '?' || c == '-' || c == '$' || c == '!' ||
           c == '0';
}

static bool is_digit(int c)
{
    return c >= '0' && c <= '9';
}

/* Go's unicode.IsLetter/IsDigit: non-ASCII bytes count as letters. */
static bool is_name_char(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '_' || c >= 0x80;
}

static char *process_name(shell_lex *sw)
{
    hypr_buf name = {0};
    buf_puts(&name, "");
    while (sw_peek(sw) != SW_EOF) {
        int ch = sw_peek(sw);
        if (name.len == 0 && is_digit(ch)) {
            while (is_digit(sw_peek(sw)))
                buf_append(&name, &(char){(char)sw_next(sw)}, 1);
            break;
        }
        if (name.len == 0 && is_special_param(ch)) {
            buf_append(&name, &(char){(char)sw_next(sw)}, 1);
            break;
        }
        if (!is_name_char(ch))
            break;
        buf_append(&name, &(char){(char)sw_next(sw)}, 1);
    }
    return buf_steal(&name);
}

/* Reads up to the stop character of a ${...} part into *out. */
static int read_part(shell_lex *sw, int stop, bool raw_escapes, char **out)
{
    _cleanup_buf_ hypr_buf part = {0};
    buf_puts(&part, "");
    if (process_stop_on(sw, stop, raw_escapes, &part, NULL) < 0) {
        if (sw_peek(sw) == SW_EOF) {
            free(sw->errmsg);
            sw->errmsg = NULL;
            return sw_fail(sw, stop == '/' ? "syntax error: missing '/' in ${}"
                                           : "syntax error: missing '}'");
        }
        return -EINVAL;
    }
    *out = buf_steal(&part);
    return 0;
}

static int process_dollar_brace(shell_lex *sw, hypr_buf *res)
{
    sw_next(sw); /* '{' */
    int p = sw_peek(sw);
    if (p == SW_EOF)
        return sw_fail(sw, "syntax error: missing '}'");
    if (p == '{' || p == '}' || p == ':')
        return sw_fail(sw, "syntax error: bad substitution");
    _cleanup_free_ char *name = process_name(sw);
    int ch = sw_next(sw);
    char chs[3] = {(char)(ch == SW_EOF ? 0 : ch), 0, 0};
    bool set;
    const char *value;
    if (ch == '}') {
        value = sw_getenv(sw, name, &set);
        if (!set && sw->skip_unset)
            buf_printf(res, "${%s}", name);
        else
            buf_puts(res, value);
        return 0;
    }
    if (ch == '/') {
        bool all = sw_peek(sw) == '/';
        if (all)
            sw_next(sw);
        _cleanup_free_ char *pattern = NULL, *rep = NULL;
        if (read_part(sw, '/', true, &pattern) < 0 || read_part(sw, '}', true, &rep) < 0)
            return -EINVAL;
        value = sw_getenv(sw, name, &set);
        if (sw->skip_unset && !set) {
            buf_printf(res, "${%s/%s/%s}", name, pattern, rep);
            return 0;
        }
        return replace_pattern(sw, pattern, rep, value, all, res);
    }
    bool null_is_unset = false;
    if (ch == ':') {
        null_is_unset = true;
        ch = sw_next(sw);
        chs[1] = (char)(ch == SW_EOF ? 0 : ch);
    }
    if (ch != '+' && ch != '-' && ch != '?' && ch != '#' && ch != '%') {
        if (!null_is_unset)
            return sw_fail(sw, "unsupported modifier (%s) in substitution", chs);
        /* Go reads the word before it refuses the modifier; the error is the same. */
        _cleanup_free_ char *word = NULL;
        if (read_part(sw, '}', false, &word) < 0)
            return -EINVAL;
        return sw_fail(sw, "unsupported modifier (%s) in substitution", chs);
    }
    bool raw = ch == '#' || ch == '%';
    if (null_is_unset && raw)
        return sw_fail(sw, "unsupported modifier (%s) in substitution", chs);
    _cleanup_free_ char *word = NULL;
    if (read_part(sw, '}', raw, &word) < 0)
        return -EINVAL;
    value = sw_getenv(sw, name, &set);
    if (sw->skip_unset && !set) {
        buf_printf(res, "${%s%s%s}", name, chs, word);
        return 0;
    }
    bool empty = !set || (null_is_unset && !*value);
    switch (ch) {
    case '-':
        buf_puts(res, empty ? word : value);
        return 0;
    case '+':
        buf_puts(res, empty ? "" : word);
        return 0;
    case '?':
        if (!set)
            return sw_fail(sw, "%s: %s", name, *word ? word : "is not allowed to be unset");
        if (null_is_unset && !*value)
            return sw_fail(sw, "%s: %s", name, *word ? word : "is not allowed to be empty");
        buf_puts(res, value);
        return 0;
    default: {
        bool greedy = word[0] == ch;
        return trim_affix(sw, word + greedy, value, greedy, ch == '%', res);
    }
    }
}

static int process_dollar(shell_lex *sw, hypr_buf *res)
{
    sw_next(sw); /* '$' */
    if (sw_peek(sw) == '{') {
        if (++sw->depth > SW_MAX_DEPTH)
            return sw_fail(sw, "substitutions nested too deeply");
        int r = process_dollar_brace(sw, res);
        sw->depth--;
        return r;
    }
    _cleanup_free_ char *name = process_name(sw);
    if (!*name) {
        buf_puts(res, "$");
        return 0;
    }
    bool set;
    const char *value = sw_getenv(sw, name, &set);
    if (!set && sw->skip_unset)
        buf_printf(res, "$%s", name);
    else
        buf_puts(res, value);
    return 0;
}

static int process_stop_on(shell_lex *sw, int stop, bool raw_escapes, hypr_buf *result,
                           shell_words *words)
{
    while (sw_peek(sw) != SW_EOF) {
        int ch = sw_peek(sw);
        if (stop != SW_EOF && ch == stop) {
            sw_next(sw);
            return 0;
        }
        if (ch == '\'' || ch == '"' || ch == '$') {
            _cleanup_buf_ hypr_buf tmp = {0};
            int r = ch == '\''  ? process_single_quote(sw, &tmp)
                    : ch == '"' ? process_double_quote(sw, &tmp)
                                : process_dollar(sw, &tmp);
            if (r < 0)
                return r;
            buf_append(result, tmp.data ? tmp.data : "", tmp.len);
            if (words) {
                if (ch == '$')
                    words_add_string(words, tmp.data, tmp.len);
                else
                    words_add_raw_string(words, tmp.data ? tmp.data : "", tmp.len);
            }
            continue;
        }
        ch = sw_next(sw);
        if (ch == sw->esc) {
            if (raw_escapes) {
                if (words)
                    words_add_raw_char(words, (char)ch);
                buf_append(result, &(char){(char)ch}, 1);
            }
            ch = sw_next(sw);
            if (ch == SW_EOF)
                break;
            if (words)
                words_add_raw_char(words, (char)ch);
        } else if (words) {
            words_add_char(words, (char)ch);
        }
        buf_append(result, &(char){(char)ch}, 1);
    }
    if (stop != SW_EOF)
        return sw_fail(sw, "unexpected end of statement while looking for matching %c", stop);
    return 0;
}

static int shell_run(const char *word, char *const *env, const builder_shell_opts *opts,
                     hypr_buf *result, shell_words *words, hypr_error *err)
{
    static const builder_shell_opts defaults = {'\\', false, false, false};
    if (!opts)
        opts = &defaults;
    shell_lex sw = {
        .s = word,
        .len = strlen(word),
        .esc = opts->escape ? (unsigned char)opts->escape : '\\',
        .raw_quotes = opts->raw_quotes,
        .raw_escapes = opts->raw_escapes,
        .skip_unset = opts->skip_unset,
        .env = env,
    };
    buf_puts(result, "");
    if (process_stop_on(&sw, SW_EOF, sw.raw_escapes, result, words) < 0) {
        int r = hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL, "failed to process \"%s\": %s", word,
                         sw.errmsg ? sw.errmsg : "syntax error");
        free(sw.errmsg);
        return r;
    }
    free(sw.errmsg);
    return 0;
}

int builder_shell_word(const char *word, char *const *env, const builder_shell_opts *opts,
                       char **out, hypr_error *err)
{
    _cleanup_buf_ hypr_buf result = {0};
    int r = shell_run(word, env, opts, &result, NULL, err);
    if (r < 0)
        return r;
    *out = buf_steal(&result);
    return 0;
}

int builder_shell_words(const char *word, char *const *env, const builder_shell_opts *opts,
                        char ***out, hypr_error *err)
{
    _cleanup_buf_ hypr_buf result = {0};
    shell_words words = {0};
    int r = shell_run(word, env, opts, &result, &words, err);
    if (r < 0) {
        words_free(&words);
        return r;
    }
    words_finish(&words);
    buf_free(&words.buf);
    *out = words.v ? words.v : xcalloc(1, sizeof(char *));
    return 0;
}
