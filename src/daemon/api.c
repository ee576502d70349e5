/* The method table of HyprService: built from the protobuf service descriptor
 * so every RPC of the contract is served, and those whose issue has not landed
 * answer UNIMPLEMENTED naming the RPC. */
#define LOG_MODULE "api"
#include "api.h"

#include <string.h>

typedef struct handler_entry {
    const char *name;
    void (*on_message)(rpc_call *call, ProtobufCMessage *msg);
    void (*on_close)(rpc_call *call, bool cancelled);
    void (*on_half_close)(rpc_call *call);
} handler_entry;

static const handler_entry handlers[] = {
    {"Health", api_health, NULL},
    {"GetSettings", api_get_settings, NULL},
    {"UpdateSettings", api_update_settings, NULL},
    {"GetSystemStats", api_get_system_stats, api_get_system_stats_close},
    {"GetDiskUsage", api_get_disk_usage, api_disk_call_close},
    {"PruneSystem", api_prune_system, api_disk_call_close},
    {"SubscribeEvents", api_subscribe_events, api_subscribe_events_close},
    {"CreateVM", api_create_vm, api_vm_create_call_close},
    {"StartVM", api_start_vm, api_vm_call_close},
    {"StopVM", api_stop_vm, api_vm_call_close},
    {"KillVM", api_kill_vm, NULL},
    {"WaitVM", api_wait_vm, api_vm_call_close},
    {"UpdateVM", api_update_vm, NULL},
    {"PauseVM", api_pause_vm, api_pause_call_close},
    {"UnpauseVM", api_unpause_vm, api_pause_call_close},
    {"DeleteVM", api_delete_vm, api_vm_call_close},
    {"RenameVM", api_rename_vm, NULL},
    {"RunVM", api_run_vm, api_vm_create_call_close},
    {"StreamLogs", api_stream_logs, api_stream_logs_close},
    {"StreamVMMetrics", api_stream_vm_metrics, api_stream_vm_metrics_close},
    {"CreateNetwork", api_create_network, NULL},
    {"DeleteNetwork", api_delete_network, NULL},
    {"ListVms", api_list_vms, NULL},
    {"GetVM", api_get_vm, NULL},
    {"ListImages", api_list_images, NULL},
    {"GetImage", api_get_image, NULL},
    {"PullImage", api_pull_image, api_image_job_close},
    {"ImportImage", api_import_image, api_image_job_close},
    {"Login", api_login, api_login_close},
    {"DeleteImage", api_delete_image, NULL},
    {"GetImageHistory", api_get_image_history, NULL},
    {"ListNetworks", api_list_networks, NULL},
    {"GetNetwork", api_get_network, NULL},
    {"ListVolumes", api_list_volumes, NULL},
    {"GetVolume", api_get_volume, api_disk_call_close},
    {"CreateVolume", api_create_volume, NULL},
    {"DeleteVolume", api_delete_volume, NULL},
    {"PruneVolumes", api_prune_volumes, api_disk_call_close},
    {"ListStacks", api_list_stacks, NULL},
    {"GetStack", api_get_stack, NULL},
    {"Exec", api_exec, api_exec_close, api_exec_half_close},
    {"ListGpus", api_list_gpus, NULL},
};

/* RPCs whose requests are client streams (protobuf-c's descriptor does not say). */
static const char *const client_streaming[] = {"Exec", "BuildImage"};

static void api_unimplemented(rpc_call *call, ProtobufCMessage *msg)
{
    _cleanup_pb_ ProtobufCMessage *req __attribute__((unused)) = msg;
    if (rpc_call_is_finished(call))
        return;
    const char *path = rpc_call_path(call);
    const char *name = strrchr(path, '/');
    _cleanup_free_ char *m =
        xasprintf("%s is not implemented yet in hyprd %s", name ? name + 1 : path, HYPR_VERSION);
    rpc_call_finish(call, HYPR_UNIMPLEMENTED, m);
}

void api_methods(const rpc_method **out, size_t *n)
{
    static rpc_method *methods;
    static size_t n_methods;
    if (!methods) {
        const ProtobufCServiceDescriptor *svc = &hypr__v1__hypr_service__descriptor;
        methods = xcalloc(svc->n_methods, sizeof(rpc_method));
        for (unsigned i = 0; i < svc->n_methods; i++) {
            const ProtobufCMethodDescriptor *md = &svc->methods[i];
            rpc_method *m = &methods[i];
            m->path = xasprintf("/%s/%s", svc->name, md->name);
            m->request = md->input;
            m->on_message = api_unimplemented;
            for (size_t h = 0; h < ARRAY_SIZE(handlers); h++) {
                if (strcmp(handlers[h].name, md->name) == 0) {
                    m->on_message = handlers[h].on_message;
                    m->on_close = handlers[h].on_close;
                    m->on_half_close = handlers[h].on_half_close;
                }
            }
            for (size_t c = 0; c < ARRAY_SIZE(client_streaming); c++)
                if (strcmp(client_streaming[c], md->name) == 0)
                    m->client_streaming = true;
        }
        n_methods = svc->n_methods;
    }
    *out = methods;
    *n = n_methods;
}
