/* hypr compose: up, down, ps, logs, ls. The CLI only finds and reads the
 * compose file; the daemon parses it and deploys the stack. */
#define LOG_MODULE "cli"
#include "cli/cmd.h"
#include "compose/compose.h"

#include <string.h>
#include <time.h>

extern char **environ;

/* Compose-level options, shared by the subcommands (handlers take no extra args). */
static struct {
    cli_list files;
    const char *project;
    const char *project_dir;
    cli_list env_files;
    cli_list profiles;
} copts;

static char **list_strv(const cli_list *l)
{
    char **v = NULL;
    for (size_t i = 0; i < l->n; i++)
        v = strv_append(v, l->items[i]);
    return v;
}

/* The loader's options from the global flags; free with compose_options_clear. */
static void compose_options_from_flags(compose_options *o, bool check_files)
{
    *o = (compose_options){
        .files = list_strv(&copts.files),
        .project_name = copts.project,
        .project_dir = copts.project_dir,
        .env_files = list_strv(&copts.env_files),
        .profiles = list_strv(&copts.profiles),
        .check_files = check_files,
    };
}

static void compose_options_clear(compose_options *o)
{
    strv_free(o->files);
    strv_free(o->env_files);
    strv_free(o->profiles);
}

static int load_project(compose_project **p, bool check_files, hypr_error *err)
{
    compose_options o;
    compose_options_from_flags(&o, check_files);
    int r = compose_load(&o, p, err);
    compose_options_clear(&o);
    return r;
}

/* The project name for commands that do not need the file (down, ps, logs):
 * a missing file is fine when -p or COMPOSE_PROJECT_NAME names the project. */
static int resolve_project(char **name, hypr_error *err)
{
    const char *env = getenv("COMPOSE_PROJECT_NAME");
    if (str_empty(copts.project) && !str_empty(env)) {
        *name = compose_normalize_project_name(env);
        return 0;
    }
    if (!str_empty(copts.project) && copts.files.n == 0) {
        if (!name_is_valid(copts.project))
            return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                            "invalid project name \"%s\": use [a-zA-Z0-9][a-zA-Z0-9_.-]*",
                            copts.project);
        *name = xstrdup(copts.project);
        return 0;
    }
    _cleanup_compose_project_ compose_project *p = NULL;
    if (load_project(&p, false, err) < 0)
        return -EINVAL;
    *name = xstrdup(p->name);
    return 0;
}

static int stream_stack_logs(cli_ctx *ctx, const char *stack, const char *service, bool follow,
                             int32_t tail, bool timestamps)
{
    /* Pad prefixes to the longest service name, like docker compose. */
    size_t width = 0;
    Hypr__V1__GetStackRequest greq = HYPR__V1__GET_STACK_REQUEST__INIT;
    greq.name = (char *)stack;
    _cleanup_pb_ Hypr__V1__GetStackResponse *g = NULL;
    _cleanup_error_ hypr_error gerr = HYPR_ERROR_INIT;
    if (cli_unary_err(ctx, RPC_METHOD("GetStack"), &greq, &hypr__v1__get_stack_response__descriptor,
                      &g, &gerr) == 0 &&
        g->stack)
        for (size_t i = 0; i < g->stack->n_services; i++)
            if (strlen(g->stack->services[i]->name) > width)
                width = strlen(g->stack->services[i]->name);

    Hypr__V1__StreamStackServiceLogsRequest req = HYPR__V1__STREAM_STACK_SERVICE_LOGS_REQUEST__INIT;
    req.stack = (char *)stack;
    if (service)
        req.service = (char *)service;
    req.follow = follow;
    req.tail = tail;
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    _cleanup_stream_ rpc_stream *s = NULL;
    if (cli_open_stream(ctx, RPC_METHOD("StreamStackServiceLogs"), &req, &s, &err) < 0)
        return cli_fail_with(ctx, 1, &err);
    /* Services interleave: hold each service's partial line until its newline
     * arrives, so every printed line carries the right prefix. */
    typedef struct {
        char *service;
        hypr_buf partial[2]; /* stdout, stderr */
    } svc_state;
    svc_state *states = NULL;
    size_t nstates = 0;
    int rc = 0;
    for (;;) {
        _cleanup_pb_ Hypr__V1__StackLogEntry *e = NULL;
        int r = rpc_stream_recv(s, &hypr__v1__stack_log_entry__descriptor, (ProtobufCMessage **)&e,
                                -1, &err);
        if (r == 0)
            break;
        if (r < 0) {
            rc = cli_fail_with(ctx, 1, &err);
            break;
        }
        if (!e->entry || !strcmp(e->entry->stream, "console"))
            continue;
        svc_state *st = NULL;
        for (size_t i = 0; i < nstates; i++)
            if (!strcmp(states[i].service, e->service))
                st = &states[i];
        if (!st) {
            states = xrealloc(states, (nstates + 1) * sizeof(*states));
            st = &states[nstates++];
            *st = (svc_state){.service = xstrdup(e->service)};
        }
        int which = !strcmp(e->entry->stream, "stderr");
        hypr_buf *b = &st->partial[which];
        buf_append(b, e->entry->data.data, e->entry->data.len);
        size_t done = 0;
        for (char *nl; (nl = memchr(b->data + done, '\n', b->len - done));) {
            size_t n = (size_t)(nl - (b->data + done)) + 1;
            Hypr__V1__LogEntry line = *e->entry;
            line.data.data = (uint8_t *)b->data + done;
            line.data.len = n;
            bool start[2] = {true, true};
            _cleanup_free_ char *prefix = xasprintf("%-*s | ", (int)width, e->service);
            if (cli_write_log_entry(&line, timestamps, false, prefix, start) < 0) {
                rc = errno == EPIPE ? 0 : 1;
                goto out;
            }
            done += n;
        }
        buf_consume(b, done);
    }
    /* The stream is over: what is left has no newline; print it with one. */
    for (size_t i = 0; i < nstates; i++)
        for (int w = 0; w < 2; w++)
            if (states[i].partial[w].len) {
                FILE *f = w ? stderr : stdout;
                fprintf(f, "%-*s | %.*s\n", (int)width, states[i].service,
                        (int)states[i].partial[w].len, states[i].partial[w].data);
            }
out:
    for (size_t i = 0; i < nstates; i++) {
        free(states[i].service);
        buf_free(&states[i].partial[0]);
        buf_free(&states[i].partial[1]);
    }
    free(states);
    return rc;
}

static int compose_up(cli_ctx *ctx, int argc, char **argv)
{
    bool detach = false;
    const cli_option opts[] = {
        CLI_BOOL('d', "detach", &detach, "Detached mode: Run VMs in the background"),
        CLI_OPTIONS_END,
    };
    const cli_command cmd = {
        .name = ctx->cmdpath,
        .usage = "[OPTIONS]",
        .description = "Create and start VMs for the services of the compose file",
        .options = opts,
        .max_args = 0,
        .notes = "Without -d, the services' logs are followed; Ctrl-C detaches and leaves the\n"
                 "stack running ('hypr compose down' removes it).",
    };
    _cleanup_parsed_ cli_parsed p = {0};
    int ec;
    if (!cli_parse_or_exit(&cmd, argc, argv, &p, &ec))
        return ec;
    _cleanup_compose_project_ compose_project *proj = NULL;
    if (load_project(&proj, true, &ctx->err) < 0)
        return 1;
    const char *name = proj->name;
    /* One file goes as it is (the daemon interpolates it with our environment);
     * several go merged, as the normalised model. */
    _cleanup_free_ char *yaml = NULL;
    size_t len = 0;
    if (strv_length(proj->files) == 1) {
        int r = read_file(proj->files[0], COMPOSE_FILE_MAX, &yaml, &len);
        if (r < 0)
            return cli_fail(ctx, 1, "read %s: %s", proj->files[0], strerror(-r));
    } else {
        yaml = compose_to_yaml(proj);
        len = strlen(yaml);
    }
    Hypr__V1__DeployStackRequest req = HYPR__V1__DEPLOY_STACK_REQUEST__INIT;
    req.name = (char *)name;
    req.compose_yaml.data = (uint8_t *)yaml;
    req.compose_yaml.len = len;
    req.project_dir = proj->workdir;
    /* The daemon interpolates ${VAR} from the environment compose would see: ours. */
    _cleanup_map_ cli_map env = {0};
    for (char **e = environ; e && *e; e++) {
        const char *eq = strchr(*e, '=');
        if (!eq || eq == *e)
            continue;
        _cleanup_free_ char *k = xstrndup(*e, (size_t)(eq - *e));
        cli_map_set(&env, &hypr__v1__deploy_stack_request__env_entry__descriptor, k, eq + 1);
    }
    req.env = (Hypr__V1__DeployStackRequest__EnvEntry **)env.entries;
    req.n_env = env.n;
    if (!cli_connect(ctx))
        return 1;
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    _cleanup_stream_ rpc_stream *s = NULL;
    if (cli_open_stream(ctx, RPC_METHOD("DeployStack"), &req, &s, &err) < 0)
        return cli_fail_with(ctx, 1, &err);
    bool failed = false;
    for (;;) {
        _cleanup_pb_ Hypr__V1__DeployStackEvent *ev = NULL;
        int r = rpc_stream_recv(s, &hypr__v1__deploy_stack_event__descriptor,
                                (ProtobufCMessage **)&ev, -1, &err);
        if (r == 0)
            break;
        if (r < 0)
            return cli_fail_with(ctx, 1, &err);
        const char *svc = str_empty(ev->service) ? name : ev->service;
        if (!str_empty(ev->error)) {
            fprintf(stderr, " ✘ %s  Error: %s\n", svc, ev->error);
            failed = true;
        } else if (!str_empty(ev->message)) {
            fprintf(stderr, " ✔ %s  %s\n", svc, ev->message);
        }
    }
    if (failed)
        return 1;
    if (detach)
        return 0;
    fprintf(stderr, "Attaching to %s (Ctrl-C to detach)\n", name);
    return stream_stack_logs(ctx, name, NULL, true, -1, false);
}

static int compose_down(cli_ctx *ctx, int argc, char **argv)
{
    bool volumes = false;
    const cli_option opts[] = {
        CLI_BOOL('v', "volumes", &volumes, "Remove named volumes declared in the compose file"),
        CLI_OPTIONS_END,
    };
    const cli_command cmd = {
        .name = ctx->cmdpath,
        .usage = "[OPTIONS]",
        .description = "Stop and remove the stack's VMs and networks",
        .options = opts,
        .max_args = 0,
    };
    _cleanup_parsed_ cli_parsed p = {0};
    int ec;
    if (!cli_parse_or_exit(&cmd, argc, argv, &p, &ec))
        return ec;
    _cleanup_free_ char *name = NULL;
    if (resolve_project(&name, &ctx->err) < 0)
        return 1;
    Hypr__V1__DestroyStackRequest req = HYPR__V1__DESTROY_STACK_REQUEST__INIT;
    req.name = name;
    req.remove_volumes = volumes;
    _cleanup_pb_ Hypr__V1__DestroyStackResponse *resp = NULL;
    if (cli_unary(ctx, RPC_METHOD("DestroyStack"), &req,
                  &hypr__v1__destroy_stack_response__descriptor, &resp) < 0)
        return 1;
    fprintf(stderr, " ✔ Stack %s  Removed\n", name);
    return 0;
}

static json_t *service_json(const void *item, const cli_view_opts *o)
{
    const Hypr__V1__StackService *svc = item;
    _cleanup_free_ char *ports = ports_text(svc->ports, svc->n_ports);
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "Service", svc->name, "ID", svc->vm_id,
                     "Image", svc->image, "Status", svc->status, "IPAddress", svc->ip_address,
                     "Ports", ports);
}

/* -q prints full VM IDs (the table shows them short). */
static char *service_vm_id(const void *item, const cli_view_opts *o)
{
    return xstrdup(((const Hypr__V1__StackService *)item)->vm_id);
}

static void service_row(cli_table *t, const void *item, const cli_view_opts *o)
{
    const Hypr__V1__StackService *svc = item;
    _cleanup_free_ char *id = short_id(svc->vm_id, true);
    _cleanup_free_ char *ports = ports_text(svc->ports, svc->n_ports);
    table_add(t, svc->name, id, svc->image, svc->status, svc->ip_address, ports);
}

static int compose_ps(cli_ctx *ctx, int argc, char **argv)
{
    const char *format = NULL;
    bool quiet = false;
    const cli_option opts[] = {
        CLI_STRING(0, "format", "string", &format,
                   "Format output: table (default), a Go template, or json (a JSON array; keys "
                   "Service, ID, "
                   "Image, Status, IPAddress, Ports)"),
        CLI_BOOL('q', "quiet", &quiet, "Only display IDs"),
        CLI_OPTIONS_END,
    };
    const cli_command cmd = {
        .name = ctx->cmdpath,
        .usage = "[OPTIONS]",
        .description = "List the stack's services and their VMs",
        .options = opts,
        .max_args = 0,
    };
    _cleanup_parsed_ cli_parsed p = {0};
    int ec;
    int json = cli_parse_with_format(&cmd, argc, argv, &p, &format, &ec);
    if (json < 0)
        return ec;
    _cleanup_free_ char *name = NULL;
    if (resolve_project(&name, &ctx->err) < 0)
        return 1;
    _cleanup_pb_ Hypr__V1__GetStackResponse *resp = NULL;
    if (cli_call_ref(ctx, "GetStack", "name", name, false, &resp) < 0)
        return 1;
    static const char *const header[] = {"SERVICE", "VM ID", "IMAGE", "STATUS", "IP", "PORTS"};
    static const cli_view view = {service_json, service_vm_id, ARRAY_SIZE(header), header,
                                  service_row};
    const cli_view_opts o = {.format = format};
    size_t n = resp->stack ? resp->stack->n_services : 0;
    return cli_print_items(ctx, n ? (void **)resp->stack->services : NULL, n, &view, json, quiet,
                           &o);
}

static int compose_logs(cli_ctx *ctx, int argc, char **argv)
{
    bool follow = false, timestamps = false;
    const char *tail = "all";
    const cli_option opts[] = {
        CLI_BOOL('f', "follow", &follow, "Follow log output"),
        CLI_STRING('n', "tail", "string", &tail,
                   "Number of lines to show from the end (default \"all\")"),
        CLI_BOOL('t', "timestamps", &timestamps, "Show timestamps"),
        CLI_OPTIONS_END,
    };
    const cli_command cmd = {
        .name = ctx->cmdpath,
        .usage = "[OPTIONS] [SERVICE]",
        .description = "View output from the stack's services",
        .options = opts,
        .max_args = 1,
    };
    _cleanup_parsed_ cli_parsed p = {0};
    int ec;
    if (!cli_parse_or_exit(&cmd, argc, argv, &p, &ec))
        return ec;
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    int32_t t;
    if (cli_parse_tail(tail, &t, &err) < 0)
        return cli_invalid_value(&cmd, "tail", tail, err.message);
    _cleanup_free_ char *name = NULL;
    if (resolve_project(&name, &ctx->err) < 0)
        return 1;
    if (!cli_connect(ctx))
        return 1;
    return stream_stack_logs(ctx, name, p.nargs ? p.args[0] : NULL, follow, t, timestamps);
}

static const cli_resource stack_resource = {
    .get_rpc = "GetStack",
    .list_rpc = "ListStacks",
    .ref_field = "name",
    .item_field = "stack",
    .list_field = "stacks",
};

static json_t *stack_json(const void *item, const cli_view_opts *o)
{
    const Hypr__V1__Stack *st = item;
    return json_pack("{s:s, s:s, s:s, s:I, s:s, s:o}", "Name", st->name, "ID", st->id, "Status",
                     st->status, "Services", (json_int_t)st->n_services, "ConfigFile",
                     st->compose_file, "CreatedAt", json_time(st->created_at));
}

static void stack_row(cli_table *t, const void *item, const cli_view_opts *o)
{
    const Hypr__V1__Stack *st = item;
    _cleanup_free_ char *n = xasprintf("%zu", st->n_services);
    table_add(t, st->name, st->status, n, st->compose_file);
}

static int compose_ls(cli_ctx *ctx, int argc, char **argv)
{
    static const char *const header[] = {"NAME", "STATUS", "SERVICES", "CONFIG FILE"};
    static const cli_ls_spec spec = {
        .resource = &stack_resource,
        .description = "List stacks",
        .format_help = "Format output: table (default) or json",
        .view = {stack_json, NULL, ARRAY_SIZE(header), header, stack_row},
    };
    return cli_ls_command(ctx, argc, argv, &spec);
}

/* Runs locally: the loader's normalised model, or parts of it. */
static int compose_config(cli_ctx *ctx, int argc, char **argv)
{
    const char *format = "yaml";
    bool services = false, volumes = false, images = false, quiet = false;
    const cli_option opts[] = {
        CLI_STRING(0, "format", "string", &format, "Format the output: yaml (default) or json"),
        CLI_BOOL('q', "quiet", &quiet, "Only validate the configuration, print nothing"),
        CLI_BOOL(0, "services", &services, "Print the service names, one per line"),
        CLI_BOOL(0, "volumes", &volumes, "Print the volume names, one per line"),
        CLI_BOOL(0, "images", &images, "Print the service images, one per line"),
        CLI_OPTIONS_END,
    };
    const cli_command cmd = {
        .name = ctx->cmdpath,
        .usage = "[OPTIONS]",
        .description = "Parse, resolve and render the compose file in canonical format",
        .options = opts,
        .max_args = 0,
        .notes = "Runs without the daemon. Files the model refers to (env_file, bind sources)\n"
                 "need not exist.",
    };
    _cleanup_parsed_ cli_parsed p = {0};
    int ec;
    if (!cli_parse_or_exit(&cmd, argc, argv, &p, &ec))
        return ec;
    if (strcmp(format, "yaml") && strcmp(format, "json"))
        return cli_invalid_value(&cmd, "format", format, "use yaml or json");
    _cleanup_compose_project_ compose_project *proj = NULL;
    if (load_project(&proj, false, &ctx->err) < 0)
        return 1;
    if (quiet)
        return 0;
    _cleanup_free_ char *out = services                  ? compose_list_services(proj)
                               : volumes                 ? compose_list_volumes(proj)
                               : images                  ? compose_list_images(proj)
                               : !strcmp(format, "json") ? compose_to_json(proj)
                                                         : compose_to_yaml(proj);
    fputs(out, stdout);
    return fflush(stdout) == 0 ? 0 : 1;
}

int cmd_compose(cli_ctx *ctx, int argc, char **argv)
{
    static const cli_subcommand subs[] = {
        {"config", NULL, "Parse, resolve and render the compose file", compose_config},
        {"down", NULL, "Stop and remove the stack", compose_down},
        {"logs", NULL, "View output from the services", compose_logs},
        {"ls", "list", "List running stacks", compose_ls},
        {"ps", NULL, "List the stack's VMs", compose_ps},
        {"up", NULL, "Create and start the stack", compose_up},
    };
    const cli_option opts[] = {
        CLI_LIST('f', "file", "stringArray", &copts.files,
                 "Compose configuration files, merged in order (default: hypr-compose.yml, "
                 "Hyprfile, compose.yaml, docker-compose.yml, ... here or in a parent)"),
        CLI_STRING('p', "project-name", "string", &copts.project,
                   "Project name (default: COMPOSE_PROJECT_NAME, the file's name:, or the "
                   "project directory's name)"),
        CLI_STRING(0, "project-directory", "string", &copts.project_dir,
                   "Alternate working directory (default: the first file's directory)"),
        CLI_LIST(0, "env-file", "stringArray", &copts.env_files,
                 "Alternate environment files (default: .env in the project directory)"),
        CLI_LIST(0, "profile", "stringArray", &copts.profiles,
                 "Profiles to enable (default: COMPOSE_PROFILES)"),
        CLI_OPTIONS_END,
    };
    _cleanup_buf_ hypr_buf notes = {0};
    buf_puts(&notes, "Commands:\n");
    for (size_t i = 0; i < ARRAY_SIZE(subs); i++)
        buf_printf(&notes, "  %-11s %s\n", subs[i].name, subs[i].summary);
    buf_printf(&notes, "\nRun '%s COMMAND --help' for more information on a command.",
               ctx->cmdpath);
    const cli_command cmd = {
        .name = ctx->cmdpath,
        .usage = "[OPTIONS] COMMAND",
        .description = "Define and run multi-VM applications",
        .options = opts,
        .max_args = -1,
        .stop_at_positional = true,
        .notes = notes.data,
    };
    _cleanup_parsed_ cli_parsed p = {0};
    int ec;
    bool ok = cli_parse_or_exit(&cmd, argc, argv, &p, &ec);
    if (ok && p.nargs == 0) {
        cli_print_help(&cmd, stdout);
        ec = 0;
    } else if (ok) {
        int first = 1;
        while (first < argc && argv[first] != p.args[0])
            first++;
        const cli_subcommand *sub = cli_find_subcommand(subs, ARRAY_SIZE(subs), argv[first]);
        if (!sub) {
            fprintf(stderr, "%s: '%s' is not a %s command.\nSee '%s --help'.\n", ctx->cmdpath,
                    argv[first], ctx->cmdpath, ctx->cmdpath);
            ec = 1;
        } else {
            ec = cli_run_subcommand(ctx, sub, argv[first], argc - first, argv + first);
        }
    }
    cli_list_free(&copts.files);
    cli_list_free(&copts.env_files);
    cli_list_free(&copts.profiles);
    return ec;
}
