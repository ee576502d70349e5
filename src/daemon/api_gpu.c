/* ListGpus: the host's display devices and their IOMMU group companions from
 * sysfs ($HYPR_SYSFS_ROOT for tests), with the VM holding each one. */
#define LOG_MODULE "api"
#include "api.h"
#include "vm.h"

#include <string.h>

void api_list_gpus(rpc_call *call, ProtobufCMessage *msg)
{
    _cleanup_pb_ ProtobufCMessage *req __attribute__((unused)) = msg;
    daemon_ctx *d = api_daemon(call);
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    _cleanup_gpu_list_ gpu_list l = {0};
    if (gpu_scan(NULL, vm_gpu_ids(d), &l, &err) < 0) {
        api_fail(call, &err);
        return;
    }
    vm_gpu_claims claims;
    vm_gpu_claims_load(d, &claims);
    Hypr__V1__Gpu *items = xcalloc(l.n + 1, sizeof(*items));
    Hypr__V1__Gpu **ptrs = xcalloc(l.n + 1, sizeof(*ptrs));
    for (size_t i = 0; i < l.n; i++) {
        const gpu_device *g = &l.devices[i];
        Hypr__V1__Gpu *m = &items[i];
        hypr__v1__gpu__init(m);
        m->address = g->address;
#define SET(field, value)                                                                          \
    do {                                                                                           \
        if (value)                                                                                 \
            m->field = (value);                                                                    \
    } while (0)
        SET(class_id, g->class_id);
        SET(vendor_id, g->vendor_id);
        SET(vendor, g->vendor);
        SET(device_id, g->device_id);
        SET(device, g->device);
        SET(driver, g->driver);
        SET(iommu_group, g->iommu_group);
#undef SET
        m->numa_node = g->numa_node;
        m->boot_vga = g->boot_vga;
        const char *holder = vm_gpu_claims_holder(&claims, g->address, NULL);
        m->status = (char *)gpu_status_name(gpu_device_status(&l, g, holder != NULL));
        if (holder)
            m->vm_id = (char *)holder;
        size_t n = strv_length(g->group);
        m->group_devices = xcalloc(n + 1, sizeof(char *));
        for (size_t k = 0; k < n; k++)
            if (strcmp(g->group[k], g->address) != 0)
                m->group_devices[m->n_group_devices++] = g->group[k];
        ptrs[i] = m;
    }
    Hypr__V1__ListGpusResponse resp = HYPR__V1__LIST_GPUS_RESPONSE__INIT;
    resp.gpus = ptrs;
    resp.n_gpus = l.n;
    rpc_call_reply(call, &resp.base);
    for (size_t i = 0; i < l.n; i++)
        free(items[i].group_devices);
    free(ptrs);
    free(items);
    vm_gpu_claims_clear(&claims);
}
