/* .dockerignore: moby's ignorefile.ReadAll (comments, trimming, cleaning) and
 * patternmatcher (Go filepath.Match globs, "**", "!" exceptions, a path is
 * excluded when it or a parent directory matches; the last pattern wins). */
#include "builder/internal.h"

#include <string.h>
#include <sys/stat.h>

typedef struct ignore_pattern {
    char *pattern; /* cleaned, without the '!' */
    bool exclusion;
} ignore_pattern;

struct builder_ignore {
    ignore_pattern *p;
    size_t n;
};

void builder_ignore_free(builder_ignore *ig)
{
    if (!ig)
        return;
    for (size_t i = 0; i < ig->n; i++)
        free(ig->p[i].pattern);
    free(ig->p);
    free(ig);
}

size_t builder_ignore_count(const builder_ignore *ig)
{
    return ig ? ig->n : 0;
}

/* Go's path.Clean. */
static char *clean_path(const char *s)
{
    size_t n = strlen(s);
    if (n == 0)
        return xstrdup(".");
    bool rooted = s[0] == '/';
    char *out = xmalloc(n + 2);
    size_t w = 0, r = 0, dotdot = 0;
    if (rooted) {
        out[w++] = '/';
        r = 1;
        dotdot = 1;
    }
    while (r < n) {
        if (s[r] == '/') {
            r++;
        } else if (s[r] == '.' && (r + 1 == n || s[r + 1] == '/')) {
            r++;
        } else if (s[r] == '.' && s[r + 1] == '.' && (r + 2 == n || s[r + 2] == '/')) {
            r += 2;
            if (w > dotdot) {
                w--;
                while (w > dotdot && out[w] != '/')
                    w--;
            } else if (!rooted) {
                if (w > 0)
                    out[w++] = '/';
                out[w++] = '.';
                out[w++] = '.';
                dotdot = w;
            }
        } else {
            if ((rooted && w != 1) || (!rooted && w != 0))
                out[w++] = '/';
            for (; r < n && s[r] != '/'; r++)
                out[w++] = s[r];
        }
    }
    if (w == 0)
        out[w++] = '.';
    out[w] = '\0';
    return out;
}

/* A character class at p ('[' already consumed): whether c is in it; *end is set
 * after the ']'. false with *bad when the class is malformed. */
static bool match_class(const char *p, unsigned char c, const char **end, bool *bad)
{
    bool negate = *p == '^';
    if (negate)
        p++;
    bool matched = false;
    bool first = true;
    for (;;) {
        if (!*p) {
            *bad = true;
            return false;
        }
        if (*p == ']' && !first)
            break;
        first = false;
        unsigned char lo = (unsigned char)*p++;
        if (lo == '\\') {
            if (!*p) {
                *bad = true;
                return false;
            }
            lo = (unsigned char)*p++;
        }
        unsigned char hi = lo;
        if (*p == '-' && p[1] && p[1] != ']') {
            p++;
            hi = (unsigned char)*p++;
            if (hi == '\\') {
                if (!*p) {
                    *bad = true;
                    return false;
                }
                hi = (unsigned char)*p++;
            }
        }
        if (lo <= c && c <= hi)
            matched = true;
    }
    *end = p + 1;
    return matched != negate;
}

/* The pattern as moby compiles it: '*' any run without '/', '?' one non-'/'
 * character, "**" any run (a following '/' included), '[...]' a class, '\x' x. */
static bool glob(const char *p, const char *s, bool *bad)
{
    while (*p) {
        if (p[0] == '*' && p[1] == '*') {
            p += 2;
            if (*p == '/')
                p++;
            else if (!*p)
                return true; /* a trailing "**" takes everything */
            /* (.*\/)? : nothing, or anything ending in '/' */
            if (glob(p, s, bad))
                return true;
            for (const char *q = s; *q; q++)
                if (*q == '/' && glob(p, q + 1, bad))
                    return true;
            return false;
        }
        if (*p == '*') {
            p++;
            for (const char *q = s;; q++) {
                if (glob(p, q, bad))
                    return true;
                if (!*q || *q == '/')
                    return false;
            }
        }
        if (!*s)
            return false;
        if (*p == '?') {
            if (*s == '/')
                return false;
            p++;
            s++;
            while (((unsigned char)*s & 0xC0) == 0x80)
                s++;
            continue;
        }
        if (*p == '[') {
            const char *end;
            if (!match_class(p + 1, (unsigned char)*s, &end, bad))
                return false;
            p = end;
            s++;
            continue;
        }
        if (*p == '\\' && p[1])
            p++;
        if (*p != *s)
            return false;
        p++;
        s++;
    }
    return *s == '\0';
}

/* moby's suffixMatch: "**" followed by plain text matches any path ending in it. */
static bool is_suffix_pattern(const char *p)
{
    return !strncmp(p, "**", 2) && !strpbrk(p + 2, "*?[\\");
}

static bool pattern_match(const char *pattern, const char *path)
{
    bool bad = false;
    if (is_suffix_pattern(pattern)) {
        const char *suffix = pattern + 2;
        if (str_endswith(path, suffix))
            return true;
        return suffix[0] == '/' && !strcmp(path, suffix + 1);
    }
    return glob(pattern, path, &bad) && !bad;
}

/* filepath.Match(p, ".")'s syntax check: classes closed, no trailing escape. */
static bool pattern_valid(const char *p)
{
    for (; *p; p++) {
        if (*p == '\\') {
            if (!p[1])
                return false;
            p++;
        } else if (*p == '[') {
            const char *end;
            bool bad = false;
            match_class(p + 1, 'a', &end, &bad);
            if (bad)
                return false;
            p = end - 1;
        }
    }
    return true;
}

static char *trim_dup(const char *s, size_t n)
{
    return builder_trim_dup(s, n);
}

int builder_ignore_parse(const char *data, size_t len, builder_ignore **out, hypr_error *err)
{
    builder_ignore *ig = xcalloc(1, sizeof(*ig));
    size_t pos = 0;
    int lineno = 0;
    if (len >= 3 && !memcmp(data, "\xEF\xBB\xBF", 3))
        pos = 3;
    while (pos < len) {
        const char *line = data + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - line) : len - pos;
        pos += n + (nl != NULL);
        lineno++;
        if (n && line[n - 1] == '\r')
            n--;
        if (n && line[0] == '#')
            continue;
        if (memchr(line, '\0', n)) {
            builder_ignore_free(ig);
            return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                            ".dockerignore:%d: a NUL byte in the pattern", lineno);
        }
        _cleanup_free_ char *pat = trim_dup(line, n);
        if (!*pat)
            continue;
        bool invert = pat[0] == '!';
        _cleanup_free_ char *body = invert ? trim_dup(pat + 1, strlen(pat + 1)) : xstrdup(pat);
        if (!*body) {
            builder_ignore_free(ig);
            return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                            ".dockerignore:%d: illegal exclusion pattern: \"!\"", lineno);
        }
        char *clean = clean_path(body);
        if (strlen(clean) > 1 && clean[0] == '/')
            memmove(clean, clean + 1, strlen(clean));
        if (!pattern_valid(clean)) {
            int r = hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                             ".dockerignore:%d: syntax error in pattern \"%s\"", lineno, body);
            free(clean);
            builder_ignore_free(ig);
            return r;
        }
        ig->p = xrealloc(ig->p, (ig->n + 1) * sizeof(*ig->p));
        ig->p[ig->n++] = (ignore_pattern){.pattern = clean, .exclusion = invert};
    }
    *out = ig;
    return 0;
}

bool builder_ignore_match(const builder_ignore *ig, const char *path)
{
    if (!ig || !ig->n)
        return false;
    _cleanup_free_ char *file = clean_path(path);
    if (file[0] == '/' && file[1])
        memmove(file, file + 1, strlen(file));
    bool matched = false;
    for (size_t i = 0; i < ig->n; i++) {
        const ignore_pattern *p = &ig->p[i];
        /* An inclusion cannot change a match, an exclusion cannot change a non-match. */
        if (p->exclusion != matched)
            continue;
        bool m = pattern_match(p->pattern, file);
        if (!m) {
            /* or one of the parent directories */
            _cleanup_free_ char *parent = xstrdup(file);
            for (char *slash = strchr(parent, '/'); slash && !m; slash = strchr(slash + 1, '/')) {
                *slash = '\0';
                m = pattern_match(p->pattern, parent);
                *slash = '/';
            }
        }
        if (m)
            matched = !p->exclusion;
    }
    return matched;
}

static bool is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

char *builder_ignore_find(const char *context, const char *dockerfile)
{
    if (dockerfile && strcmp(dockerfile, "-")) {
        char *next = xasprintf("%s.dockerignore", dockerfile);
        if (is_file(next))
            return next;
        free(next);
    }
    char *ctx = path_join(context ? context : ".", ".dockerignore");
    if (is_file(ctx))
        return ctx;
    free(ctx);
    return NULL;
}

int builder_ignore_load(const char *context, const char *dockerfile, builder_ignore **out,
                        hypr_error *err)
{
    _cleanup_free_ char *path = builder_ignore_find(context, dockerfile);
    if (!path)
        return builder_ignore_parse("", 0, out, err);
    _cleanup_free_ char *data = NULL;
    size_t len = 0;
    int r = read_file(path, BUILDER_DOCKERFILE_MAX, &data, &len);
    if (r < 0)
        return hypr_err(err, hypr_status_from_errno(r), -r, "reading %s: %s", path, strerror(-r));
    r = builder_ignore_parse(data, len, out, err);
    if (r < 0)
        return hypr_err_prefix(err, "%s", path);
    return 0;
}
