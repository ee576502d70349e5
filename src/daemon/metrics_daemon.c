/* hyprd's metric families, the hooks feeding them, and the /metrics HTTP endpoint
 * (the project's HTTP/1.1 server, as the REST gateway uses it). */
#define LOG_MODULE "metrics"
#include "metrics_daemon.h"

#include "netmgr.h"
#include "rest.h"
#include "vm.h"
#include "vm_internal.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct daemon_metrics {
    metrics_registry *reg;
    http_server *http;
    char *addr;
    metric_family *vms, *rpc_duration, *rpc_in_flight, *boot_duration, *boot_phase;
    metric_family *net_rx, *net_tx, *vm_cpu, *vm_mem;
    metric_family *pull_bytes, *pulls, *builds, *build_duration, *build_cache_hits;
    metric_family *images, *volumes, *networks, *stacks, *dns_queries, *port_forward_bytes;
    metric_family *proc_rss, *proc_cpu, *proc_fds, *proc_start;
} daemon_metrics;

/* One daemon per process: the hooks reach it without a context. */
static daemon_metrics *M;

static const char *const L_STATUS[] = {"status", NULL};
static const char *const L_METHOD[] = {"method", NULL};
static const char *const L_METHOD_CODE[] = {"method", "code", NULL};
static const char *const L_PHASE[] = {"phase", NULL};
static const char *const L_VM[] = {"vm", NULL};
static const char *const L_RESULT[] = {"result", NULL};
static const char *const L_VM_PORT[] = {"vm", "port", NULL};

static void register_families(daemon_metrics *m)
{
    metrics_registry *r = m->reg;
    const double *db = metrics_duration_buckets;
    size_t nb = metrics_n_duration_buckets;
#define FAM(field, name, type, labels, help)                                                       \
    m->field = metrics_add_family(r, name, help, type, labels, db, nb)
    FAM(vms, "hypr_vms", METRIC_GAUGE, L_STATUS, "VMs by status");
    FAM(rpc_duration, "hypr_rpc_duration_seconds", METRIC_HISTOGRAM, L_METHOD_CODE,
        "Duration of finished API calls (gRPC and REST) by method and status code");
    FAM(rpc_in_flight, "hypr_rpc_in_flight", METRIC_GAUGE, L_METHOD, "API calls in progress");
    FAM(boot_duration, "hypr_vm_boot_duration_seconds", METRIC_HISTOGRAM, NULL,
        "Time from a VM's start to its workload running");
    FAM(boot_phase, "hypr_vm_boot_phase_seconds", METRIC_GAUGE, L_PHASE,
        "Guest boot phases reported by kestrel for the last VM that booted");
    FAM(net_rx, "hypr_vm_network_receive_bytes_total", METRIC_COUNTER, L_VM,
        "Bytes received by the VM: its TAPs' tx counters (a TAP's tx is the guest's rx)");
    FAM(net_tx, "hypr_vm_network_transmit_bytes_total", METRIC_COUNTER, L_VM,
        "Bytes transmitted by the VM: its TAPs' rx counters (a TAP's rx is the guest's tx)");
    FAM(vm_cpu, "hypr_vm_cpu_seconds_total", METRIC_COUNTER, L_VM,
        "CPU time (user + system) spent inside the VM, from kestrel's guest metrics");
    FAM(vm_mem, "hypr_vm_memory_bytes", METRIC_GAUGE, L_VM,
        "Memory in use inside the VM (total - available), from kestrel's guest metrics");
    FAM(pull_bytes, "hypr_image_pull_bytes_total", METRIC_COUNTER, NULL,
        "Bytes of images pulled successfully");
    FAM(pulls, "hypr_image_pulls_total", METRIC_COUNTER, L_RESULT, "Image pulls by result");
    FAM(builds, "hypr_builds_total", METRIC_COUNTER, L_RESULT, "Image builds by result");
    FAM(build_duration, "hypr_build_duration_seconds", METRIC_HISTOGRAM, NULL,
        "Duration of image builds");
    FAM(build_cache_hits, "hypr_build_cache_hits_total", METRIC_COUNTER, NULL,
        "Build steps served from the build cache");
    FAM(images, "hypr_images", METRIC_GAUGE, NULL, "Images in the store");
    FAM(volumes, "hypr_volumes", METRIC_GAUGE, NULL, "Volumes in the store");
    FAM(networks, "hypr_networks", METRIC_GAUGE, NULL, "Networks in the store");
    FAM(stacks, "hypr_stacks", METRIC_GAUGE, NULL, "Stacks in the store");
    FAM(dns_queries, "hypr_dns_queries_total", METRIC_COUNTER, L_RESULT,
        "Queries to the .hypr DNS server by result");
    FAM(port_forward_bytes, "hypr_port_forward_bytes_total", METRIC_COUNTER, L_VM_PORT,
        "Bytes through published ports (not counted by the forwarder yet: no samples)");
    FAM(proc_rss, "process_resident_memory_bytes", METRIC_GAUGE, NULL,
        "Resident memory size in bytes");
    FAM(proc_cpu, "process_cpu_seconds_total", METRIC_COUNTER, NULL,
        "Total user and system CPU time spent in seconds");
    FAM(proc_fds, "process_open_fds", METRIC_GAUGE, NULL, "Number of open file descriptors");
    FAM(proc_start, "process_start_time_seconds", METRIC_GAUGE, NULL,
        "Start time of the process since unix epoch in seconds");
#undef FAM
    static const char *const results[] = {"success", "failure"};
    for (size_t i = 0; i < ARRAY_SIZE(results); i++) {
        const char *v[] = {results[i]};
        metric_inc(m->pulls, v, 0);
        metric_inc(m->builds, v, 0);
    }
    static const char *const dns_results[] = {"answered", "forwarded", "dropped"};
    for (size_t i = 0; i < ARRAY_SIZE(dns_results); i++)
        metric_inc(m->dns_queries, (const char *[]){dns_results[i]}, 0);
}

/* ---- hooks ------------------------------------------------------------------------ */

void metrics_rpc_observe(void *d, const char *path, bool done, hypr_status status, double seconds)
{
    (void)d;
    if (!M || !path)
        return;
    const char *slash = strrchr(path, '/');
    const char *method[] = {slash ? slash + 1 : path, NULL};
    metric_inc(M->rpc_in_flight, method, done ? -1 : 1);
    if (!done)
        return;
    const char *mc[] = {method[0], hypr_status_name(status)};
    metric_observe(M->rpc_duration, mc, seconds);
}

void metrics_vm_booted(double seconds, const ctl_hello *h)
{
    if (!M)
        return;
    metric_observe(M->boot_duration, NULL, seconds);
    for (size_t i = 0; h && i < h->n; i++) {
        const char *name = vm_boot_phase_name(h->ts[i].phase);
        if (name)
            metric_set(M->boot_phase, (const char *[]){name}, (double)h->ts[i].ns / 1e9);
    }
}

void metrics_image_pulled(bool ok, uint64_t bytes)
{
    if (!M)
        return;
    metric_inc(M->pulls, (const char *[]){ok ? "success" : "failure"}, 1);
    if (ok)
        metric_inc(M->pull_bytes, NULL, (double)bytes);
}

void metrics_dns_query(const char *result)
{
    if (M)
        metric_inc(M->dns_queries, (const char *[]){result}, 1);
}

/* ---- what a scrape recomputes ------------------------------------------------------ */

/* /sys/class/net/<tap>/statistics/<what>, 0 when unreadable. */
static uint64_t tap_counter(const char *tap, const char *what)
{
    _cleanup_free_ char *path = xasprintf("/sys/class/net/%s/statistics/%s", tap, what);
    _cleanup_free_ char *text = NULL;
    size_t len = 0;
    if (read_file(path, 64, &text, &len) < 0)
        return 0;
    return strtoull(text, NULL, 10);
}

/* The VM's network counters from its TAPs, named from the VM's side. */
static void collect_taps(daemon_metrics *m, const vm_runtime *vm)
{
    size_t n = netmgr_vm_tap(vm->net, 0, NULL);
    if (n == 0)
        return;
    uint64_t rx = 0, tx = 0;
    for (size_t i = 0; i < n; i++) {
        const char *tap = NULL;
        netmgr_vm_tap(vm->net, i, &tap);
        rx += tap_counter(tap, "tx_bytes");
        tx += tap_counter(tap, "rx_bytes");
    }
    const char *name[] = {vm->name};
    metric_set(m->net_rx, name, (double)rx);
    metric_set(m->net_tx, name, (double)tx);
}

static void collect_vms(daemon_ctx *d, daemon_metrics *m)
{
    metric_clear(m->vms);
    for (vm_phase p = VM_PHASE_CREATED; p <= VM_PHASE_FAILED; p++)
        metric_set(m->vms, (const char *[]){vm_phase_status(p)}, 0);
    store_vm *vms = NULL;
    size_t n = 0;
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    if (store_vm_list(d->db, &vms, &n, &err) == 0) {
        for (size_t i = 0; i < n; i++) {
            const char *st = vm_running_status(d, vms[i].id);
            metric_inc(m->vms, (const char *[]){st ? st : vms[i].status}, 1);
        }
        store_vms_free(vms, n);
    }
    metric_clear(m->net_rx);
    metric_clear(m->net_tx);
    metric_clear(m->vm_cpu);
    metric_clear(m->vm_mem);
    long hz = sysconf(_SC_CLK_TCK);
    for (vm_runtime *vm = d->vms; vm; vm = vm->next) {
        collect_taps(m, vm);
        const uint64_t *v = vm->last_metrics;
        if (!v[CTL_M_TIME_NS])
            continue; /* no sample from kestrel yet */
        const char *name[] = {vm->name};
        metric_set(m->vm_cpu, name,
                   (double)(v[CTL_M_CPU_USER] + v[CTL_M_CPU_SYSTEM]) / (double)(hz > 0 ? hz : 100));
        metric_set(m->vm_mem, name, (double)(v[CTL_M_MEM_TOTAL] - v[CTL_M_MEM_AVAILABLE]));
    }
    store_counts c = {0};
    _cleanup_error_ hypr_error cerr = HYPR_ERROR_INIT;
    if (store_count(d->db, &c, &cerr) == 0) {
        metric_set(m->images, NULL, c.images);
        metric_set(m->volumes, NULL, c.volumes);
        metric_set(m->networks, NULL, c.networks);
        metric_set(m->stacks, NULL, c.stacks);
    }
}

static void collect_process(daemon_ctx *d, daemon_metrics *m)
{
    long hz = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
    _cleanup_free_ char *stat = NULL;
    size_t stat_len = 0;
    if (read_file("/proc/self/stat", 4096, &stat, &stat_len) == 0) {
        /* After the command's ")": state is field 3, utime 14, stime 15, rss 24. */
        const char *p = strrchr(stat, ')');
        unsigned long ut = 0, st = 0;
        long rss = 0;
        if (p && sscanf(p + 2,
                        "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %*d %*d %*d %*d %*d "
                        "%*d %*u %*u %ld",
                        &ut, &st, &rss) == 3) {
            metric_set(m->proc_cpu, NULL, (double)(ut + st) / (double)hz);
            metric_set(m->proc_rss, NULL, (double)rss * (double)page);
        }
    }
    DIR *dir = opendir("/proc/self/fd");
    if (dir) {
        size_t n = 0;
        for (struct dirent *e; (e = readdir(dir));)
            n += e->d_name[0] != '.';
        closedir(dir);
        metric_set(m->proc_fds, NULL, (double)(n ? n - 1 : 0)); /* not the DIR's own */
    }
    metric_set(m->proc_start, NULL, (double)d->started_at_ms / 1000.0);
}

void metrics_scrape(daemon_ctx *d, metrics_format fmt, hypr_buf *out)
{
    if (!M)
        return;
    collect_vms(d, M);
    collect_process(d, M);
    metrics_render(M->reg, fmt, out);
}

/* ---- the endpoint ----------------------------------------------------------------- */

static void on_request(http_exchange *x, const http_request *req, void *userdata)
{
    daemon_ctx *d = userdata;
    if (strcmp(req->path, "/metrics") != 0) {
        static const char msg[] = "not found: metrics are at /metrics\n";
        http_respond(x, 404, "text/plain; charset=utf-8", msg, sizeof(msg) - 1);
        return;
    }
    bool head = strcmp(req->method, "HEAD") == 0;
    if (!head && strcmp(req->method, "GET") != 0) {
        static const char msg[] = "method not allowed: GET /metrics\n";
        http_respond(x, 405, "text/plain; charset=utf-8", msg, sizeof(msg) - 1);
        return;
    }
    metrics_format fmt = metrics_negotiate(req->accept);
    _cleanup_buf_ hypr_buf body = {0};
    metrics_scrape(d, fmt, &body);
    /* HEAD: the headers of the GET, Content-Length 0 (the server writes no body for it). */
    http_respond(x, 200, metrics_content_type(fmt), body.data, head ? 0 : body.len);
}

void metrics_start(daemon_ctx *d)
{
    M = xcalloc(1, sizeof(*M));
    M->reg = metrics_registry_new();
    register_families(M);
    _cleanup_free_ char *addr = settings_get(d, "metrics_addr");
    M->addr = xstrdup(addr);
    M->http = daemon_http_listen(d, addr, on_request, "metrics");
}

void metrics_stop(daemon_ctx *d)
{
    (void)d;
    if (!M)
        return;
    http_server_free(M->http);
    metrics_registry_free(M->reg);
    free(M->addr);
    free(M);
    M = NULL;
}

void metrics_reconfigure(daemon_ctx *d)
{
    if (!M || d->shutting_down)
        return;
    _cleanup_free_ char *addr = settings_get(d, "metrics_addr");
    if (M->http && strcmp(addr, M->addr) == 0)
        return;
    http_server_retire(M->http);
    free(M->addr);
    M->addr = xstrdup(addr);
    M->http = daemon_http_listen(d, addr, on_request, "metrics");
}
