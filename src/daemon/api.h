/* hyprd's API layer: the RPC handlers of HyprService, the API messages built
 * from records, and the calls that wait on VMs. Handlers call down into the
 * lifecycle (vm.h), the network manager (netmgr.h), settings and the store;
 * nothing below calls up into this layer. Internal to src/daemon. */
#ifndef HYPR_DAEMON_API_H
#define HYPR_DAEMON_API_H

#include "daemon.h"

/* ---- the method table and helpers (api.c, api_common.c) ------------------------ */

/* Builds the method table for every RPC of HyprService; unimplemented ones
 * answer UNIMPLEMENTED naming the RPC. *out is static storage. */
void api_methods(const rpc_method **out, size_t *n);
daemon_ctx *api_daemon(rpc_call *call);
/* Finishes a call with the error record (logs internal errors once). */
void api_fail(rpc_call *call, const hypr_error *err);
/* The API's own state on the daemon (the calls waiting on VMs). */
void api_init(daemon_ctx *d);
void api_free(daemon_ctx *d);

/* ---- handlers --------------------------------------------------------------------- */

/* System (api_system.c). */
void api_health(rpc_call *call, ProtobufCMessage *msg);
void api_get_settings(rpc_call *call, ProtobufCMessage *msg);
void api_update_settings(rpc_call *call, ProtobufCMessage *msg);
void api_get_system_stats(rpc_call *call, ProtobufCMessage *msg);
void api_get_system_stats_close(rpc_call *call, bool cancelled);
void api_subscribe_events(rpc_call *call, ProtobufCMessage *msg);
void api_subscribe_events_close(rpc_call *call, bool cancelled);

/* VMs (api_vm.c). */
void api_create_vm(rpc_call *call, ProtobufCMessage *msg);
void api_start_vm(rpc_call *call, ProtobufCMessage *msg);
void api_stop_vm(rpc_call *call, ProtobufCMessage *msg);
void api_kill_vm(rpc_call *call, ProtobufCMessage *msg);
void api_wait_vm(rpc_call *call, ProtobufCMessage *msg);
void api_update_vm(rpc_call *call, ProtobufCMessage *msg);
void api_pause_vm(rpc_call *call, ProtobufCMessage *msg);
void api_unpause_vm(rpc_call *call, ProtobufCMessage *msg);
void api_pause_call_close(rpc_call *call, bool cancelled);
void api_rename_vm(rpc_call *call, ProtobufCMessage *msg);
void api_delete_vm(rpc_call *call, ProtobufCMessage *msg);
void api_run_vm(rpc_call *call, ProtobufCMessage *msg);
/* on_close of calls that wait on a VM (StopVM, DeleteVM). */
void api_vm_call_close(rpc_call *call, bool cancelled);
/* on_close of RunVM and CreateVM, which may be pulling their image first. */
void api_vm_create_call_close(rpc_call *call, bool cancelled);

/* A VM's streams: logs (vm_logs.c), exec (vm_exec.c), guest metrics (vm_metrics.c). */
void api_stream_logs(rpc_call *call, ProtobufCMessage *msg);
void api_stream_logs_close(rpc_call *call, bool cancelled);
void api_exec(rpc_call *call, ProtobufCMessage *msg);
void api_exec_half_close(rpc_call *call);
void api_exec_close(rpc_call *call, bool cancelled);
void api_stream_vm_metrics(rpc_call *call, ProtobufCMessage *msg);
void api_stream_vm_metrics_close(rpc_call *call, bool cancelled);

/* Networks (api_network.c). */
void api_create_network(rpc_call *call, ProtobufCMessage *msg);
void api_delete_network(rpc_call *call, ProtobufCMessage *msg);

/* Lists and lookups over the state (api_resources.c). */
void api_list_vms(rpc_call *call, ProtobufCMessage *msg);
void api_get_vm(rpc_call *call, ProtobufCMessage *msg);
void api_list_images(rpc_call *call, ProtobufCMessage *msg);
void api_get_image(rpc_call *call, ProtobufCMessage *msg);
void api_list_networks(rpc_call *call, ProtobufCMessage *msg);
void api_get_network(rpc_call *call, ProtobufCMessage *msg);
void api_list_volumes(rpc_call *call, ProtobufCMessage *msg);
void api_get_volume(rpc_call *call, ProtobufCMessage *msg);
void api_list_stacks(rpc_call *call, ProtobufCMessage *msg);
void api_get_stack(rpc_call *call, ProtobufCMessage *msg);

/* GPUs (api_gpu.c). */
void api_list_gpus(rpc_call *call, ProtobufCMessage *msg);

/* Registry logins (api_login.c): the credentials are checked, never stored. */
void api_login(rpc_call *call, ProtobufCMessage *msg);
void api_login_close(rpc_call *call, bool cancelled);

/* Images (api_image.c). */
void api_pull_image(rpc_call *call, ProtobufCMessage *msg);
void api_import_image(rpc_call *call, ProtobufCMessage *msg);
void api_image_job_close(rpc_call *call, bool cancelled);
void api_delete_image(rpc_call *call, ProtobufCMessage *msg);
void api_get_image_history(rpc_call *call, ProtobufCMessage *msg);

/* Disk usage and prune (api_disk.c, api_prune.c). */
void api_get_disk_usage(rpc_call *call, ProtobufCMessage *msg);
void api_prune_system(rpc_call *call, ProtobufCMessage *msg);
/* What the call's data points to while a df or prune job runs (first member of
 * the job). on_close of both clears call: the job goes on, its answer is dropped. */
typedef struct disk_job {
    rpc_call *call;
    daemon_ctx *d;
} disk_job;
void api_disk_call_close(rpc_call *call, bool cancelled);

/* ---- what df and prune share (disk_scan.c) ------------------------------------------ */

/* Where the builder keeps its cache: every entry there is build cache. */
#define DISK_BUILD_CACHE_DIR "cache/build"

/* One entry of a directory listing; vm_id set for "<64 hex>.<suffix>" names. */
typedef struct disk_file {
    char *name;
    char vm_id[HYPR_ID_LEN + 1];
    uint64_t size; /* bytes (a directory's files, recursively) */
    int64_t mtime; /* unix seconds */
} disk_file;
typedef struct disk_files {
    disk_file *v;
    size_t n, cap;
} disk_files;
/* Blocking (thread pool only). Apparent size of a file, or of the files below a
 * directory (symlinks not followed); 0 when absent. */
uint64_t disk_path_size(const char *path);
/* Blocking. The entries of dir (none if it is missing); with vm_files only the
 * per-VM ones ("<id>.log", "<id>.initrd", ...). */
void disk_list_dir(const char *dir, bool vm_files, disk_files *out);
void disk_files_free(disk_files *f);
/* Whether name is "<VM id>.<suffix>"; fills id. */
bool disk_vm_file_id(const char *name, char id[HYPR_ID_LEN + 1]);
/* Labels as key, value, ..., NULL (NULL for none): of a JSON object text (the
 * store's networks and volumes), a VM's config, an image's config. */
char **disk_labels_from_json(const char *json);
char **disk_vm_labels(const store_vm *vm);
char **disk_image_labels(const store_image *img);
/* How many of the VM records use an image (by ID) or a volume (by name). */
size_t disk_image_users(const store_vm *vms, size_t n, const char *image_id);
size_t disk_volume_users(const store_vm *vms, size_t n, const char *volume);

/* ---- messages from records (api_resources.c, api_image.c) --------------------------- */

/* The API form of a VM record; a running VM's NICs come from its runtime. Free
 * with api_vm_message_free. */
Hypr__V1__VM *api_vm_message(daemon_ctx *d, const store_vm *vm);
void api_vm_message_free(Hypr__V1__VM *m);
/* A network record in its API form (VM IDs and labels included); free with
 * api_network_message_free. */
int api_network_message(daemon_ctx *d, const store_network *net, Hypr__V1__Network **out,
                        hypr_error *err);
void api_network_message_free(Hypr__V1__Network *m);
/* Labels: the entries of a map<string, string> field as the JSON object text the
 * store keeps (NULL for none), and back (entries of the map's entry descriptor; an
 * absent or invalid text gives none). */
char *api_labels_json(ProtobufCMessage *const *entries, size_t n);
size_t api_labels_entries(const char *json, const ProtobufCMessageDescriptor *desc,
                          ProtobufCMessage ***out);
void api_labels_free(ProtobufCMessage **entries, size_t n);
/* Which of a List request's records it answers with (api_list_filter.c): keep[i]
 * for recs[i] (store_vm / store_image); a bad filter is INVALID_ARGUMENT, a
 * before=/since= naming nothing NOT_FOUND. */
int api_select_vms(daemon_ctx *d, const ProtobufCMessage *req, const void *recs, size_t n,
                   bool *keep, hypr_error *err);
int api_select_images(daemon_ctx *d, const ProtobufCMessage *req, const void *recs, size_t n,
                      bool *keep, hypr_error *err);

/* Volumes (api_volume.c): the message of a record (labels and the VMs using it;
 * free with api_volume_message_free), ListVolumes' filters, and the RPCs. */
int api_volume_message(daemon_ctx *d, const void *rec, ProtobufCMessage **out, hypr_error *err);
void api_volume_message_free(ProtobufCMessage *msg);
int api_select_volumes(daemon_ctx *d, const ProtobufCMessage *req, const void *recs, size_t n,
                       bool *keep, hypr_error *err);
void api_create_volume(rpc_call *call, ProtobufCMessage *msg);
void api_delete_volume(rpc_call *call, ProtobufCMessage *msg);
void api_prune_volumes(rpc_call *call, ProtobufCMessage *msg);

/* The Image message of a row (fields from its manifest.json); free with api_image_message_free. */
ProtobufCMessage *api_image_message(const store_image *img);
void api_image_message_free(ProtobufCMessage *msg);

/* ---- pulls made for a call (api_image.c) ------------------------------------------- */

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

#endif
