/* The one option parser every hypr command uses: declarative tables of options,
 * parsed the way Docker's cobra/pflag does it, so flags behave the same as in
 * the docker CLI our users already know. */
#include "cli/cli.h"

#include <string.h>

void cli_list_push(cli_list *l, const char *s)
{
    l->items = xrealloc(l->items, (l->n + 1) * sizeof(*l->items));
    l->items[l->n++] = s;
}

void cli_list_free(cli_list *l)
{
    free(l->items);
    l->items = NULL;
    l->n = 0;
}

void cli_parsed_free(cli_parsed *p)
{
    free(p->args);
    p->args = NULL;
    p->nargs = 0;
}

int cli_error_exit(const cli_command *cmd)
{
    return cmd->error_exit ? cmd->error_exit : 1;
}

static const cli_option *find_long(const cli_command *cmd, const char *name, size_t len)
{
    for (const cli_option *o = cmd->options; o && o->kind != CLI_OPT_END; o++)
        if (o->long_name && strlen(o->long_name) == len && !strncmp(o->long_name, name, len))
            return o;
    return NULL;
}

static const cli_option *find_short(const cli_command *cmd, char c)
{
    for (const cli_option *o = cmd->options; o && o->kind != CLI_OPT_END; o++)
        if (o->short_name == c)
            return o;
    return NULL;
}

static char *display_of(const cli_option *o)
{
    if (o->short_name && o->long_name)
        return xasprintf("-%c, --%s", o->short_name, o->long_name);
    if (o->long_name)
        return xasprintf("--%s", o->long_name);
    return xasprintf("-%c", o->short_name);
}

char *cli_option_display(const cli_command *cmd, const char *long_name)
{
    const cli_option *o = find_long(cmd, long_name, strlen(long_name));
    return o ? display_of(o) : xasprintf("--%s", long_name);
}

/* pflag's strconv.ParseBool set. */
static int parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"1", "t", "T", "true", "TRUE", "True"};
    static const char *const no[] = {"0", "f", "F", "false", "FALSE", "False"};
    for (size_t i = 0; i < ARRAY_SIZE(yes); i++)
        if (!strcmp(s, yes[i])) {
            *out = true;
            return 0;
        }
    for (size_t i = 0; i < ARRAY_SIZE(no); i++)
        if (!strcmp(s, no[i])) {
            *out = false;
            return 0;
        }
    return -EINVAL;
}

/* Stores a value into the option's destination; on a bad value sets *error. */
static int set_value(const cli_option *o, const char *value, char **error)
{
    switch (o->kind) {
    case CLI_OPT_BOOL: {
        bool b;
        if (parse_bool(value, &b) < 0) {
            _cleanup_free_ char *d = display_of(o);
            *error = xasprintf("invalid argument \"%s\" for \"%s\" flag: expected true or false",
                               value, d);
            return -EINVAL;
        }
        *(bool *)o->dest = b;
        return 0;
    }
    case CLI_OPT_STRING:
        *(const char **)o->dest = value;
        return 0;
    case CLI_OPT_LIST:
        cli_list_push(o->dest, value);
        return 0;
    case CLI_OPT_INT: {
        int64_t v;
        if (parse_int64(value, o->min, o->max, &v) < 0) {
            _cleanup_free_ char *d = display_of(o);
            if (o->max == INT64_MAX)
                *error = xasprintf("invalid argument \"%s\" for \"%s\" flag: expected an integer "
                                   ">= %" PRId64,
                                   value, d, o->min);
            else
                *error = xasprintf("invalid argument \"%s\" for \"%s\" flag: expected an integer "
                                   "from %" PRId64 " to %" PRId64,
                                   value, d, o->min, o->max);
            return -EINVAL;
        }
        *(int64_t *)o->dest = v;
        return 0;
    }
    case CLI_OPT_END:
        break;
    }
    return -EINVAL;
}

/* "--name[=value]". *i is advanced past a separate value argument. */
static int parse_long(const cli_command *cmd, int argc, char **argv, int *i, char **error)
{
    const char *arg = argv[*i] + 2;
    const char *eq = strchr(arg, '=');
    size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
    const cli_option *o = find_long(cmd, arg, len);
    if (!o) {
        if (len == 4 && !strncmp(arg, "help", 4))
            return CLI_PARSE_HELP;
        *error = xasprintf("unknown flag: --%.*s", (int)len, arg);
        return -EINVAL;
    }
    if (o->kind == CLI_OPT_BOOL)
        return set_value(o, eq ? eq + 1 : "true", error);
    if (eq)
        return set_value(o, eq + 1, error);
    if (*i + 1 >= argc) {
        *error = xasprintf("flag needs an argument: --%s", o->long_name);
        return -EINVAL;
    }
    (*i)++;
    return set_value(o, argv[*i], error);
}

/* "-abc", "-nNAME", "-n NAME", "-n=NAME": booleans combine; the first option
 * taking a value consumes the rest of the word or the next argument. */
static int parse_short(const cli_command *cmd, int argc, char **argv, int *i, char **error)
{
    const char *word = argv[*i];
    for (const char *p = word + 1; *p; p++) {
        const cli_option *o = find_short(cmd, *p);
        if (!o) {
            if (*p == 'h')
                return CLI_PARSE_HELP;
            *error = xasprintf("unknown shorthand flag: '%c' in %s", *p, word);
            return -EINVAL;
        }
        if (o->kind == CLI_OPT_BOOL) {
            if (p[1] == '=')
                return set_value(o, p + 2, error);
            int r = set_value(o, "true", error);
            if (r < 0)
                return r;
            continue;
        }
        if (p[1])
            return set_value(o, p[1] == '=' ? p + 2 : p + 1, error);
        if (*i + 1 >= argc) {
            *error = xasprintf("flag needs an argument: '%c' in %s", *p, word);
            return -EINVAL;
        }
        (*i)++;
        return set_value(o, argv[*i], error);
    }
    return 0;
}

static char *count_error(const cli_command *cmd, int n)
{
    const char *s = cmd->min_args == 1 ? "" : "s";
    if (cmd->max_args == 0)
        return xasprintf("\"%s\" accepts no arguments.", cmd->name);
    if (cmd->min_args == cmd->max_args)
        return xasprintf("\"%s\" requires exactly %d argument%s.", cmd->name, cmd->min_args, s);
    if (n < cmd->min_args)
        return xasprintf("\"%s\" requires at least %d argument%s.", cmd->name, cmd->min_args, s);
    return xasprintf("\"%s\" requires at most %d argument%s.", cmd->name, cmd->max_args,
                     cmd->max_args == 1 ? "" : "s");
}

int cli_parse(const cli_command *cmd, int argc, char **argv, cli_parsed *out, char **error)
{
    *error = NULL;
    out->args = xcalloc((size_t)(argc > 0 ? argc : 1), sizeof(char *));
    out->nargs = 0;
    bool only_positional = false;
    for (int i = 1; i < argc; i++) {
        char *a = argv[i];
        if (only_positional || a[0] != '-' || !a[1]) {
            out->args[out->nargs++] = a;
            if (!only_positional && cmd->stop_at_positional) {
                only_positional = true;
                if (i + 1 < argc && !strcmp(argv[i + 1], "--"))
                    i++;
            }
            continue;
        }
        if (!strcmp(a, "--")) {
            only_positional = true;
            continue;
        }
        int r = a[1] == '-' ? parse_long(cmd, argc, argv, &i, error)
                            : parse_short(cmd, argc, argv, &i, error);
        if (r != 0)
            return r;
    }
    if (out->nargs < cmd->min_args || (cmd->max_args >= 0 && out->nargs > cmd->max_args)) {
        *error = count_error(cmd, out->nargs);
        return -EINVAL;
    }
    return 0;
}

void cli_print_help(const cli_command *cmd, FILE *f)
{
    fprintf(f, "\nUsage:  %s%s%s\n\n%s\n", cmd->name, cmd->usage && *cmd->usage ? " " : "",
            cmd->usage ? cmd->usage : "", cmd->description);
    size_t width = 0;
    size_t count = 0;
    for (const cli_option *o = cmd->options; o && o->kind != CLI_OPT_END; o++) {
        /* "  -x, --long metavar" */
        size_t w = 6 + (o->long_name ? 2 + strlen(o->long_name) : 0) +
                   (o->metavar ? 1 + strlen(o->metavar) : 0);
        if (w > width)
            width = w;
        count++;
    }
    if (count) {
        fprintf(f, "\nOptions:\n");
        for (const cli_option *o = cmd->options; o && o->kind != CLI_OPT_END; o++) {
            _cleanup_buf_ hypr_buf b = {0};
            if (o->short_name)
                buf_printf(&b, "  -%c%s", o->short_name, o->long_name ? ", " : "  ");
            else
                buf_puts(&b, "      ");
            if (o->long_name)
                buf_printf(&b, "--%s", o->long_name);
            if (o->metavar)
                buf_printf(&b, " %s", o->metavar);
            fprintf(f, "%-*s   %s\n", (int)width, b.data, o->help ? o->help : "");
        }
    }
    if (cmd->notes)
        fprintf(f, "\n%s\n", cmd->notes);
}

static void print_hint(const cli_command *cmd)
{
    fprintf(stderr, "See '%s --help'.\n", cmd->name);
}

bool cli_parse_or_exit(const cli_command *cmd, int argc, char **argv, cli_parsed *out,
                       int *exit_code)
{
    _cleanup_free_ char *error = NULL;
    int r = cli_parse(cmd, argc, argv, out, &error);
    if (r == 0)
        return true;
    if (r == CLI_PARSE_HELP) {
        cli_print_help(cmd, stdout);
        *exit_code = 0;
        return false;
    }
    fprintf(stderr, "%s\n", error);
    print_hint(cmd);
    if (str_startswith(error, "\"")) /* an argument-count error: Docker adds the usage */
        fprintf(stderr, "\nUsage:  %s %s\n\n%s\n", cmd->name, cmd->usage ? cmd->usage : "",
                cmd->description);
    *exit_code = cli_error_exit(cmd);
    return false;
}

int cli_invalid_value(const cli_command *cmd, const char *long_name, const char *value,
                      const char *reason)
{
    _cleanup_free_ char *d = cli_option_display(cmd, long_name);
    fprintf(stderr, "invalid argument \"%s\" for \"%s\" flag: %s\n", value, d, reason);
    print_hint(cmd);
    return cli_error_exit(cmd);
}

int cli_usage_error(const cli_command *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    print_hint(cmd);
    return cli_error_exit(cmd);
}
