/* From the flat instruction list to build stages, with the checks BuildKit's
 * frontend (instructions/parse.go, dockerfile2llb) makes before it builds, and
 * its lint rules that `hypr build --check` reports. */
#include "builder/internal.h"

#include <ctype.h>
#include <string.h>

void builder_stages_clear(builder_stages *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->stages[i].name);
    free(s->stages);
    *s = (builder_stages){0};
}

static int fail_at(const builder_dockerfile *df, int line, hypr_error *err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail_at(const builder_dockerfile *df, int line, hypr_error *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    _cleanup_free_ char *msg = xvasprintf(fmt, ap);
    va_end(ap);
    return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL, "%s:%d: %s", df->filename, line, msg);
}

static char *upper_dup(const char *s)
{
    char *u = xstrdup(s);
    for (char *c = u; *c; c++)
        *c = (char)toupper((unsigned char)*c);
    return u;
}

static const char *const known[] = {
    "add",    "arg",   "cmd",         "copy",  "entrypoint", "env",
    "expose", "from",  "healthcheck", "label", "maintainer", "onbuild",
    "run",    "shell", "stopsignal",  "user",  "volume",     "workdir",
};

static bool is_known(const char *cmd)
{
    for (size_t i = 0; i < ARRAY_SIZE(known); i++)
        if (!strcmp(known[i], cmd))
            return true;
    return false;
}

/* BuildKit's stage name rule. */
static bool stage_name_valid(const char *s)
{
    if (!(*s >= 'a' && *s <= 'z'))
        return false;
    for (s++; *s; s++)
        if (!islower((unsigned char)*s) && !isdigit((unsigned char)*s) && !strchr("-_.", *s))
            return false;
    return true;
}

/* The value of --name=value among the flags, or NULL. */
static const char *flag_value(const builder_strv *flags, const char *name)
{
    size_t n = strlen(name);
    const char *found = NULL;
    for (size_t i = 0; i < flags->n; i++)
        if (!strncmp(flags->v[i], "--", 2) && !strncmp(flags->v[i] + 2, name, n) &&
            flags->v[i][2 + n] == '=')
            found = flags->v[i] + 3 + n;
    return found;
}

static int check_instr(const builder_dockerfile *df, const builder_instr *in, int line,
                       bool trigger, hypr_error *err)
{
    if (!is_known(in->cmd)) {
        _cleanup_free_ char *u = upper_dup(in->cmd);
        return fail_at(df, line, err, "unknown instruction: %s", u);
    }
    if (trigger && (!strcmp(in->cmd, "from") || !strcmp(in->cmd, "maintainer")))
        return fail_at(df, line, err, "%s isn't allowed as an ONBUILD trigger",
                       !strcmp(in->cmd, "from") ? "FROM" : "MAINTAINER");
    if (in->inner)
        return check_instr(df, in->inner, line, true, err);
    return 0;
}

/* Depth-first search for a cycle through --from / FROM references. */
static bool has_cycle(int **deps, const size_t *ndeps, size_t n, size_t v, char *state)
{
    state[v] = 1;
    for (size_t i = 0; i < ndeps[v]; i++) {
        size_t w = (size_t)deps[v][i];
        if (state[w] == 1 || (state[w] == 0 && has_cycle(deps, ndeps, n, w, state)))
            return true;
    }
    state[v] = 2;
    return false;
}

static int stage_by_ref(const builder_stages *st, const char *ref)
{
    _cleanup_free_ char *lower = xstrdup(ref);
    for (char *c = lower; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    for (size_t i = 0; i < st->n; i++)
        if (st->stages[i].name && !strcmp(st->stages[i].name, lower))
            return (int)i;
    return -1;
}

static int check_references(const builder_dockerfile *df, const builder_stages *st, hypr_error *err)
{
    int r = 0;
    int **deps = xcalloc(st->n, sizeof(int *));
    size_t *ndeps = xcalloc(st->n, sizeof(size_t));
    for (size_t s = 0; s < st->n && r == 0; s++) {
        const builder_stage *sg = &st->stages[s];
        for (size_t i = 0; i < sg->count && r == 0; i++) {
            const builder_instr *in = &df->instrs[sg->first + i];
            const char *from = NULL;
            if (i == 0)
                from = sg->base;
            else if (!strcmp(in->cmd, "copy"))
                from = flag_value(&in->flags, "from");
            if (!from || !*from)
                continue;
            int target = stage_by_ref(st, from);
            if (i == 0 && target >= (int)s)
                target = -1; /* FROM names an image unless an earlier stage has that name */
            bool numeric = i > 0 && strspn(from, "0123456789") == strlen(from);
            if (numeric) {
                int64_t idx;
                if (parse_int64(from, 0, INT32_MAX, &idx) < 0 || idx >= (int64_t)s) {
                    r = fail_at(df, in->line, err,
                                "invalid from flag value %s: it must name an earlier stage", from);
                    break;
                }
                target = (int)idx;
            }
            if (target < 0)
                continue;
            if (target == (int)s) {
                r = fail_at(df, in->line, err, "circular dependency detected on stage: %s",
                            sg->name ? sg->name : from);
                break;
            }
            deps[s] = xrealloc(deps[s], (ndeps[s] + 1) * sizeof(int));
            deps[s][ndeps[s]++] = target;
        }
    }
    if (r == 0) {
        _cleanup_free_ char *state = xcalloc(st->n ? st->n : 1, 1);
        for (size_t s = 0; s < st->n && r == 0; s++)
            if (!state[s] && has_cycle(deps, ndeps, st->n, s, state))
                for (size_t v = 0; v < st->n; v++)
                    if (state[v] == 1) {
                        r = fail_at(df, st->stages[v].line, err,
                                    "circular dependency detected on stage: %s",
                                    st->stages[v].name ? st->stages[v].name : "(unnamed)");
                        break;
                    }
    }
    for (size_t s = 0; s < st->n; s++)
        free(deps[s]);
    free(deps);
    free(ndeps);
    return r;
}

int builder_stages_build(const builder_dockerfile *df, builder_stages *out, hypr_error *err)
{
    builder_stages st = {0};
    int r = 0;
    for (size_t i = 0; i < df->n_instrs && r == 0; i++) {
        const builder_instr *in = &df->instrs[i];
        r = check_instr(df, in, in->line, false, err);
        if (r < 0)
            break;
        if (strcmp(in->cmd, "from")) {
            if (st.n == 0 && strcmp(in->cmd, "arg")) {
                _cleanup_free_ char *u = upper_dup(in->cmd);
                r = fail_at(df, in->line, err,
                            "no build stage in current context: %s before the first FROM "
                            "(only ARG may come before FROM)",
                            u);
                break;
            }
            if (st.n == 0)
                st.n_before++;
            else
                st.stages[st.n - 1].count++;
            continue;
        }
        bool with_as = in->args.n == 3 && !strcasecmp(in->args.v[1], "as");
        if (in->args.n != 1 && !with_as) {
            r = fail_at(df, in->line, err, "FROM requires either one or three arguments");
            break;
        }
        builder_stage sg = {
            .base = in->args.v[0],
            .platform = flag_value(&in->flags, "platform"),
            .line = in->line,
            .first = i,
            .count = 1,
        };
        if (with_as) {
            sg.name = xstrdup(in->args.v[2]);
            for (char *c = sg.name; *c; c++)
                *c = (char)tolower((unsigned char)*c);
            if (!stage_name_valid(sg.name)) {
                r = fail_at(df, in->line, err,
                            "invalid name for build stage: \"%s\", name can't start with a "
                            "number or contain symbols",
                            in->args.v[2]);
                free(sg.name);
                break;
            }
            if (stage_by_ref(&st, sg.name) >= 0) {
                r = fail_at(df, in->line, err, "duplicate stage name \"%s\"", sg.name);
                free(sg.name);
                break;
            }
        }
        st.stages = xrealloc(st.stages, (st.n + 1) * sizeof(*st.stages));
        st.stages[st.n++] = sg;
    }
    if (r == 0 && st.n == 0)
        r = fail_at(df, df->n_instrs ? df->instrs[df->n_instrs - 1].end_line : 1, err,
                    "no FROM instruction: a Dockerfile needs at least one build stage");
    if (r == 0)
        r = check_references(df, &st, err);
    if (r < 0) {
        builder_stages_clear(&st);
        return r;
    }
    *out = st;
    return 0;
}

/* ---- flags and lint ------------------------------------------------------------------- */

typedef struct flag_spec {
    const char *cmd;
    const char *name;
    char kind; /* 's' string, 'b' bool, 'm' repeatable string */
} flag_spec;

static const flag_spec flag_specs[] = {
    {"from", "platform", 's'},
    {"run", "mount", 'm'},
    {"run", "network", 's'},
    {"run", "security", 's'},
    {"run", "device", 'm'},
    {"copy", "from", 's'},
    {"copy", "chown", 's'},
    {"copy", "chmod", 's'},
    {"copy", "link", 'b'},
    {"copy", "parents", 'b'},
    {"copy", "exclude", 'm'},
    {"add", "chown", 's'},
    {"add", "chmod", 's'},
    {"add", "link", 'b'},
    {"add", "keep-git-dir", 'b'},
    {"add", "checksum", 's'},
    {"add", "exclude", 'm'},
    {"add", "unpack", 'b'},
    {"healthcheck", "interval", 's'},
    {"healthcheck", "timeout", 's'},
    {"healthcheck", "start-period", 's'},
    {"healthcheck", "start-interval", 's'},
    {"healthcheck", "retries", 's'},
};

static const flag_spec *find_flag(const char *cmd, const char *name, size_t n)
{
    for (size_t i = 0; i < ARRAY_SIZE(flag_specs); i++)
        if (!strcmp(flag_specs[i].cmd, cmd) && strlen(flag_specs[i].name) == n &&
            !strncmp(flag_specs[i].name, name, n))
            return &flag_specs[i];
    return NULL;
}

static void add_msg(char ***v, const builder_dockerfile *df, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void add_msg(char ***v, const builder_dockerfile *df, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    _cleanup_free_ char *msg = xvasprintf(fmt, ap);
    va_end(ap);
    _cleanup_free_ char *full = xasprintf("%s:%d: %s", df->filename, line, msg);
    *v = strv_append(*v, full);
}

static void lint_flags(const builder_dockerfile *df, const builder_instr *in, int line,
                       char ***errs)
{
    for (size_t i = 0; i < in->flags.n; i++) {
        const char *f = in->flags.v[i];
        const char *name = f + (strncmp(f, "--", 2) ? 0 : 2);
        const char *eq = strchr(name, '=');
        size_t n = eq ? (size_t)(eq - name) : strlen(name);
        const flag_spec *spec = find_flag(in->cmd, name, n);
        if (!spec) {
            add_msg(errs, df, line, "unknown flag: --%.*s", (int)n, name);
            continue;
        }
        if (!eq && spec->kind != 'b')
            add_msg(errs, df, line, "missing a value on flag: --%.*s", (int)n, name);
        if (spec->kind == 'm')
            continue;
        for (size_t j = 0; j < i; j++) {
            const char *g = in->flags.v[j] + (strncmp(in->flags.v[j], "--", 2) ? 0 : 2);
            if (!strncmp(g, name, n) && (g[n] == '=' || g[n] == '\0')) {
                add_msg(errs, df, line, "duplicate flag specified: --%.*s", (int)n, name);
                break;
            }
        }
    }
}

static bool looks_like_shell(const char *s)
{
    return strpbrk(s, " \t|&;<>$") != NULL;
}

static bool is_all_case(const char *s, size_t n, bool upper)
{
    for (size_t i = 0; i < n; i++)
        if (isalpha((unsigned char)s[i]) && (bool)isupper((unsigned char)s[i]) != upper)
            return false;
    return true;
}

char **builder_lint(const builder_dockerfile *df, size_t *n_errors)
{
    char **errs = NULL, **warns = NULL;
    for (size_t i = 0; i < df->n_instrs; i++) {
        const builder_instr *in = &df->instrs[i];
        lint_flags(df, in, in->line, &errs);
        const builder_instr *eff = in->inner ? in->inner : in;
        if (in->inner)
            lint_flags(df, in->inner, in->line, &errs);
        if (!strcmp(eff->cmd, "healthcheck") && eff->args.n && strcasecmp(eff->args.v[0], "CMD") &&
            strcasecmp(eff->args.v[0], "NONE"))
            add_msg(&errs, df, in->line, "Unknown type \"%s\" in HEALTHCHECK (try CMD)",
                    eff->args.v[0]);
        if (!strcmp(in->cmd, "maintainer"))
            add_msg(&warns, df, in->line,
                    "MaintainerDeprecated: the MAINTAINER instruction is deprecated, use a "
                    "label instead (LABEL org.opencontainers.image.authors=...)");
        if (!strcmp(in->cmd, "from") && in->args.n == 3) {
            const char *kw = in->original;
            while (builder_is_space((unsigned char)*kw))
                kw++;
            size_t kn = strcspn(kw, " \t\v\f\r");
            bool kw_upper = is_all_case(kw, kn, true), kw_lower = is_all_case(kw, kn, false);
            const char *as = in->args.v[1];
            if ((kw_upper && !is_all_case(as, strlen(as), true)) ||
                (kw_lower && !is_all_case(as, strlen(as), false)))
                add_msg(&warns, df, in->line,
                        "FromAsCasing: '%s' and '%.*s' keywords' casing do not match", as, (int)kn,
                        kw);
            if (!is_all_case(in->args.v[2], strlen(in->args.v[2]), false))
                add_msg(&warns, df, in->line,
                        "StageNameCasing: stage name '%s' should be "
                        "lowercase",
                        in->args.v[2]);
        }
        if (!strcmp(in->cmd, "cmd") || !strcmp(in->cmd, "entrypoint")) {
            _cleanup_free_ char *u = upper_dup(in->cmd);
            if (!in->json && in->args.n)
                add_msg(&warns, df, in->line,
                        "JSONArgsRecommended: JSON arguments recommended for %s to prevent "
                        "unintended behavior related to OS signals",
                        u);
            else if (in->json && in->args.n == 1 && looks_like_shell(in->args.v[0]))
                add_msg(&warns, df, in->line,
                        "JSON-form %s with one element that reads like a shell command: it "
                        "runs a program named \"%s\"",
                        u, in->args.v[0]);
        }
    }
    *n_errors = strv_length(errs);
    for (size_t i = 0; warns && warns[i]; i++)
        errs = strv_append(errs, warns[i]);
    strv_free(warns);
    return errs ? errs : xcalloc(1, sizeof(char *));
}

int builder_validate(const builder_dockerfile *df, builder_stages *out, hypr_error *err)
{
    int r = builder_stages_build(df, out, err);
    if (r < 0)
        return r;
    size_t n_errors;
    _cleanup_strv_ char **msgs = builder_lint(df, &n_errors);
    if (n_errors) {
        builder_stages_clear(out);
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL, "%s", msgs[0]);
    }
    return 0;
}
