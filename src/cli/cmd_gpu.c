/* GPU commands: gpu list, from the daemon's ListGpus (hyprd reads sysfs, knows
 * which VM holds each device, and has the pci.ids names). */
#define LOG_MODULE "cli"
#include "cli/cmd.h"

#include <string.h>

/* The name of the VM holding a GPU: from ListVms, else its short ID. */
typedef struct vm_names {
    Hypr__V1__ListVmsResponse *vms;
} vm_names;

static const char *vm_name(const vm_names *n, const char *id, char shortid[HYPR_SHORT_ID_LEN + 1])
{
    for (size_t i = 0; n->vms && i < n->vms->n_vms; i++)
        if (strcmp(n->vms->vms[i]->id, id) == 0)
            return n->vms->vms[i]->name;
    snprintf(shortid, HYPR_SHORT_ID_LEN + 1, "%s", id);
    return shortid;
}

/* The STATUS cell: the daemon's status in words a user reads. Caller frees. */
static char *status_text(const Hypr__V1__Gpu *g, const char *holder)
{
    if (strcmp(g->status, "in-use") == 0)
        return xasprintf("in-use by %s", holder ? holder : "a VM");
    if (strcmp(g->status, "boot-vga") == 0)
        return xstrdup("boot-vga (protected)");
    return xstrdup(g->status);
}

static const char *or_dash(const char *s)
{
    return str_empty(s) ? "-" : s;
}

static json_t *gpu_json(const Hypr__V1__Gpu *g, const char *holder)
{
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:s, s:b, s:o}", "Address",
                          g->address, "ClassId", g->class_id, "VendorId", g->vendor_id, "Vendor",
                          g->vendor, "DeviceId", g->device_id, "Device", g->device, "Driver",
                          g->driver, "IommuGroup", g->iommu_group, "NumaNode", (int)g->numa_node,
                          "Status", g->status, "BootVga", (int)g->boot_vga, "GroupDevices",
                          json_from_strv(g->group_devices, g->n_group_devices));
    if (!str_empty(g->vm_id)) {
        json_object_set_new(o, "VmId", json_string(g->vm_id));
        json_object_set_new(o, "VmName", json_string(holder));
    }
    return o;
}

static int gpu_list(cli_ctx *ctx, int argc, char **argv)
{
    const char *format = NULL;
    const cli_option opts[] = {
        CLI_STRING(0, "format", "string", &format,
                   "Format output: table (default), a Go template, or json (keys below)"),
        CLI_OPTIONS_END,
    };
    const cli_command cmd = {
        .name = ctx->cmdpath,
        .usage = "[OPTIONS]",
        .description = "List the host's GPUs (PCI display devices) and the devices sharing their "
                       "IOMMU groups",
        .options = opts,
        .max_args = 0,
        .notes = "STATUS: available (hypr can pass it through), vfio-ready (already on "
                 "vfio-pci),\nin-use by VM, boot-vga (protected: the host's display; "
                 "'run --gpu-force' takes it).\nNames come from pci.ids when it is installed "
                 "(Debian package pci.ids).\nJSON keys: Address, ClassId, VendorId, Vendor, "
                 "DeviceId, Device, Driver, IommuGroup,\nNumaNode, Status, BootVga, "
                 "GroupDevices, and VmId, VmName when in use.",
    };
    _cleanup_parsed_ cli_parsed p = {0};
    int ec;
    int json = cli_parse_with_format(&cmd, argc, argv, &p, &format, &ec);
    if (json < 0)
        return ec;
    _cleanup_pb_ Hypr__V1__ListGpusResponse *resp = NULL;
    if (cli_call(ctx, "ListGpus", NULL, &resp) < 0)
        return 1;
    _cleanup_pb_ Hypr__V1__ListVmsResponse *vms = NULL;
    for (size_t i = 0; i < resp->n_gpus && !vms; i++) {
        if (str_empty(resp->gpus[i]->vm_id))
            continue;
        Hypr__V1__ListVmsRequest req = HYPR__V1__LIST_VMS_REQUEST__INIT;
        req.all = true;
        if (cli_call(ctx, "ListVms", &req, &vms) < 0)
            return 1;
    }
    vm_names names = {vms};
    _cleanup_json_ json_t *a = json_array();
    _cleanup_table_ cli_table t = {0};
    table_init(&t, 7, "ADDRESS", "VENDOR", "DEVICE", "DRIVER", "IOMMU GROUP", "NUMA", "STATUS");
    for (size_t i = 0; i < resp->n_gpus; i++) {
        const Hypr__V1__Gpu *g = resp->gpus[i];
        char shortid[HYPR_SHORT_ID_LEN + 1];
        const char *holder = str_empty(g->vm_id) ? NULL : vm_name(&names, g->vm_id, shortid);
        json_array_append_new(a, gpu_json(g, holder));
        _cleanup_free_ char *status = status_text(g, holder);
        _cleanup_free_ char *numa = g->numa_node >= 0 ? xasprintf("%d", g->numa_node) : NULL;
        table_add(&t, g->address, str_empty(g->vendor) ? or_dash(g->vendor_id) : g->vendor,
                  str_empty(g->device) ? or_dash(g->device_id) : g->device, or_dash(g->driver),
                  or_dash(g->iommu_group), numa ? numa : "-", status);
    }
    if (json == CLI_FORMAT_TEMPLATE)
        return cli_print_template(ctx, format, a, NULL, false);
    if (json)
        cli_print_json(a);
    else if (!resp->n_gpus)
        printf("No GPUs found\n");
    else
        table_print(&t, stdout);
    return 0;
}

int cmd_gpu(cli_ctx *ctx, int argc, char **argv)
{
    static const cli_subcommand subs[] = {
        {"list", "ls", "List the host's GPUs", gpu_list},
    };
    return cli_dispatch_group(ctx, "Manage GPUs (PCI passthrough candidates for 'hypr run --gpu')",
                              subs, ARRAY_SIZE(subs), argc, argv);
}
