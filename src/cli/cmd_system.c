/* System commands: health, version, info, system df/prune/info. */
#define LOG_MODULE "cli"
#include "cli/cmd.h"

#include <string.h>
#include <sys/utsname.h>
#include <time.h>

/* The commands here take no arguments. False: return *ec (help shown, or a usage error). */
static bool parse_no_args(cli_ctx *ctx, cli_command *cmd, const char *desc, const cli_option *opts,
                          int argc, char **argv, int *ec)
{
    *cmd = (cli_command){.name = ctx->cmdpath,
                         .usage = opts ? "[OPTIONS]" : "",
                         .description = desc,
                         .options = opts,
                         .max_args = 0};
    _cleanup_parsed_ cli_parsed p = {0};
    return cli_parse_or_exit(cmd, argc, argv, &p, ec);
}

/* The host's memory and disk, as info and df print them. */
typedef struct host_sizes {
    char mem[32], avail[32], disk[32], dfree[32], used[32];
} host_sizes;

static void format_host_sizes(const Hypr__V1__GetSystemStatsResponse *s, host_sizes *h)
{
    format_size(s->host_memory_total_bytes, h->mem, sizeof(h->mem));
    format_size(s->host_memory_available_bytes, h->avail, sizeof(h->avail));
    format_size(s->disk_total_bytes, h->disk, sizeof(h->disk));
    format_size(s->disk_free_bytes, h->dfree, sizeof(h->dfree));
    format_size(s->disk_used_by_hypr_bytes, h->used, sizeof(h->used));
}

int cmd_health(cli_ctx *ctx, int argc, char **argv)
{
    const char *format = NULL;
    const cli_option opts[] = {
        CLI_STRING(0, "format", "string", &format,
                   "Format output: text (default) or json (keys Status, Version, UptimeSeconds, "
                   "StartedAt)"),
        CLI_OPTIONS_END,
    };
    cli_command cmd;
    int ec;
    if (!parse_no_args(ctx, &cmd, "Check that the daemon is up", opts, argc, argv, &ec))
        return ec;
    int json = format && !strcmp(format, "text") ? 0 : cli_format_or_error(&cmd, format, &ec);
    if (json < 0)
        return ec;
    _cleanup_pb_ Hypr__V1__HealthResponse *h = NULL;
    if (cli_call(ctx, "Health", NULL, &h) < 0)
        return 1;
    if (json) {
        _cleanup_json_ json_t *o = json_pack(
            "{s:s, s:s, s:I, s:o}", "Status", h->status, "Version", h->version, "UptimeSeconds",
            (json_int_t)h->uptime_seconds, "StartedAt", json_time(h->started_at));
        cli_print_json(o);
    } else {
        char up[64];
        cli_human_duration(h->uptime_seconds, up, sizeof(up));
        printf("Status: %s\nVersion: %s\nUptime: %s\n", h->status, h->version, up);
    }
    return strcmp(h->status, "healthy") ? 1 : 0;
}

static void print_client_version(cli_ctx *ctx)
{
    struct utsname u;
    uname(&u);
    /* OCI platform names, as docker version shows them. */
    const char *arch = !strcmp(u.machine, "x86_64")    ? "amd64"
                       : !strcmp(u.machine, "aarch64") ? "arm64"
                                                       : u.machine;
    printf("Client:\n Version:     %s\n OS/Arch:     linux/%s\n Host:        %s\n", HYPR_VERSION,
           arch, ctx->display);
}

int cmd_version(cli_ctx *ctx, int argc, char **argv)
{
    cli_command cmd;
    int ec;
    if (!parse_no_args(ctx, &cmd, "Show the hypr version information", NULL, argc, argv, &ec))
        return ec;
    print_client_version(ctx);
    fflush(stdout);
    _cleanup_pb_ Hypr__V1__HealthResponse *h = NULL;
    if (cli_call(ctx, "Health", NULL, &h) < 0)
        return 1;
    char up[64];
    cli_human_duration(h->uptime_seconds, up, sizeof(up));
    printf("\nServer:\n Version:     %s\n Status:      %s\n Uptime:      %s\n", h->version,
           h->status, up);
    return 0;
}

int cmd_info(cli_ctx *ctx, int argc, char **argv)
{
    cli_command cmd;
    int ec;
    if (!parse_no_args(ctx, &cmd, "Display system-wide information", NULL, argc, argv, &ec))
        return ec;
    _cleanup_pb_ Hypr__V1__HealthResponse *h = NULL;
    _cleanup_pb_ Hypr__V1__GetSystemStatsResponse *s = NULL;
    if (cli_call(ctx, "Health", NULL, &h) < 0 || cli_call(ctx, "GetSystemStats", NULL, &s) < 0)
        return 1;
    host_sizes hs;
    format_host_sizes(s, &hs);
    printf("Client:\n Version:    %s\n Host:       %s\n\n", HYPR_VERSION, ctx->display);
    printf("Server:\n VMs: %u\n  Running: %u\n  Stopped: %u\n Images: %u\n Networks: %u\n"
           " Volumes: %u\n Stacks: %u\n Server Version: %s\n CPUs: %u\n Total Memory: %s "
           "(%s available)\n Hypr Root Dir: %s\n Disk: %s (%s free, %s used by hypr)\n",
           s->vms_total, s->vms_running, s->vms_total - s->vms_running, s->images, s->networks,
           s->volumes, s->stacks, h->version, s->host_cpus, hs.mem, hs.avail, s->data_dir, hs.disk,
           hs.dfree, hs.used);
    return 0;
}

/* ---- system df ------------------------------------------------------------ */

static int system_df(cli_ctx *ctx, int argc, char **argv)
{
    const char *format = NULL;
    const cli_option opts[] = {
        CLI_STRING(0, "format", "string", &format,
                   "Format output: table (default) or json (the daemon's counters, "
                   "lowerCamel keys)"),
        CLI_OPTIONS_END,
    };
    cli_command cmd;
    int ec;
    if (!parse_no_args(ctx, &cmd, "Show hypr disk usage", opts, argc, argv, &ec))
        return ec;
    int json = cli_format_or_error(&cmd, format, &ec);
    if (json < 0)
        return ec;
    _cleanup_pb_ Hypr__V1__GetSystemStatsResponse *s = NULL;
    if (cli_call(ctx, "GetSystemStats", NULL, &s) < 0)
        return 1;
    if (json) {
        json_t *o = json_object();
        json_object_set_new(o, "hostCpus", json_integer(s->host_cpus));
        json_object_set_new(o, "hostMemoryTotalBytes",
                            json_integer((json_int_t)s->host_memory_total_bytes));
        json_object_set_new(o, "hostMemoryAvailableBytes",
                            json_integer((json_int_t)s->host_memory_available_bytes));
        json_object_set_new(o, "diskTotalBytes", json_integer((json_int_t)s->disk_total_bytes));
        json_object_set_new(o, "diskFreeBytes", json_integer((json_int_t)s->disk_free_bytes));
        json_object_set_new(o, "diskUsedByHyprBytes",
                            json_integer((json_int_t)s->disk_used_by_hypr_bytes));
        json_object_set_new(o, "vmsTotal", json_integer(s->vms_total));
        json_object_set_new(o, "vmsRunning", json_integer(s->vms_running));
        json_object_set_new(o, "images", json_integer(s->images));
        json_object_set_new(o, "networks", json_integer(s->networks));
        json_object_set_new(o, "volumes", json_integer(s->volumes));
        json_object_set_new(o, "stacks", json_integer(s->stacks));
        json_object_set_new(o, "imagesSizeBytes", json_integer((json_int_t)s->images_size_bytes));
        json_object_set_new(o, "volumesSizeBytes", json_integer((json_int_t)s->volumes_size_bytes));
        json_object_set_new(o, "logsSizeBytes", json_integer((json_int_t)s->logs_size_bytes));
        json_object_set_new(o, "dataDir", json_string(s->data_dir));
        cli_print_json(o);
        json_decref(o);
        return 0;
    }
    char isz[32], vsz[32], lsz[32];
    format_size(s->images_size_bytes, isz, sizeof(isz));
    format_size(s->volumes_size_bytes, vsz, sizeof(vsz));
    format_size(s->logs_size_bytes, lsz, sizeof(lsz));
    _cleanup_free_ char *ni = xasprintf("%u", s->images), *nv = xasprintf("%u", s->vms_total),
                        *nr = xasprintf("%u", s->vms_running), *nvol = xasprintf("%u", s->volumes);
    _cleanup_table_ cli_table t = {0};
    table_init(&t, 4, "TYPE", "TOTAL", "ACTIVE", "SIZE");
    table_add(&t, "Images", ni, "-", isz);
    table_add(&t, "VMs", nv, nr, "-");
    table_add(&t, "Volumes", nvol, "-", vsz);
    table_add(&t, "Logs", "-", "-", lsz);
    table_print(&t, stdout);
    host_sizes hs;
    format_host_sizes(s, &hs);
    printf("\nHost: %u CPUs, %s memory (%s available); disk %s (%s free); hypr uses %s in %s\n",
           s->host_cpus, hs.mem, hs.avail, hs.disk, hs.dfree, hs.used, s->data_dir);
    return 0;
}

/* ---- system prune --------------------------------------------------------- */

static bool vm_is_stopped(const void *item, void *userdata)
{
    const Hypr__V1__VM *vm = item;
    return vm->status == HYPR__V1__VMSTATUS__VM_STATUS_STOPPED ||
           vm->status == HYPR__V1__VMSTATUS__VM_STATUS_FAILED ||
           vm->status == HYPR__V1__VMSTATUS__VM_STATUS_CREATED;
}

static void print_vm_id(const void *item, void *userdata)
{
    printf("%s\n", ((const Hypr__V1__VM *)item)->id);
}

static int prune_vms(cli_ctx *ctx)
{
    static const cli_prune_rule rule = {&cli_vm_resource, "Deleted VMs:", vm_is_stopped,
                                        print_vm_id};
    Hypr__V1__ListVmsRequest req = HYPR__V1__LIST_VMS_REQUEST__INIT;
    req.all = true;
    _cleanup_pb_ ProtobufCMessage *resp = NULL;
    void **vms;
    size_t n;
    if (cli_list_resources(ctx, &cli_vm_resource, &req, &resp, &vms, &n) < 0)
        return 1;
    return cli_prune_items(ctx, &rule, vms, n, NULL);
}

static int system_prune(cli_ctx *ctx, int argc, char **argv)
{
    bool all = false, force = false, volumes = false;
    const cli_option opts[] = {
        CLI_BOOL('a', "all", &all, "Remove all unused images not just dangling ones"),
        CLI_BOOL('f', "force", &force, "Do not prompt for confirmation"),
        CLI_BOOL(0, "volumes", &volumes, "Prune volumes"),
        CLI_OPTIONS_END,
    };
    cli_command cmd;
    int ec;
    if (!parse_no_args(ctx, &cmd, "Remove unused data", opts, argc, argv, &ec))
        return ec;
    _cleanup_free_ char *warning = xasprintf(
        "WARNING! This will remove:\n  - all stopped VMs\n  - all networks not used by "
        "at least one VM\n%s  - %s\n",
        volumes ? "  - all volumes not used by at least one VM\n" : "",
        all ? "all images without at least one VM associated to them" : "all dangling images");
    if (!cli_prune_confirmed(ctx, force, warning))
        return 1;
    uint64_t reclaimed = 0;
    int rc = prune_vms(ctx);
    rc |= cli_prune_networks(ctx);
    if (volumes)
        rc |= cli_prune_volumes(ctx, &reclaimed);
    rc |= cli_prune_images(ctx, all, &reclaimed);
    cli_print_reclaimed(reclaimed);
    return rc;
}

/* ---- system settings --------------------------------------------------------- */

static void print_settings(Hypr__V1__Setting **items, size_t n, int json)
{
    _cleanup_json_ json_t *a = json_array();
    _cleanup_table_ cli_table t = {0};
    table_init(&t, 4, "KEY", "VALUE", "DEFAULT", "DESCRIPTION");
    for (size_t i = 0; i < n; i++) {
        const Hypr__V1__Setting *it = items[i];
        json_array_append_new(a, json_pack("{s:s, s:s, s:s, s:s}", "Key", it->key, "Value",
                                           it->value, "Default", it->default_value, "Description",
                                           it->description));
        table_add(&t, it->key, it->value, it->default_value, it->description);
    }
    if (json)
        cli_print_json(a);
    else
        table_print(&t, stdout);
}

static int settings_set(cli_ctx *ctx, int argc, char **argv)
{
    cli_command cmd = {
        .name = ctx->cmdpath,
        .usage = "KEY=VALUE [KEY=VALUE...]",
        .description = "Change daemon settings (all are checked first; none changes on an error)",
        .min_args = 1,
        .max_args = -1,
    };
    _cleanup_parsed_ cli_parsed p = {0};
    int ec;
    if (!cli_parse_or_exit(&cmd, argc, argv, &p, &ec))
        return ec;
    Hypr__V1__UpdateSettingsRequest req = HYPR__V1__UPDATE_SETTINGS_REQUEST__INIT;
    Hypr__V1__UpdateSettingsRequest__SettingsEntry *entries =
        xcalloc((size_t)p.nargs, sizeof(*entries));
    Hypr__V1__UpdateSettingsRequest__SettingsEntry **ptrs = xcalloc((size_t)p.nargs, sizeof(*ptrs));
    _cleanup_strv_ char **keys = NULL;
    int rc = 0;
    for (int i = 0; i < p.nargs && rc == 0; i++) {
        const char *eq = strchr(p.args[i], '=');
        if (!eq || eq == p.args[i]) {
            fprintf(stderr, "%s: invalid argument \"%s\": expected KEY=VALUE\nSee '%s --help'.\n",
                    cmd.name, p.args[i], cmd.name);
            rc = 1;
            break;
        }
        keys = strv_append(keys, "");
        free(keys[i]);
        keys[i] = xstrndup(p.args[i], (size_t)(eq - p.args[i]));
        hypr__v1__update_settings_request__settings_entry__init(&entries[i]);
        entries[i].key = keys[i];
        entries[i].value = (char *)eq + 1;
        ptrs[i] = &entries[i];
    }
    if (rc == 0) {
        req.n_settings = (size_t)p.nargs;
        req.settings = ptrs;
        _cleanup_pb_ Hypr__V1__UpdateSettingsResponse *resp = NULL;
        rc = cli_call(ctx, "UpdateSettings", &req, &resp) < 0 ? 1 : 0;
        for (int i = 0; rc == 0 && i < p.nargs; i++)
            printf("%s\n", keys[i]);
    }
    free(ptrs);
    free(entries);
    return rc;
}

static int system_settings(cli_ctx *ctx, int argc, char **argv)
{
    static const cli_subcommand set = {"set", NULL, "Change daemon settings", settings_set};
    if (argc > 1 && strcmp(argv[1], "set") == 0)
        return cli_run_subcommand(ctx, &set, "set", argc - 1, argv + 1);
    const char *format = NULL;
    const cli_option opts[] = {
        CLI_STRING(0, "format", "string", &format,
                   "Format output: table (default) or json (keys Key, Value, Default, "
                   "Description)"),
        CLI_OPTIONS_END,
    };
    cli_command cmd = {
        .name = ctx->cmdpath,
        .usage = "[OPTIONS] | set KEY=VALUE...",
        .description = "List the daemon's settings with their values and defaults "
                       "('set KEY=VALUE...' changes them)",
        .options = opts,
        .max_args = 0,
    };
    _cleanup_parsed_ cli_parsed p = {0};
    int ec;
    int json = cli_parse_with_format(&cmd, argc, argv, &p, &format, &ec);
    if (json < 0)
        return ec;
    _cleanup_pb_ Hypr__V1__GetSettingsResponse *resp = NULL;
    if (cli_call(ctx, "GetSettings", NULL, &resp) < 0)
        return 1;
    print_settings(resp->settings, resp->n_settings, json);
    return 0;
}

int cmd_system(cli_ctx *ctx, int argc, char **argv)
{
    static const cli_subcommand subs[] = {
        {"df", NULL, "Show hypr disk usage", system_df},
        {"info", NULL, "Display system-wide information", cmd_info},
        {"prune", NULL, "Remove unused data", system_prune},
        {"settings", NULL, "List or change the daemon's settings", system_settings},
    };
    return cli_dispatch_group(ctx, "Manage hypr", subs, ARRAY_SIZE(subs), argc, argv);
}
