/* cloud-hypervisor adapter: the VM on the command line (or through vm.create),
 * control through the REST API on <run-dir>/<id>.ch.sock, hybrid vsock. */
#define LOG_MODULE "vmm"

#include <string.h>

#include "vmm/vmm-private.h"

/* Devices are virtio-pci; the serial port is the console, the virtio-console is off. */
#define CH_CMDLINE_BASE "console=ttyS0 reboot=k panic=-1"
#define CH_API_PREFIX   "/api/v1/"

static const char *const ch_files[] = {".ch.sock", ".vsock", ".vsock_1024", ".initrd"};

static char *ch_api_socket(const vmm_config *cfg)
{
    return vmm_vm_path(cfg, ".ch.sock");
}

/* cloud-hypervisor names a VFIO device by its sysfs directory (it finds the
 * IOMMU group there itself). */
static char *ch_device_path(const char *address)
{
    return xasprintf("/sys/bus/pci/devices/%s/", address);
}

static int ch_build_command(const vmm_adapter *a, const vmm_config *cfg, vmm_command *out,
                            hypr_error *err)
{
    int r = vmm_config_check(cfg, err);
    if (r < 0 || (r = vmm_shares_check(&vmm_cloud_hypervisor_ops, cfg, err)) < 0)
        return r;
    _cleanup_vmm_command_ vmm_command cmd = {0};
    vmm_command_init(a, cfg, &cmd);
    char ***v = &cmd.argv;
    _cleanup_free_ char *api = ch_api_socket(cfg);
    argv_add(v, "--api-socket");
    argv_addf(v, "path=%s", api);
    if (!a->configure_via_api) {
        _cleanup_free_ char *cmdline = vmm_kernel_cmdline(cfg, CH_CMDLINE_BASE, true);
        _cleanup_free_ char *vsock = vmm_vm_path(cfg, ".vsock");
        argv_add(v, "--kernel");
        argv_add(v, cfg->kernel);
        argv_add(v, "--initramfs");
        argv_add(v, cfg->initramfs);
        argv_add(v, "--cmdline");
        argv_add(v, cmdline);
        argv_add(v, "--cpus");
        argv_addf(v, "boot=%u", cfg->vcpus);
        argv_add(v, "--memory");
        /* virtiofsd maps the guest's memory: it must be shared. */
        argv_addf(v, "size=%uM%s", cfg->memory_mb, cfg->n_shares ? ",shared=on" : "");
        if (cfg->n_shares > 0) {
            argv_add(v, "--fs");
            for (size_t i = 0; i < cfg->n_shares; i++)
                argv_addf(v, "tag=%s,socket=%s,num_queues=1,queue_size=512", cfg->shares[i].tag,
                          cfg->shares[i].socket);
        }
        if (vmm_disk_count(cfg) > 0) {
            argv_add(v, "--disk");
            for (size_t i = 0; i < vmm_disk_count(cfg); i++) {
                vmm_disk_info d;
                vmm_disk_at(cfg, i, &d);
                argv_addf(v, "path=%s,readonly=%s,serial=%s", d.path, d.readonly ? "on" : "off",
                          d.id);
            }
        }
        if (cfg->n_nics > 0) {
            argv_add(v, "--net");
            for (size_t i = 0; i < cfg->n_nics; i++) {
                const vmm_nic *nic = &cfg->nics[i];
                argv_addf(v, "tap=%s%s%s", nic->tap, nic->mac ? ",mac=" : "",
                          nic->mac ? nic->mac : "");
            }
        }
        if (cfg->n_pci_devices > 0) {
            argv_add(v, "--device");
            for (size_t i = 0; i < cfg->n_pci_devices; i++) {
                _cleanup_free_ char *path = ch_device_path(cfg->pci_devices[i]);
                argv_addf(v, "path=%s", path);
            }
        }
        argv_add(v, "--vsock");
        argv_addf(v, "cid=%u,socket=%s", vmm_guest_cid(cfg), vsock);
    }
    /* The serial console goes to stdout (the daemon appends it to the log). */
    argv_add(v, "--serial");
    argv_add(v, "tty");
    argv_add(v, "--console");
    argv_add(v, "off");
    *out = cmd;
    cmd = (vmm_command){0};
    return 0;
}

int ch_request_create(const vmm_config *cfg, vmm_api_request *out, hypr_error *err)
{
    int r = vmm_config_check(cfg, err);
    if (r < 0 || (r = vmm_shares_check(&vmm_cloud_hypervisor_ops, cfg, err)) < 0)
        return r;
    _cleanup_free_ char *cmdline = vmm_kernel_cmdline(cfg, CH_CMDLINE_BASE, true);
    _cleanup_free_ char *vsock = vmm_vm_path(cfg, ".vsock");
    json_t *disks = json_array();
    for (size_t i = 0; i < vmm_disk_count(cfg); i++) {
        vmm_disk_info d;
        vmm_disk_at(cfg, i, &d);
        json_array_append_new(disks, json_pack("{s:s,s:b,s:s}", "path", d.path, "readonly",
                                               d.readonly, "serial", d.id));
    }
    json_t *body =
        json_pack("{s:{s:s,s:s,s:s},s:{s:i,s:i},s:{s:I},s:o,s:{s:I,s:s},s:{s:s},s:{s:s}}",
                  "payload", "kernel", cfg->kernel, "initramfs", cfg->initramfs, "cmdline", cmdline,
                  "cpus", "boot_vcpus", (int)cfg->vcpus, "max_vcpus", (int)cfg->vcpus, "memory",
                  "size", (json_int_t)cfg->memory_mb * 1024 * 1024, "disks", disks, "vsock", "cid",
                  (json_int_t)vmm_guest_cid(cfg), "socket", vsock, "serial", "mode", "Tty",
                  "console", "mode", "Off");
    if (cfg->n_nics > 0) {
        json_t *nets = json_array();
        for (size_t i = 0; i < cfg->n_nics; i++) {
            json_t *net = json_pack("{s:s}", "tap", cfg->nics[i].tap);
            if (cfg->nics[i].mac)
                json_object_set_new(net, "mac", json_string(cfg->nics[i].mac));
            json_array_append_new(nets, net);
        }
        json_object_set_new(body, "net", nets);
    }
    if (cfg->n_pci_devices > 0) {
        json_t *devs = json_array();
        for (size_t i = 0; i < cfg->n_pci_devices; i++) {
            _cleanup_free_ char *path = ch_device_path(cfg->pci_devices[i]);
            json_array_append_new(devs, json_pack("{s:s}", "path", path));
        }
        json_object_set_new(body, "devices", devs);
    }
    if (cfg->n_shares > 0) {
        json_t *fs = json_array();
        for (size_t i = 0; i < cfg->n_shares; i++)
            json_array_append_new(fs, json_pack("{s:s,s:s,s:i,s:i}", "tag", cfg->shares[i].tag,
                                                "socket", cfg->shares[i].socket, "num_queues", 1,
                                                "queue_size", 512));
        json_object_set_new(body, "fs", fs);
        json_object_set_new(json_object_get(body, "memory"), "shared", json_true());
    }
    vmm_api_request_set(out, "PUT", CH_API_PREFIX "vm.create", body);
    return 0;
}

void ch_request_action(const char *action, vmm_api_request *out)
{
    _cleanup_free_ char *path = xasprintf(CH_API_PREFIX "%s", action);
    vmm_api_request_set(out, "PUT", path, NULL);
}

static int ch_send_action(const vmm_config *cfg, const char *action, int timeout_ms,
                          hypr_error *err)
{
    _cleanup_free_ char *api = ch_api_socket(cfg);
    vmm_api_request req = {0};
    ch_request_action(action, &req);
    int r = vmm_http_request(api, &req, timeout_ms, NULL, NULL, err);
    vmm_api_request_clear(&req);
    return r;
}

static int ch_create(const vmm_adapter *a, const vmm_config *cfg, int timeout_ms, hypr_error *err)
{
    _cleanup_free_ char *api = ch_api_socket(cfg);
    vmm_api_request req = {0};
    int r;
    if (a->configure_via_api)
        r = ch_request_create(cfg, &req, err);
    else
        r = (vmm_api_request_set(&req, "GET", CH_API_PREFIX "vmm.ping", NULL), 0);
    if (r >= 0)
        r = vmm_http_request(api, &req, timeout_ms, NULL, NULL, err);
    vmm_api_request_clear(&req);
    return r;
}

static int ch_start(const vmm_adapter *a, const vmm_config *cfg, int timeout_ms, hypr_error *err)
{
    if (!a->configure_via_api)
        return 0;
    return ch_send_action(cfg, "vm.boot", timeout_ms, err);
}

static int ch_stop(const vmm_adapter *a, const vmm_config *cfg, bool graceful, int timeout_ms,
                   hypr_error *err)
{
    if (graceful)
        return ch_send_action(cfg, "vm.power-button", timeout_ms, err);
    int64_t deadline = time_monotonic_ms() + timeout_ms;
    int r = ch_send_action(cfg, "vm.shutdown", timeout_ms, err);
    if (r < 0)
        return r;
    int64_t left = deadline - time_monotonic_ms();
    return ch_send_action(cfg, "vmm.shutdown", left > 1 ? (int)left : 1, err);
}

static int ch_delete(const vmm_adapter *a, const vmm_config *cfg, hypr_error *err)
{
    return vmm_remove_vm_files(cfg, ch_files, ARRAY_SIZE(ch_files), err);
}

const vmm_adapter_ops vmm_cloud_hypervisor_ops = {
    .name = "cloud-hypervisor",
    .binary = "cloud-hypervisor",
    .pci_passthrough = true,
    .share_transports = VMM_SHARE_VIRTIOFS,
    .build_command = ch_build_command,
    .create = ch_create,
    .start = ch_start,
    .stop = ch_stop,
    .kill = vmm_op_kill,
    .delete = ch_delete,
    .console_path = vmm_console_path,
    .control_path = vmm_hybrid_vsock_control_path,
};
