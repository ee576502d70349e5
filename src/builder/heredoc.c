/* Heredoc declarations (parser.go's heredocsFromLine and parseHeredoc): which
 * words of a RUN/COPY/ADD line open a heredoc, their names, and whether the
 * body is expanded. The bodies themselves are read by the line loop. */
#include "builder/internal.h"

#include <string.h>

void builder_heredocs_free(builder_heredoc *h, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(h[i].name);
        free(h[i].content);
    }
    free(h);
}

static size_t count_quotes(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == '\'' || *s == '"';
    return n;
}

/* "<<", "<<-", "3<<": an operator whose delimiter is the next blank-separated word. */
static bool is_bare_operator(const char *w)
{
    while (*w >= '0' && *w <= '9')
        w++;
    if (strncmp(w, "<<", 2))
        return false;
    w += 2;
    if (*w == '-')
        w++;
    return *w == '\0';
}

/* Matches ^(\d*)<<(-?)\s*([^<]*)$; *tail is the delimiter part. */
static bool match_heredoc_word(const char *w, unsigned *fd, bool *chomp, const char **tail)
{
    unsigned long v = 0;
    const char *p = w;
    for (; *p >= '0' && *p <= '9'; p++)
        v = v < 100000000 ? v * 10 + (unsigned)(*p - '0') : v;
    if (strncmp(p, "<<", 2))
        return false;
    p += 2;
    *chomp = *p == '-';
    if (*chomp)
        p++;
    while (builder_is_space((unsigned char)*p))
        p++;
    if (strchr(p, '<'))
        return false;
    *fd = (unsigned)v;
    *tail = p;
    return true;
}

/* parseHeredoc: NULL name (and 0) when the word is not a heredoc. */
static int parse_heredoc(const char *word, builder_heredoc *out, bool *found, hypr_error *err)
{
    unsigned fd;
    bool chomp;
    const char *tail;
    *found = false;
    if (!match_heredoc_word(word, &fd, &chomp, &tail) || !*tail)
        return 0;
    builder_shell_opts o = {.escape = '\\', .skip_unset = true};
    _cleanup_strv_ char **words = NULL;
    int r = builder_shell_words(tail, NULL, &o, &words, err);
    if (r < 0)
        return r;
    if (strv_length(words) != 1)
        return 0;
    o.raw_quotes = true;
    _cleanup_strv_ char **raw = NULL;
    r = builder_shell_words(tail, NULL, &o, &raw, err);
    if (r < 0)
        return r;
    if (strv_length(raw) != 1)
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                        "internal lexing of heredoc produced inconsistent results: %s", tail);
    *out = (builder_heredoc){
        .name = xstrdup(words[0]),
        .content = xstrdup(""),
        .expand = count_quotes(words[0]) == count_quotes(raw[0]),
        .chomp = chomp,
        .fd = fd,
    };
    *found = true;
    return 0;
}

int builder_heredocs_from_line(const char *line, builder_heredoc **out, size_t *n, hypr_error *err)
{
    *out = NULL;
    *n = 0;
    builder_shell_opts o = {
        .escape = '\\', .raw_quotes = true, .raw_escapes = true, .skip_unset = true};
    _cleanup_strv_ char **words = NULL;
    /* A line the lexer rejects declares no heredoc (BuildKit ignores the error). */
    if (builder_shell_words(line, NULL, &o, &words, NULL) < 0)
        return 0;
    builder_heredoc *docs = NULL;
    size_t count = 0;
    for (size_t i = 0; words[i]; i++) {
        _cleanup_free_ char *glued = NULL;
        const char *w = words[i];
        if (is_bare_operator(w) && words[i + 1]) {
            glued = xasprintf("%s%s", w, words[i + 1]);
            w = glued;
            i++;
        }
        builder_heredoc h;
        bool found;
        int r = parse_heredoc(w, &h, &found, err);
        if (r < 0) {
            builder_heredocs_free(docs, count);
            return r;
        }
        if (!found)
            continue;
        docs = xrealloc(docs, (count + 1) * sizeof(*docs));
        docs[count++] = h;
    }
    *out = docs;
    *n = count;
    return 0;
}
