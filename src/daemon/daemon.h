/* hyprd: the daemon's shared context, settings and the event bus. The API layer
 * is api.h, the VM lifecycle vm.h, networking netmgr.h. */
#ifndef HYPR_DAEMON_H
#define HYPR_DAEMON_H

#include "common/common.h"
#include "rpc/rpc.h"
#include "state/state.h"

#include "hypr.pb-c.h"

#include <uv.h>

typedef struct event_bus event_bus;

typedef struct daemon_ctx {
    uv_loop_t *loop;
    char *data_dir;
    char *run_dir;
    char *socket_path;
    char *pid_path;
    store *db;
    rpc_server *server;
    event_bus *events;
    int64_t started_at_ms; /* wall clock */
    int64_t started_mono_ms;
    int pid_fd; /* holds the pid-file lock while we run */
    bool shutting_down;
    uv_signal_t sig_term, sig_int;
    struct vm_runtime *vms;           /* VMs with a hypervisor process (vm_runtime.c) */
    struct vm_listener *vm_listeners; /* who hears about VMs (vm.h) */
    struct vm_host *vm_host;          /* kernel and initramfs, found on first start */
    struct vm_gpu_state *gpu;         /* GPU passthrough (vm_gpu.c) */
    struct netmgr *net;               /* networks, VM attachments (netmgr.c) */
    struct dns_server *dns;           /* the .hypr DNS server (netmgr_dns.c) */
    struct api_state *api;            /* calls waiting on VMs (api_vm.c) */
    struct rest_gateway *rest;        /* the REST gateway (rest.c) */
    /* Shutdown: VMs get until the deadline, then done() runs once all are gone. */
    void (*shutdown_done)(struct daemon_ctx *d);
    uv_timer_t shutdown_poll;
    int64_t shutdown_deadline;
} daemon_ctx;

/* ---- settings (settings.c) ------------------------------------------------- */

typedef struct setting_def {
    const char *key;
    const char *default_value;
    const char *description;
    /* Returns 0 or -EINVAL with err naming the setting and what it accepts. */
    int (*validate)(const struct setting_def *def, const char *value, hypr_error *err);
    int64_t min, max;           /* for integer settings */
    const char *const *choices; /* NULL-terminated, for enum settings */
} setting_def;

const setting_def *settings_find(const char *key);
const setting_def *settings_all(size_t *n);
/* Current value (stored or default); caller frees. */
char *settings_get(daemon_ctx *d, const char *key);
int64_t settings_get_int(daemon_ctx *d, const char *key);
bool settings_get_bool(daemon_ctx *d, const char *key);
/* Validates every pair first; stores all of them in one transaction or none. */
int settings_update(daemon_ctx *d, const store_kv *kv, size_t n, hypr_error *err);
/* Applies settings with an immediate effect (log level). */
void settings_apply(daemon_ctx *d);

/* ---- events (events.c) ----------------------------------------------------- */

int event_bus_new(event_bus **out);
void event_bus_free(event_bus *bus);
/* Adds a SubscribeEvents call; it stays until the call closes. */
void event_bus_subscribe(event_bus *bus, rpc_call *call, char **type_filters);
void event_bus_unsubscribe(event_bus *bus, rpc_call *call);
size_t event_bus_subscribers(event_bus *bus);
/* attrs: NULL-terminated key, value, key, value, ... (may be NULL). */
void event_publish(event_bus *bus, const char *type, const char *id, const char *message,
                   char *const *attrs);
/* Ends every subscription (daemon shutdown). */
void event_bus_close_all(event_bus *bus);
/* Whether an event type passes a subscription's type filters (prefixes; none = all). */
bool event_filter_matches(char *const *filters, const char *type);
/* Publishes the VM lifecycle's notices as vm.* events (vm.created, vm.starting,
 * vm.started, vm.restarting, vm.stopping, vm.stopped, vm.failed, vm.deleted,
 * vm.renamed). */
void event_bus_watch_vms(daemon_ctx *d);
void event_bus_unwatch_vms(daemon_ctx *d);

#endif
