/* System RPCs: Health, settings, system stats and the event stream. */
#define LOG_MODULE "api"
#include "api.h"

#include <ftw.h>
#include <string.h>
#include <sys/statvfs.h>

void api_health(rpc_call *call, ProtobufCMessage *msg)
{
    _cleanup_pb_ ProtobufCMessage *req __attribute__((unused)) = msg;
    daemon_ctx *d = api_daemon(call);
    Hypr__V1__HealthResponse resp = HYPR__V1__HEALTH_RESPONSE__INIT;
    resp.status = d->shutting_down ? "stopping" : "healthy";
    resp.version = HYPR_VERSION;
    resp.uptime_seconds = (time_monotonic_ms() - d->started_mono_ms) / 1000;
    resp.started_at = d->started_at_ms / 1000;
    resp.active_calls = (uint32_t)rpc_server_active_calls(d->server);
    resp.event_subscribers = (uint32_t)event_bus_subscribers(d->events);
    resp.pid = (int32_t)getpid();
    rpc_call_reply(call, &resp.base);
}

/* Sends every setting (stored value or default) in key order. */
static void reply_settings(rpc_call *call, daemon_ctx *d, bool update)
{
    size_t n;
    const setting_def *defs = settings_all(&n);
    Hypr__V1__Setting *items = xcalloc(n, sizeof(*items));
    Hypr__V1__Setting **ptrs = xcalloc(n, sizeof(*ptrs));
    char **values = xcalloc(n, sizeof(*values));
    for (size_t i = 0; i < n; i++) {
        hypr__v1__setting__init(&items[i]);
        values[i] = settings_get(d, defs[i].key);
        items[i].key = (char *)defs[i].key;
        items[i].value = values[i];
        items[i].description = (char *)defs[i].description;
        items[i].default_value = (char *)defs[i].default_value;
        ptrs[i] = &items[i];
    }
    if (update) {
        Hypr__V1__UpdateSettingsResponse resp = HYPR__V1__UPDATE_SETTINGS_RESPONSE__INIT;
        resp.n_settings = n;
        resp.settings = ptrs;
        rpc_call_reply(call, &resp.base);
    } else {
        Hypr__V1__GetSettingsResponse resp = HYPR__V1__GET_SETTINGS_RESPONSE__INIT;
        resp.n_settings = n;
        resp.settings = ptrs;
        rpc_call_reply(call, &resp.base);
    }
    for (size_t i = 0; i < n; i++)
        free(values[i]);
    free(values);
    free(ptrs);
    free(items);
}

void api_get_settings(rpc_call *call, ProtobufCMessage *msg)
{
    _cleanup_pb_ ProtobufCMessage *req __attribute__((unused)) = msg;
    reply_settings(call, api_daemon(call), false);
}

void api_update_settings(rpc_call *call, ProtobufCMessage *msg)
{
    daemon_ctx *d = api_daemon(call);
    _cleanup_pb_ Hypr__V1__UpdateSettingsRequest *req = (Hypr__V1__UpdateSettingsRequest *)msg;
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    size_t n = req->n_settings;
    _cleanup_free_ store_kv *kv = xcalloc(n, sizeof(*kv));
    _cleanup_free_ char **attrs = xcalloc(2 * n + 1, sizeof(char *));
    for (size_t i = 0; i < n; i++) {
        kv[i].key = req->settings[i]->key;
        kv[i].value = req->settings[i]->value;
        attrs[2 * i] = kv[i].key;
        attrs[2 * i + 1] = kv[i].value;
    }
    if (settings_update(d, kv, n, &err) < 0) {
        api_fail(call, &err);
        return;
    }
    log_info("settings updated (%zu key%s)", n, n == 1 ? "" : "s");
    event_publish(d->events, "settings.updated", "settings", NULL, attrs);
    reply_settings(call, d, true);
}

static _Thread_local uint64_t walk_total; /* nftw has no user pointer */

static int walk_add(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)path;
    (void)ftw;
    if (flag == FTW_F)
        walk_total += (uint64_t)st->st_blocks * 512;
    return 0;
}

/* Bytes used below a directory (0 if it does not exist). Runs on the thread pool. */
static uint64_t dir_usage(const char *dir, const char *sub)
{
    _cleanup_free_ char *path = path_join(dir, sub);
    walk_total = 0;
    nftw(path, walk_add, 16, FTW_PHYS | FTW_MOUNT);
    return walk_total;
}

static void read_meminfo(uint64_t *total, uint64_t *avail)
{
    *total = *avail = 0;
    _cleanup_fclose_ FILE *f = fopen("/proc/meminfo", "re");
    if (!f)
        return;
    char line[256];
    while (fgets(line, sizeof(line), f)) {
        unsigned long long kb;
        if (sscanf(line, "MemTotal: %llu kB", &kb) == 1)
            *total = kb * 1024;
        else if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1)
            *avail = kb * 1024;
    }
}

/* The directory walks and host figures run on the thread pool (a data dir with
 * many images takes a while); the counts come from the store on the loop. */
typedef struct stats_work {
    uv_work_t req;
    rpc_call *call; /* NULL once the call went away */
    char *data_dir;
    Hypr__V1__GetSystemStatsResponse resp;
} stats_work;

static void stats_run(uv_work_t *req)
{
    stats_work *w = req->data;
    Hypr__V1__GetSystemStatsResponse *resp = &w->resp;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    resp->host_cpus = cpus > 0 ? (uint32_t)cpus : 1;
    read_meminfo(&resp->host_memory_total_bytes, &resp->host_memory_available_bytes);
    struct statvfs vfs;
    if (statvfs(w->data_dir, &vfs) == 0) {
        resp->disk_total_bytes = (uint64_t)vfs.f_blocks * vfs.f_frsize;
        resp->disk_free_bytes = (uint64_t)vfs.f_bavail * vfs.f_frsize;
    }
    resp->volumes_size_bytes = dir_usage(w->data_dir, "volumes");
    resp->logs_size_bytes = dir_usage(w->data_dir, "logs");
    resp->disk_used_by_hypr_bytes = dir_usage(w->data_dir, "");
}

static void stats_done(uv_work_t *req, int status)
{
    (void)status;
    stats_work *w = req->data;
    if (w->call) {
        rpc_call_set_data(w->call, NULL);
        w->resp.data_dir = w->data_dir;
        rpc_call_reply(w->call, &w->resp.base);
    }
    free(w->data_dir);
    free(w);
}

void api_get_system_stats(rpc_call *call, ProtobufCMessage *msg)
{
    _cleanup_pb_ ProtobufCMessage *req __attribute__((unused)) = msg;
    daemon_ctx *d = api_daemon(call);
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    store_counts c;
    if (store_count(d->db, &c, &err) < 0) {
        hypr_err_prefix(&err, "system stats");
        api_fail(call, &err);
        return;
    }
    stats_work *w = xcalloc(1, sizeof(*w));
    hypr__v1__get_system_stats_response__init(&w->resp);
    w->req.data = w;
    w->call = call;
    w->data_dir = xstrdup(d->data_dir);
    w->resp.vms_total = c.vms;
    w->resp.vms_running = c.vms_running;
    w->resp.images = c.images;
    w->resp.networks = c.networks;
    w->resp.volumes = c.volumes;
    w->resp.stacks = c.stacks;
    w->resp.images_size_bytes = c.images_size_bytes;
    rpc_call_set_data(call, w);
    int r = uv_queue_work(d->loop, &w->req, stats_run, stats_done);
    if (r < 0) {
        rpc_call_set_data(call, NULL);
        free(w->data_dir);
        free(w);
        hypr_err(&err, HYPR_INTERNAL, -r, "system stats: %s", uv_strerror(r));
        api_fail(call, &err);
    }
}

void api_get_system_stats_close(rpc_call *call, bool cancelled)
{
    (void)cancelled;
    stats_work *w = rpc_call_get_data(call);
    if (w)
        w->call = NULL;
}

void api_subscribe_events(rpc_call *call, ProtobufCMessage *msg)
{
    daemon_ctx *d = api_daemon(call);
    _cleanup_pb_ Hypr__V1__SubscribeEventsRequest *req = (Hypr__V1__SubscribeEventsRequest *)msg;
    if (d->shutting_down) {
        rpc_call_finish(call, HYPR_UNAVAILABLE, "hyprd is shutting down");
        return;
    }
    char **filters = NULL;
    for (size_t i = 0; i < req->n_types; i++)
        if (!str_empty(req->types[i]))
            filters = strv_append(filters, req->types[i]);
    event_bus_subscribe(d->events, call, filters);
}

void api_subscribe_events_close(rpc_call *call, bool cancelled)
{
    (void)cancelled;
    event_bus_unsubscribe(api_daemon(call)->events, call);
}
