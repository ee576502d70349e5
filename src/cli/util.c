/* Helpers shared by the command files: command groups, connecting to hyprd,
 * calls with uniform error output, protobuf maps, confirmation prompts. */
#define LOG_MODULE "cli"
#include "cli/cmd.h"

#include <string.h>

const cli_subcommand *cli_find_subcommand(const cli_subcommand *subs, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(subs[i].name, name))
            return &subs[i];
        if (!subs[i].aliases)
            continue;
        size_t len = strlen(name);
        for (const char *a = subs[i].aliases; *a;) {
            const char *end = strchr(a, ',');
            size_t alen = end ? (size_t)(end - a) : strlen(a);
            if (alen == len && !strncmp(a, name, len))
                return &subs[i];
            a += alen + (end ? 1 : 0);
        }
    }
    return NULL;
}

int cli_run_subcommand(cli_ctx *ctx, const cli_subcommand *sub, const char *name, int argc,
                       char **argv)
{
    char *saved = ctx->cmdpath;
    ctx->cmdpath = xasprintf("%s %s", saved, name);
    int r = sub->fn(ctx, argc, argv);
    free(ctx->cmdpath);
    ctx->cmdpath = saved;
    return r;
}

static void print_group_help(cli_ctx *ctx, const char *description, const cli_subcommand *subs,
                             size_t n, FILE *f)
{
    fprintf(f, "\nUsage:  %s COMMAND\n\n%s\n\nCommands:\n", ctx->cmdpath, description);
    for (size_t i = 0; i < n; i++)
        fprintf(f, "  %-11s %s\n", subs[i].name, subs[i].summary);
    fprintf(f, "\nRun '%s COMMAND --help' for more information on a command.\n", ctx->cmdpath);
}

int cli_dispatch_group(cli_ctx *ctx, const char *description, const cli_subcommand *subs, size_t n,
                       int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
        !strcmp(argv[1], "help")) {
        print_group_help(ctx, description, subs, n, stdout);
        return 0;
    }
    if (argv[1][0] == '-') {
        fprintf(stderr, "unknown flag: %s\nSee '%s --help'.\n", argv[1], ctx->cmdpath);
        return 1;
    }
    const cli_subcommand *sub = cli_find_subcommand(subs, n, argv[1]);
    if (!sub) {
        fprintf(stderr, "%s: '%s' is not a %s command.\nSee '%s --help'.\n", ctx->cmdpath, argv[1],
                ctx->cmdpath, ctx->cmdpath);
        return 1;
    }
    return cli_run_subcommand(ctx, sub, argv[1], argc - 1, argv + 1);
}

rpc_client *cli_connect(cli_ctx *ctx)
{
    if (ctx->client)
        return ctx->client;
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    log_debug("connecting to %s", ctx->display);
    int r = rpc_client_connect(ctx->target, &ctx->client, &err);
    if (r < 0) {
        ctx->client = NULL;
        /* The rpc message names the socket again; the errno text is the reason. */
        const char *reason = err.errnum    ? strerror(err.errnum)
                             : err.message ? err.message
                                           : strerror(-r);
        fprintf(stderr, "Cannot connect to the hypr daemon at %s: %s.\n", ctx->display, reason);
        fprintf(stderr, "Is hyprd running? Start it with: sudo hyprd\n");
        return NULL;
    }
    return ctx->client;
}

void cli_print_error(const hypr_error *err)
{
    if (!str_empty(err->message))
        fprintf(stderr, "Error: %s\n", err->message);
    else
        fprintf(stderr, "Error: %s (%s)\n", hypr_status_name(err->status),
                err->errnum ? strerror(err->errnum) : "no details from the daemon");
}

int cli_fail(cli_ctx *ctx, int exit_code, const char *fmt, ...)
{
    hypr_error_clear(&ctx->err);
    va_list ap;
    va_start(ap, fmt);
    ctx->err.message = xvasprintf(fmt, ap);
    va_end(ap);
    ctx->err.status = HYPR_UNKNOWN;
    return exit_code;
}

int cli_fail_with(cli_ctx *ctx, int exit_code, hypr_error *err)
{
    hypr_error_clear(&ctx->err);
    ctx->err = *err;
    *err = (hypr_error)HYPR_ERROR_INIT;
    if (ctx->err.status == HYPR_OK)
        ctx->err.status = HYPR_UNKNOWN;
    return exit_code;
}

int cli_unary_err(cli_ctx *ctx, const char *method, const void *req,
                  const ProtobufCMessageDescriptor *resp_desc, void *resp_out, hypr_error *err)
{
    rpc_client *c = cli_connect(ctx);
    if (!c)
        return hypr_err(err, HYPR_UNAVAILABLE, ECONNREFUSED, "not connected");
    log_debug("call %s", method);
    return rpc_client_unary(c, method, req, resp_desc, resp_out, 0, err);
}

int cli_unary(cli_ctx *ctx, const char *method, const void *req,
              const ProtobufCMessageDescriptor *resp_desc, void *resp_out)
{
    if (!cli_connect(ctx))
        return -ECONNREFUSED;
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    int r = cli_unary_err(ctx, method, req, resp_desc, resp_out, &err);
    if (r < 0)
        cli_print_error(&err);
    return r;
}

int cli_open_stream(cli_ctx *ctx, const char *method, const void *req, rpc_stream **out,
                    hypr_error *err)
{
    rpc_client *c = cli_connect(ctx);
    if (!c)
        return hypr_err(err, HYPR_UNAVAILABLE, ECONNREFUSED, "not connected");
    log_debug("open %s", method);
    rpc_stream *s = NULL;
    int r = rpc_client_open(c, method, 0, &s, err);
    if (r < 0)
        return r;
    r = rpc_stream_send(s, req, err);
    if (r >= 0)
        r = rpc_stream_close_send(s, err);
    if (r < 0) {
        rpc_stream_free(s);
        return r;
    }
    *out = s;
    return 0;
}

void cli_map_set(cli_map *m, const ProtobufCMessageDescriptor *entry_desc, const char *key,
                 const char *value)
{
    for (size_t i = 0; i < m->n; i++)
        if (!strcmp(m->entries[i]->key, key)) {
            free(m->entries[i]->value);
            m->entries[i]->value = xstrdup(value);
            return;
        }
    pb_kv *kv = xcalloc(1, sizeof(*kv));
    protobuf_c_message_init(entry_desc, kv);
    kv->key = xstrdup(key);
    kv->value = xstrdup(value);
    m->entries = xrealloc(m->entries, (m->n + 1) * sizeof(*m->entries));
    m->entries[m->n++] = kv;
}

void cli_map_free(cli_map *m)
{
    for (size_t i = 0; i < m->n; i++) {
        free(m->entries[i]->key);
        free(m->entries[i]->value);
        free(m->entries[i]);
    }
    free(m->entries);
    m->entries = NULL;
    m->n = 0;
}

int cli_labels_to_map(const cli_command *cmd, const char *long_name, const cli_list *specs,
                      const ProtobufCMessageDescriptor *entry_desc, cli_map *m)
{
    for (size_t i = 0; i < specs->n; i++) {
        _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
        _cleanup_free_ char *k = NULL, *v = NULL;
        if (cli_parse_label(specs->items[i], &k, &v, &err) < 0)
            return cli_invalid_value(cmd, long_name, specs->items[i], err.message);
        cli_map_set(m, entry_desc, k, v);
    }
    return 0;
}

bool cli_confirm(cli_ctx *ctx, const char *warning)
{
    if (!isatty(STDIN_FILENO)) {
        fprintf(stderr, "%s\n", warning);
        cli_fail(ctx, 1,
                 "not asking for confirmation because stdin is not a terminal; "
                 "pass -f/--force to proceed without it.");
        return false;
    }
    fprintf(stderr, "%s\nAre you sure you want to continue? [y/N] ", warning);
    fflush(stderr);
    char line[64];
    if (!fgets(line, sizeof(line), stdin))
        return false;
    return !strcmp(line, "y\n") || !strcmp(line, "Y\n") || !strcmp(line, "yes\n") ||
           !strcmp(line, "YES\n") || !strcmp(line, "Yes\n");
}

int cli_format_or_error(const cli_command *cmd, const char *format, int *exit_code)
{
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    int r = cli_parse_format(format, &err);
    if (r < 0 && cli_format_is_template(format)) {
        fprintf(stderr, "%s\n", err.message); /* Docker's words, as it prints them */
        *exit_code = cli_error_exit(cmd);
    } else if (r < 0) {
        *exit_code = cli_invalid_value(cmd, "format", format, err.message);
    }
    return r;
}

int cli_parse_with_format(const cli_command *cmd, int argc, char **argv, cli_parsed *p,
                          const char *const *format, int *exit_code)
{
    if (!cli_parse_or_exit(cmd, argc, argv, p, exit_code))
        return -1;
    return cli_format_or_error(cmd, *format, exit_code);
}
