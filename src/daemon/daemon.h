/* hyprd: the daemon's shared context and the interfaces between its parts
 * (API handlers, settings, events, system stats). */
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
    struct vm_runtime *vms;  /* VMs with a hypervisor process (vm_start.c) */
    struct vm_host *vm_host; /* kernel and initramfs, found on first start */
    struct netmgr *net;      /* networks, VM attachments, DNS (netmgr.c) */
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

/* ---- API (api.c, api_system.c) ------------------------------------------------ */

/* Builds the method table for every RPC of HyprService; unimplemented ones
 * answer UNIMPLEMENTED naming the RPC. *out is static storage. */
void api_methods(const rpc_method **out, size_t *n);
daemon_ctx *api_daemon(rpc_call *call);
/* Finishes a call with the error record (logs internal errors once). */
void api_fail(rpc_call *call, hypr_error *err);

/* Handlers in api_system.c. */
void api_health(rpc_call *call, ProtobufCMessage *msg);
void api_get_settings(rpc_call *call, ProtobufCMessage *msg);
void api_update_settings(rpc_call *call, ProtobufCMessage *msg);
void api_get_system_stats(rpc_call *call, ProtobufCMessage *msg);
void api_get_system_stats_close(rpc_call *call, bool cancelled);
void api_subscribe_events(rpc_call *call, ProtobufCMessage *msg);
void api_subscribe_events_close(rpc_call *call, bool cancelled);

/* Handlers in api_vm.c. */
void api_create_vm(rpc_call *call, ProtobufCMessage *msg);
void api_start_vm(rpc_call *call, ProtobufCMessage *msg);
void api_stop_vm(rpc_call *call, ProtobufCMessage *msg);
void api_rename_vm(rpc_call *call, ProtobufCMessage *msg);
void api_delete_vm(rpc_call *call, ProtobufCMessage *msg);
void api_run_vm(rpc_call *call, ProtobufCMessage *msg);
/* on_close of calls that wait on a VM (RunVM, StopVM, DeleteVM). */
void api_vm_call_close(rpc_call *call, bool cancelled);
/* on_close of RunVM and CreateVM, which may be pulling their image first. */
void api_vm_create_call_close(rpc_call *call, bool cancelled);

/* Handlers in api_resources.c (lists and lookups over the state). */
void api_list_vms(rpc_call *call, ProtobufCMessage *msg);
void api_get_vm(rpc_call *call, ProtobufCMessage *msg);
void api_list_images(rpc_call *call, ProtobufCMessage *msg);
void api_get_image(rpc_call *call, ProtobufCMessage *msg);
void api_list_networks(rpc_call *call, ProtobufCMessage *msg);
/* A network record in its API form (VM IDs and labels included); free with
 * api_network_message_free. */
Hypr__V1__Network *api_network_message(daemon_ctx *d, const store_network *net);
void api_network_message_free(Hypr__V1__Network *m);
/* Labels: the entries of a map<string, string> field as the JSON object text the
 * store keeps (NULL for none), and back (entries of the map's entry descriptor; an
 * absent or invalid text gives none). */
char *api_labels_json(ProtobufCMessage *const *entries, size_t n);
size_t api_labels_entries(const char *json, const ProtobufCMessageDescriptor *desc,
                          ProtobufCMessage ***out);
void api_labels_free(ProtobufCMessage **entries, size_t n);
void api_get_network(rpc_call *call, ProtobufCMessage *msg);
void api_list_volumes(rpc_call *call, ProtobufCMessage *msg);
void api_get_volume(rpc_call *call, ProtobufCMessage *msg);
void api_list_stacks(rpc_call *call, ProtobufCMessage *msg);
void api_get_stack(rpc_call *call, ProtobufCMessage *msg);

/* Handlers in api_login.c (registry credential checks for `hypr login`). */
void api_login(rpc_call *call, ProtobufCMessage *msg);
void api_login_close(rpc_call *call, bool cancelled);

/* Handlers in api_image.c (pull, import, delete, history; Image messages). */
void api_pull_image(rpc_call *call, ProtobufCMessage *msg);
void api_import_image(rpc_call *call, ProtobufCMessage *msg);
void api_image_job_close(rpc_call *call, bool cancelled);

/* Who hears about a pull made for a call (PullImage, or RunVM/CreateVM whose
 * image is missing). Both run on the loop thread while the call is open. */
typedef struct api_pull_hooks {
    /* A progress snapshot (at most ~10 a second, plus every phase change); may be NULL. */
    void (*progress)(rpc_call *call, const Hypr__V1__PullProgress *msg, void *ud);
    /* The pull ended: img is the committed image, or NULL with err saying why.
     * Not called when the call closed first (the pull is cancelled and discarded). */
    void (*done)(rpc_call *call, const store_image *img, hypr_error *err, void *ud);
    void *ud;
    void (*free_ud)(void *ud); /* when the pull is over, whether done ran or not; may be NULL */
} api_pull_hooks;
/* How hyprd reaches registries, for pulls and logins alike: the
 * insecure_registries and registry_certs_dir settings, and HYPR_REGISTRY_CA_FILE
 * from the environment, read when a pull or login starts. */
typedef struct api_registry_opts {
    char **insecure;     /* NULL-terminated, or NULL for none */
    char *certs_dir;     /* Docker-style certs.d */
    const char *ca_file; /* extra CA bundle (the environment's string), may be NULL */
} api_registry_opts;
void api_registry_opts_get(daemon_ctx *d, api_registry_opts *out);
void api_registry_opts_clear(api_registry_opts *o);
/* Pulls reference on the thread pool for call (a reference that parses). The
 * call's data is the pull until done runs, so the call's on_close must call
 * api_image_job_close. */
void api_image_pull(rpc_call *call, const char *reference, const char *platform,
                    const api_pull_hooks *hooks);
void api_delete_image(rpc_call *call, ProtobufCMessage *msg);
void api_get_image_history(rpc_call *call, ProtobufCMessage *msg);
/* The Image message of a row (fields from its manifest.json); free with api_image_message_free. */
ProtobufCMessage *api_image_message(const store_image *img);
void api_image_message_free(ProtobufCMessage *msg);

#endif
