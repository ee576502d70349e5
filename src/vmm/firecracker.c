/* firecracker adapter: the process starts with only its API socket
 * (<run-dir>/<id>.fc.sock); the VM is configured and started through the API. */
#define LOG_MODULE "vmm"

#include <string.h>

#include "vmm/vmm-private.h"

/* reboot=k: a guest reboot goes through the i8042 reset line, which ends
 * firecracker. pci=off: devices are virtio-mmio, announced on the cmdline by
 * firecracker (virtio_mmio.device=...; kestrel passes those parameters to the
 * module). The i8042 options keep probing short; the port stays for Ctrl-Alt-Del. */
#define FC_CMDLINE_BASE                                                                            \
    "console=ttyS0 reboot=k panic=-1 pci=off i8042.noaux i8042.nomux i8042.nopnp i8042.dumbkbd"

static const char *const fc_files[] = {".fc.sock", ".vsock", ".vsock_1024", ".initrd"};

static char *fc_api_socket(const vmm_config *cfg)
{
    return vmm_vm_path(cfg, ".fc.sock");
}

/* vmm_config_check, and no PCI passthrough: firecracker has no PCI bus. */
static int fc_config_check(const vmm_config *cfg, hypr_error *err)
{
    int r = vmm_config_check(cfg, err);
    if (r < 0)
        return r;
    if (cfg->n_pci_devices > 0)
        return hypr_err(err, HYPR_FAILED_PRECONDITION, EOPNOTSUPP,
                        "firecracker cannot pass PCI devices (GPUs) through: it has no PCI bus; "
                        "set the hypervisor to qemu or cloud-hypervisor ('hypr system settings "
                        "set hypervisor=qemu')");
    return vmm_shares_check(&vmm_firecracker_ops, cfg, err);
}

static int fc_build_command(const vmm_adapter *a, const vmm_config *cfg, vmm_command *out,
                            hypr_error *err)
{
    int r = fc_config_check(cfg, err);
    if (r < 0)
        return r;
    _cleanup_vmm_command_ vmm_command cmd = {0};
    vmm_command_init(a, cfg, &cmd);
    _cleanup_free_ char *api = fc_api_socket(cfg);
    argv_add(&cmd.argv, "--api-sock");
    argv_add(&cmd.argv, api);
    /* firecracker's --id allows [a-zA-Z0-9-]{1,64}: our ids are 64 hex chars. */
    if (strlen(cfg->id) <= 64 && strspn(cfg->id, "0123456789abcdefABCDEF-") == strlen(cfg->id)) {
        argv_add(&cmd.argv, "--id");
        argv_add(&cmd.argv, cfg->id);
    }
    *out = cmd;
    cmd = (vmm_command){0};
    return 0;
}

static void push(vmm_api_request **reqs, size_t *n, const char *path, json_t *body)
{
    *reqs = xrealloc(*reqs, (*n + 1) * sizeof(**reqs));
    vmm_api_request_set(&(*reqs)[*n], "PUT", path, body);
    (*n)++;
}

int fc_requests_configure(const vmm_config *cfg, vmm_api_request **out, size_t *n, hypr_error *err)
{
    *out = NULL;
    *n = 0;
    int r = fc_config_check(cfg, err);
    if (r < 0)
        return r;
    vmm_api_request *reqs = NULL;
    size_t count = 0;
    _cleanup_free_ char *cmdline = vmm_kernel_cmdline(cfg, FC_CMDLINE_BASE, true);
    _cleanup_free_ char *vsock = vmm_vm_path(cfg, ".vsock");

    push(
        &reqs, &count, "/machine-config",
        json_pack("{s:i,s:i}", "vcpu_count", (int)cfg->vcpus, "mem_size_mib", (int)cfg->memory_mb));
    push(&reqs, &count, "/boot-source",
         json_pack("{s:s,s:s,s:s}", "kernel_image_path", cfg->kernel, "initrd_path", cfg->initramfs,
                   "boot_args", cmdline));
    for (size_t i = 0; i < vmm_disk_count(cfg); i++) {
        vmm_disk_info d;
        vmm_disk_at(cfg, i, &d);
        _cleanup_free_ char *path = xasprintf("/drives/%s", d.id);
        /* The root filesystem is kestrel's business (initramfs first). */
        push(&reqs, &count, path,
             json_pack("{s:s,s:s,s:b,s:b}", "drive_id", d.id, "path_on_host", d.path,
                       "is_root_device", 0, "is_read_only", d.readonly));
    }
    for (size_t i = 0; i < cfg->n_nics; i++) {
        char iface[32];
        snprintf(iface, sizeof(iface), "eth%zu", i);
        _cleanup_free_ char *path = xasprintf("/network-interfaces/%s", iface);
        json_t *net = json_pack("{s:s,s:s}", "iface_id", iface, "host_dev_name", cfg->nics[i].tap);
        if (cfg->nics[i].mac)
            json_object_set_new(net, "guest_mac", json_string(cfg->nics[i].mac));
        push(&reqs, &count, path, net);
    }
    push(&reqs, &count, "/vsock",
         json_pack("{s:I,s:s}", "guest_cid", (json_int_t)vmm_guest_cid(cfg), "uds_path", vsock));
    *out = reqs;
    *n = count;
    return 0;
}

void fc_request_action(const char *action_type, vmm_api_request *out)
{
    vmm_api_request_set(out, "PUT", "/actions", json_pack("{s:s}", "action_type", action_type));
}

static int fc_send_action(const vmm_config *cfg, const char *action, int timeout_ms,
                          hypr_error *err)
{
    _cleanup_free_ char *api = fc_api_socket(cfg);
    vmm_api_request req = {0};
    fc_request_action(action, &req);
    int r = vmm_http_request(api, &req, timeout_ms, NULL, NULL, err);
    vmm_api_request_clear(&req);
    return r;
}

static int fc_create(const vmm_adapter *a, const vmm_config *cfg, int timeout_ms, hypr_error *err)
{
    _cleanup_free_ char *api = fc_api_socket(cfg);
    vmm_api_request *reqs = NULL;
    size_t n = 0;
    int r = fc_requests_configure(cfg, &reqs, &n, err);
    if (r >= 0)
        r = vmm_api_send_all(api, reqs, n, timeout_ms, err);
    vmm_api_requests_free(reqs, n);
    return r;
}

static int fc_start(const vmm_adapter *a, const vmm_config *cfg, int timeout_ms, hypr_error *err)
{
    return fc_send_action(cfg, "InstanceStart", timeout_ms, err);
}

static int fc_stop(const vmm_adapter *a, const vmm_config *cfg, bool graceful, int timeout_ms,
                   hypr_error *err)
{
    if (!graceful)
        return hypr_err(err, HYPR_UNIMPLEMENTED, EOPNOTSUPP,
                        "firecracker has no hard shutdown request: kill the process");
    return fc_send_action(cfg, "SendCtrlAltDel", timeout_ms, err);
}

static int fc_delete(const vmm_adapter *a, const vmm_config *cfg, hypr_error *err)
{
    return vmm_remove_vm_files(cfg, fc_files, ARRAY_SIZE(fc_files), err);
}

const vmm_adapter_ops vmm_firecracker_ops = {
    .name = "firecracker",
    .binary = "firecracker",
    .build_command = fc_build_command,
    .create = fc_create,
    .start = fc_start,
    .stop = fc_stop,
    .kill = vmm_op_kill,
    .delete = fc_delete,
    .console_path = vmm_console_path,
    .control_path = vmm_hybrid_vsock_control_path,
};
