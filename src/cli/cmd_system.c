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

/* --format of a command that prints one object: json, or a Go template of it. */
static int print_object(cli_ctx *ctx, const char *format, int mode, json_t *o)
{
    if (mode != CLI_FORMAT_TEMPLATE) {
        cli_print_json(o);
        return 0;
    }
    _cleanup_json_ json_t *rows = json_pack("[O]", o);
    return cli_print_template(ctx, format, rows, NULL, false);
}

int cmd_health(cli_ctx *ctx, int argc, char **argv)
{
    const char *format = NULL;
    const cli_option opts[] = {
        CLI_STRING(0, "format", "string", &format,
                   "Format output: text (default), a Go template, or json (keys Status, Version, "
                   "UptimeSeconds, "
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
        int rc = print_object(ctx, format, json, o);
        if (rc)
            return rc;
    } else {
        char up[64];
        cli_human_duration(h->uptime_seconds, up, sizeof(up));
        printf("Status: %s\nVersion: %s\nUptime: %s\n", h->status, h->version, up);
    }
    return strcmp(h->status, "healthy") ? 1 : 0;
}

/* OCI platform names, as docker version shows them. */
static const char *client_arch(void)
{
    static struct utsname u;
    if (!u.machine[0])
        uname(&u);
    return !strcmp(u.machine, "x86_64")    ? "amd64"
           : !strcmp(u.machine, "aarch64") ? "arm64"
                                           : u.machine;
}

int cmd_version(cli_ctx *ctx, int argc, char **argv)
{
    const char *format = NULL;
    const cli_option opts[] = {
        CLI_STRING('f', "format", "string", &format,
                   "Format output: json, or a Go template of Client{Version, Os, Arch, Host} and "
                   "Server{Version, Status, UptimeSeconds}"),
        CLI_OPTIONS_END,
    };
    cli_command cmd;
    int ec;
    if (!parse_no_args(ctx, &cmd, "Show the hypr version information", opts, argc, argv, &ec))
        return ec;
    int json = cli_format_or_error(&cmd, format, &ec);
    if (json < 0)
        return ec;
    if (!json) {
        printf("Client:\n Version:     %s\n OS/Arch:     linux/%s\n Host:        %s\n",
               HYPR_VERSION, client_arch(), ctx->display);
        fflush(stdout);
    }
    _cleanup_pb_ Hypr__V1__HealthResponse *h = NULL;
    if (cli_call(ctx, "Health", NULL, &h) < 0)
        return 1;
    if (json) {
        _cleanup_json_ json_t *o = json_pack(
            "{s:{s:s, s:s, s:s, s:s}, s:{s:s, s:s, s:I}}", "Client", "Version", HYPR_VERSION, "Os",
            "linux", "Arch", client_arch(), "Host", ctx->display, "Server", "Version", h->version,
            "Status", h->status, "UptimeSeconds", (json_int_t)h->uptime_seconds);
        return print_object(ctx, format, json, o);
    }
    char up[64];
    cli_human_duration(h->uptime_seconds, up, sizeof(up));
    printf("\nServer:\n Version:     %s\n Status:      %s\n Uptime:      %s\n", h->version,
           h->status, up);
    return 0;
}

int cmd_info(cli_ctx *ctx, int argc, char **argv)
{
    const char *format = NULL;
    const cli_option opts[] = {
        CLI_STRING('f', "format", "string", &format,
                   "Format output: json, or a Go template (Docker's keys: Containers, "
                   "ContainersRunning, ContainersStopped, Images, ServerVersion, NCPU, MemTotal, "
                   "...)"),
        CLI_OPTIONS_END,
    };
    cli_command cmd;
    int ec;
    if (!parse_no_args(ctx, &cmd, "Display system-wide information", opts, argc, argv, &ec))
        return ec;
    int json = cli_format_or_error(&cmd, format, &ec);
    if (json < 0)
        return ec;
    _cleanup_pb_ Hypr__V1__HealthResponse *h = NULL;
    _cleanup_pb_ Hypr__V1__GetSystemStatsResponse *s = NULL;
    if (cli_call(ctx, "Health", NULL, &h) < 0 || cli_call(ctx, "GetSystemStats", NULL, &s) < 0)
        return 1;
    if (json) {
        /* Docker's keys where there is one (a VM is a container), hypr's for the rest. */
        _cleanup_json_ json_t *o = json_pack(
            "{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:s, s:I, s:I, s:I, s:s, s:I, s:I, s:I, s:s}",
            "Containers", (json_int_t)s->vms_total, "ContainersRunning", (json_int_t)s->vms_running,
            "ContainersStopped", (json_int_t)(s->vms_total - s->vms_running), "Images",
            (json_int_t)s->images, "Networks", (json_int_t)s->networks, "Volumes",
            (json_int_t)s->volumes, "Stacks", (json_int_t)s->stacks, "ServerVersion", h->version,
            "NCPU", (json_int_t)s->host_cpus, "MemTotal", (json_int_t)s->host_memory_total_bytes,
            "MemAvailable", (json_int_t)s->host_memory_available_bytes, "HyprRootDir", s->data_dir,
            "DiskTotal", (json_int_t)s->disk_total_bytes, "DiskFree",
            (json_int_t)s->disk_free_bytes, "DiskUsedByHypr",
            (json_int_t)s->disk_used_by_hypr_bytes, "OSType", "linux");
        return print_object(ctx, format, json, o);
    }
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

/* "1.2MB (70%)" like Docker; the build cache row has no percentage there. */
static char *reclaimable_text(const Hypr__V1__DiskUsageSummary *row)
{
    char size[32];
    format_size(row->reclaimable_bytes, size, sizeof(size));
    if (!row->size_bytes || !strcmp(row->type, "Build Cache"))
        return xstrdup(size);
    return xasprintf("%s (%" PRIu64 "%%)", size, row->reclaimable_bytes * 100 / row->size_bytes);
}

static json_t *df_row_json(const Hypr__V1__DiskUsageSummary *row)
{
    char size[32], total[16], active[16];
    format_size(row->size_bytes, size, sizeof(size));
    snprintf(total, sizeof(total), "%u", row->total);
    snprintf(active, sizeof(active), "%u", row->active);
    _cleanup_free_ char *recl = reclaimable_text(row);
    /* Docker's keys and string values, plus the byte counts. */
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:I}", "Type", row->type, "TotalCount", total,
                     "Active", active, "Size", size, "Reclaimable", recl, "SizeBytes",
                     (json_int_t)row->size_bytes, "ReclaimableBytes",
                     (json_int_t)row->reclaimable_bytes);
}

static void df_summary_table(const Hypr__V1__DiskUsageResponse *r)
{
    _cleanup_table_ cli_table t = {0};
    table_init(&t, 5, "TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE");
    for (size_t i = 0; i < r->n_summary; i++) {
        const Hypr__V1__DiskUsageSummary *row = r->summary[i];
        char size[32], total[16], active[16];
        format_size(row->size_bytes, size, sizeof(size));
        snprintf(total, sizeof(total), "%u", row->total);
        snprintf(active, sizeof(active), "%u", row->active);
        _cleanup_free_ char *recl = reclaimable_text(row);
        table_add(&t, row->type, total, active, size, recl);
    }
    table_print(&t, stdout);
}

/* What -v prints of each kind of object: a table section and a JSON array. */
typedef struct df_view {
    const char *type;  /* DiskUsageItem.type */
    const char *title; /* "Images space usage:" */
    const char *json;  /* key of the -v JSON object */
    size_t ncols;
    const char *const *header;
    /* One row's cells (ncols, caller frees each) and its JSON object. */
    json_t *(*row)(const Hypr__V1__DiskUsageItem *it, const Hypr__V1__ListVmsResponse *vms,
                   int64_t now, char **cells);
} df_view;

static char *ago_text(int64_t now, int64_t then)
{
    char buf[64];
    if (then <= 0)
        return xstrdup("N/A");
    cli_human_duration(now - then, buf, sizeof(buf));
    return xasprintf("%s ago", buf);
}

static char *size_text(uint64_t bytes)
{
    char buf[32];
    format_size(bytes, buf, sizeof(buf));
    return xstrdup(buf);
}

/* Size, SizeBytes and CreatedAt, which every object has. */
static json_t *item_json(const Hypr__V1__DiskUsageItem *it, const char *created_key)
{
    char size[32];
    format_size(it->size_bytes, size, sizeof(size));
    return json_pack("{s:s, s:I, s:o}", "Size", size, "SizeBytes", (json_int_t)it->size_bytes,
                     created_key, json_time(it->created_at));
}

static json_t *image_row(const Hypr__V1__DiskUsageItem *it, const Hypr__V1__ListVmsResponse *vms,
                         int64_t now, char **cells)
{
    (void)vms;
    _cleanup_free_ char *name = NULL, *tag = NULL;
    const char *at = strchr(it->name, '@');
    if (at) {
        name = xstrndup(it->name, (size_t)(at - it->name));
        tag = xstrdup("<none>");
    } else {
        cli_split_reference(it->name, &name, &tag, false);
    }
    const char *repo = cli_short_image_name(name);
    cells[0] = xstrdup(repo);
    cells[1] = xstrdup(str_empty(tag) ? "<none>" : tag);
    cells[2] = short_id(it->id, true);
    cells[3] = ago_text(now, it->created_at);
    cells[4] = size_text(it->size_bytes);
    cells[5] = xasprintf("%u", it->users);
    json_t *o = item_json(it, "CreatedAt");
    json_object_set_new(o, "ID", json_string(it->id));
    json_object_set_new(o, "Repository", json_string(repo));
    json_object_set_new(o, "Tag", json_string(cells[1]));
    json_object_set_new(o, "VMs", json_integer(it->users));
    return o;
}

static json_t *blob_row(const Hypr__V1__DiskUsageItem *it, const Hypr__V1__ListVmsResponse *vms,
                        int64_t now, char **cells)
{
    (void)vms;
    _cleanup_free_ char *id = short_id(it->id, true);
    cells[0] = str_empty(it->name) ? xstrdup(id) : xasprintf("%s (%s)", id, it->name);
    cells[1] = xasprintf("%u", it->users);
    cells[2] = ago_text(now, it->created_at);
    cells[3] = size_text(it->size_bytes);
    json_t *o = item_json(it, "CreatedAt");
    json_object_set_new(o, "Digest", json_string(it->id));
    json_object_set_new(o, "Images", json_integer(it->users));
    json_object_set_new(o, "InUse", json_boolean(it->in_use));
    json_object_set_new(o, "Partial", json_boolean(!str_empty(it->name)));
    return o;
}

static const Hypr__V1__VM *vm_of(const Hypr__V1__ListVmsResponse *vms, const char *id)
{
    for (size_t i = 0; vms && i < vms->n_vms; i++)
        if (!strcmp(vms->vms[i]->id, id))
            return vms->vms[i];
    return NULL;
}

static json_t *vm_row(const Hypr__V1__DiskUsageItem *it, const Hypr__V1__ListVmsResponse *vms,
                      int64_t now, char **cells)
{
    const Hypr__V1__VM *vm = vm_of(vms, it->id);
    cells[0] = short_id(it->id, true);
    cells[1] = xstrdup(it->name);
    cells[2] = size_text(it->size_bytes);
    cells[3] = ago_text(now, it->created_at);
    cells[4] = vm ? vm_status_text(vm, now) : xstrdup(it->in_use ? "running" : "-");
    json_t *o = item_json(it, "CreatedAt");
    json_object_set_new(o, "ID", json_string(it->id));
    json_object_set_new(o, "Names", json_string(it->name));
    json_object_set_new(o, "Status", json_string(cells[4]));
    json_object_set_new(o, "Running", json_boolean(it->in_use));
    return o;
}

static json_t *volume_row(const Hypr__V1__DiskUsageItem *it, const Hypr__V1__ListVmsResponse *vms,
                          int64_t now, char **cells)
{
    (void)vms;
    (void)now;
    cells[0] = xstrdup(it->name);
    cells[1] = xasprintf("%u", it->users);
    cells[2] = size_text(it->size_bytes);
    json_t *o = item_json(it, "CreatedAt");
    json_object_set_new(o, "Name", json_string(it->name));
    json_object_set_new(o, "Links", json_integer(it->users));
    return o;
}

static json_t *cache_row(const Hypr__V1__DiskUsageItem *it, const Hypr__V1__ListVmsResponse *vms,
                         int64_t now, char **cells)
{
    (void)vms;
    cells[0] = xstrdup(it->id);
    cells[1] = size_text(it->size_bytes);
    cells[2] = ago_text(now, it->created_at);
    json_t *o = item_json(it, "CreatedAt");
    json_object_set_new(o, "ID", json_string(it->id));
    return o;
}

static json_t *log_row(const Hypr__V1__DiskUsageItem *it, const Hypr__V1__ListVmsResponse *vms,
                       int64_t now, char **cells)
{
    (void)vms;
    const char *state = it->in_use ? "running" : it->users ? "stopped" : "removed";
    cells[0] = short_id(it->id, true);
    cells[1] = xstrdup(it->name);
    cells[2] = size_text(it->size_bytes);
    cells[3] = ago_text(now, it->created_at);
    cells[4] = xstrdup(state);
    json_t *o = item_json(it, "UpdatedAt");
    json_object_set_new(o, "VM", json_string(it->id));
    json_object_set_new(o, "File", json_string(it->name));
    json_object_set_new(o, "VMState", json_string(state));
    return o;
}

static const char *const image_cols[] = {"REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE", "VMS"};
static const char *const blob_cols[] = {"BLOB", "IMAGES", "CREATED", "SIZE"};
static const char *const vm_cols[] = {"VM ID", "NAME", "SIZE", "CREATED", "STATUS"};
static const char *const volume_cols[] = {"VOLUME NAME", "LINKS", "SIZE"};
static const char *const cache_cols[] = {"CACHE ID", "SIZE", "CREATED"};
static const char *const log_cols[] = {"VM ID", "FILE", "SIZE", "UPDATED", "VM"};
#define DF_VIEW(t, title, key, cols, fn)                                                           \
    {                                                                                              \
        t, title, key, ARRAY_SIZE(cols), cols, fn                                                  \
    }
static const df_view df_views[] = {
    DF_VIEW("image", "Images space usage:", "Images", image_cols, image_row),
    DF_VIEW("blob", "Layer blobs space usage:", "Blobs", blob_cols, blob_row),
    DF_VIEW("vm", "VMs space usage:", "VMs", vm_cols, vm_row),
    DF_VIEW("volume", "Local Volumes space usage:", "Volumes", volume_cols, volume_row),
    DF_VIEW("build-cache", "Build cache usage:", "BuildCache", cache_cols, cache_row),
    DF_VIEW("log", "Logs space usage:", "Logs", log_cols, log_row),
};

/* -v: the tables, or one object for --format json or a template (run on it once). */
static int df_verbose(cli_ctx *ctx, const Hypr__V1__DiskUsageResponse *r,
                      const Hypr__V1__ListVmsResponse *vms, int json, const char *format)
{
    int64_t now = time(NULL);
    _cleanup_json_ json_t *out = json_object();
    json_t *rows = json_array();
    for (size_t i = 0; i < r->n_summary; i++)
        json_array_append_new(rows, df_row_json(r->summary[i]));
    json_object_set_new(out, "Summary", rows);
    for (size_t v = 0; v < ARRAY_SIZE(df_views); v++) {
        const df_view *view = &df_views[v];
        json_t *a = json_array();
        _cleanup_table_ cli_table t = {0};
        table_init_array(&t, view->ncols, view->header);
        uint64_t total = 0;
        for (size_t i = 0; i < r->n_items; i++) {
            const Hypr__V1__DiskUsageItem *it = r->items[i];
            if (strcmp(it->type, view->type))
                continue;
            char *cells[8] = {0};
            json_array_append_new(a, view->row(it, vms, now, cells));
            table_add(&t, cells[0], cells[1], cells[2], cells[3], cells[4], cells[5]);
            for (size_t c = 0; c < ARRAY_SIZE(cells); c++)
                free(cells[c]);
            total += it->size_bytes;
        }
        json_object_set_new(out, view->json, a);
        if (json)
            continue;
        if (!strcmp(view->type, "build-cache")) {
            char size[32];
            format_size(total, size, sizeof(size));
            printf("%s %s\n\n", view->title, size);
        } else {
            printf("%s\n\n", view->title);
        }
        table_print(&t, stdout);
        if (v + 1 < ARRAY_SIZE(df_views))
            printf("\n");
    }
    return json ? print_object(ctx, format, json, out) : 0;
}

static int system_df(cli_ctx *ctx, int argc, char **argv)
{
    const char *format = NULL;
    bool verbose = false;
    const cli_option opts[] = {
        CLI_STRING(0, "format", "string", &format,
                   "Format output: table (default), a Go template, or json (an array of the rows, "
                   "keys Type, "
                   "TotalCount, Active, Size, Reclaimable, SizeBytes, ReclaimableBytes; with -v an "
                   "object: Summary (the rows), Images, Blobs, VMs, Volumes, BuildCache, Logs)"),
        CLI_BOOL('v', "verbose", &verbose, "Show detailed information on space usage"),
        CLI_OPTIONS_END,
    };
    cli_command cmd;
    int ec;
    if (!parse_no_args(ctx, &cmd, "Show hypr disk usage", opts, argc, argv, &ec))
        return ec;
    int json = cli_format_or_error(&cmd, format, &ec);
    if (json < 0)
        return ec;
    Hypr__V1__DiskUsageRequest req = HYPR__V1__DISK_USAGE_REQUEST__INIT;
    req.verbose = verbose;
    _cleanup_pb_ Hypr__V1__DiskUsageResponse *r = NULL;
    if (cli_call(ctx, "GetDiskUsage", &req, &r) < 0)
        return 1;
    if (verbose) {
        /* The VMs' STATUS column ("Up 3 minutes"), as ps shows it. */
        Hypr__V1__ListVmsRequest vreq = HYPR__V1__LIST_VMS_REQUEST__INIT;
        vreq.all = true;
        _cleanup_pb_ Hypr__V1__ListVmsResponse *vms = NULL;
        if (cli_call(ctx, "ListVms", &vreq, &vms) < 0)
            return 1;
        return df_verbose(ctx, r, vms, json, format);
    } else if (json) {
        _cleanup_json_ json_t *a = json_array();
        for (size_t i = 0; i < r->n_summary; i++)
            json_array_append_new(a, df_row_json(r->summary[i]));
        if (json == CLI_FORMAT_TEMPLATE)
            return cli_print_template(ctx, format, a, NULL, false);
        cli_print_json(a);
    } else {
        df_summary_table(r);
    }
    return 0;
}

/* ---- system prune --------------------------------------------------------- */

/* Docker's confirmation text, with hypr's objects. */
static char *prune_warning(bool all, bool volumes, const cli_list *filters)
{
    _cleanup_buf_ hypr_buf b = {0};
    buf_puts(&b, "WARNING! This will remove:\n  - all stopped VMs\n"
                 "  - all networks not used by at least one VM\n");
    if (volumes)
        buf_puts(&b, "  - all volumes not used by at least one VM\n");
    buf_puts(&b, all ? "  - all images without at least one VM associated to them\n"
                     : "  - all dangling images\n");
    buf_puts(&b, "  - unused build cache\n  - layer blobs no image references\n"
                 "  - logs and run-dir files of VMs that no longer exist\n");
    if (filters->n) {
        buf_puts(&b, "\n  Items to be pruned will be filtered with:\n");
        for (size_t i = 0; i < filters->n; i++)
            buf_printf(&b, "  - %s\n", filters->items[i]);
    }
    return buf_steal(&b);
}

static void print_section(const char *title, char **lines, size_t n)
{
    if (!n)
        return;
    printf("%s\n", title);
    for (size_t i = 0; i < n; i++)
        printf("%s\n", lines[i]);
    printf("\n");
}

static int system_prune(cli_ctx *ctx, int argc, char **argv)
{
    bool all = false, force = false, volumes = false;
    _cleanup_list_ cli_list filters = {0};
    const cli_option opts[] = {
        CLI_BOOL('a', "all", &all, "Remove all unused images not just dangling ones"),
        CLI_LIST(0, "filter", "filter", &filters,
                 "Provide filter values (e.g. \"until=24h\", \"label=k=v\", \"label!=k\")"),
        CLI_BOOL('f', "force", &force, "Do not prompt for confirmation"),
        CLI_BOOL(0, "volumes", &volumes, "Prune volumes"),
        CLI_OPTIONS_END,
    };
    cli_command cmd;
    int ec;
    if (!parse_no_args(ctx, &cmd, "Remove unused data", opts, argc, argv, &ec))
        return ec;
    _cleanup_free_ char *warning = prune_warning(all, volumes, &filters);
    if (!cli_prune_confirmed(ctx, force, warning))
        return 1;
    Hypr__V1__PruneSystemRequest req = HYPR__V1__PRUNE_SYSTEM_REQUEST__INIT;
    req.all = all;
    req.volumes = volumes;
    req.n_filters = filters.n;
    req.filters = (char **)filters.items;
    _cleanup_pb_ Hypr__V1__PruneSystemResponse *r = NULL;
    if (cli_call(ctx, "PruneSystem", &req, &r) < 0)
        return 1;
    print_section("Deleted VMs:", r->vms_deleted, r->n_vms_deleted);
    print_section("Deleted Networks:", r->networks_deleted, r->n_networks_deleted);
    print_section("Deleted Volumes:", r->volumes_deleted, r->n_volumes_deleted);
    print_section("Deleted Images:", r->images_deleted, r->n_images_deleted);
    if (r->blobs_deleted || r->files_deleted) {
        if (r->blobs_deleted)
            printf("Deleted layer blobs: %u\n", r->blobs_deleted);
        if (r->files_deleted)
            printf("Deleted orphan files and build cache entries: %u\n", r->files_deleted);
        printf("\n");
    }
    cli_print_reclaimed(r->space_reclaimed_bytes);
    return 0;
}

/* ---- system settings --------------------------------------------------------- */

static int print_settings(cli_ctx *ctx, Hypr__V1__Setting **items, size_t n, int json,
                          const char *format)
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
    if (json == CLI_FORMAT_TEMPLATE)
        return cli_print_template(ctx, format, a, NULL, false);
    if (json)
        cli_print_json(a);
    else
        table_print(&t, stdout);
    return 0;
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
        CLI_STRING(
            0, "format", "string", &format,
            "Format output: table (default), a Go template, or json (keys Key, Value, Default, "
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
    return print_settings(ctx, resp->settings, resp->n_settings, json, format);
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
