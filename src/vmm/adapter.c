/* Adapter factory and the helpers every adapter shares. */
#define LOG_MODULE "vmm"

#include <fcntl.h>
#include <linux/kvm.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

#include "vmm/vmm-private.h"

static const vmm_adapter_ops *const all_adapters[] = {
    &vmm_qemu_ops,
    &vmm_cloud_hypervisor_ops,
    &vmm_firecracker_ops,
};

void vmm_command_free(vmm_command *cmd)
{
    if (!cmd)
        return;
    strv_free(cmd->argv);
    strv_free(cmd->env);
    free(cmd->stdout_path);
    cmd->argv = NULL;
    cmd->env = NULL;
    cmd->stdout_path = NULL;
}

void argv_add(char ***argv, const char *s)
{
    *argv = strv_append(*argv, s);
}

void argv_addf(char ***argv, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    _cleanup_free_ char *s = xvasprintf(fmt, ap);
    va_end(ap);
    argv_add(argv, s);
}

bool vmm_kvm_usable(void)
{
    /* HYPR_ACCEL=tcg forces software emulation (and =kvm skips the checks). */
    const char *accel = getenv("HYPR_ACCEL");
    if (accel && strcmp(accel, "tcg") == 0)
        return false;
    /* PVM (kvm_pvm) answers like KVM but runs only guest kernels built for it:
     * a distribution kernel stops with an internal error before its first line. */
    if (!(accel && strcmp(accel, "kvm") == 0) && access("/sys/module/kvm_pvm", F_OK) == 0)
        return false;
    _cleanup_close_ int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return false;
    /* A device node is not enough (containers, nested setups): ask for a VM. */
    if (ioctl(fd, KVM_GET_API_VERSION, 0) != KVM_API_VERSION)
        return false;
    _cleanup_close_ int vm = ioctl(fd, KVM_CREATE_VM, 0);
    return vm >= 0;
}

char *vmm_vm_path(const vmm_config *cfg, const char *suffix)
{
    return xasprintf("%s/%s%s", cfg->run_dir, cfg->id, suffix);
}

char *vmm_find_in_path(const char *name, const char *path_env)
{
    if (strchr(name, '/'))
        return access(name, X_OK) == 0 ? xstrdup(name) : NULL;
    if (!path_env)
        path_env = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    const char *p = path_env;
    while (*p) {
        const char *end = strchrnul(p, ':');
        if (end > p) {
            _cleanup_free_ char *dir = xstrndup(p, (size_t)(end - p));
            _cleanup_free_ char *full = path_join(dir, name);
            struct stat st;
            if (stat(full, &st) == 0 && S_ISREG(st.st_mode) && access(full, X_OK) == 0)
                return TAKE_PTR(full);
        }
        p = *end ? end + 1 : end;
    }
    return NULL;
}

static const vmm_adapter_ops *adapter_by_name(const char *name)
{
    for (size_t i = 0; i < ARRAY_SIZE(all_adapters); i++)
        if (strcmp(all_adapters[i]->name, name) == 0)
            return all_adapters[i];
    /* Accept the binary names too ("qemu-system-x86_64"). */
    for (size_t i = 0; i < ARRAY_SIZE(all_adapters); i++)
        if (strcmp(all_adapters[i]->binary, name) == 0)
            return all_adapters[i];
    return NULL;
}

static vmm_adapter *adapter_new(const vmm_adapter_ops *ops, char *binary_path, bool kvm)
{
    vmm_adapter *a = xcalloc(1, sizeof(*a));
    a->ops = ops;
    a->binary_path = binary_path;
    a->kvm = kvm;
    a->boot_timeout_ms = kvm ? VMM_KVM_BOOT_TIMEOUT_MS : VMM_TCG_BOOT_TIMEOUT_MS;
    return a;
}

int vmm_adapter_get_host(const char *setting, const vmm_host *host, vmm_adapter **out,
                         hypr_error *err)
{
    const char *path_env = host && host->path_env ? host->path_env : getenv("PATH");
    int kvm_probe = host ? host->kvm : -1;
    bool kvm = kvm_probe < 0 ? vmm_kvm_usable() : kvm_probe > 0;

    *out = NULL;
    if (str_empty(setting) || strcmp(setting, "auto") == 0) {
        for (size_t i = 0; i < ARRAY_SIZE(all_adapters); i++) {
            const vmm_adapter_ops *ops = all_adapters[i];
            char *bin = vmm_find_in_path(ops->binary, path_env);
            if (!bin)
                continue;
            /* cloud-hypervisor and firecracker run only on KVM. */
            if (!kvm && ops != &vmm_qemu_ops) {
                free(bin);
                continue;
            }
            *out = adapter_new(ops, bin, kvm);
            break;
        }
        if (!*out)
            return hypr_err(err, HYPR_FAILED_PRECONDITION, ENOENT,
                            "no hypervisor found: install qemu with 'apt-get install "
                            "qemu-system-x86' (cloud-hypervisor and firecracker also need "
                            "/dev/kvm)");
    } else {
        const vmm_adapter_ops *ops = adapter_by_name(setting);
        if (!ops)
            return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                            "unknown hypervisor '%s' (expected auto, qemu, cloud-hypervisor or "
                            "firecracker)",
                            setting);
        char *bin = vmm_find_in_path(ops->binary, path_env);
        if (!bin)
            return hypr_err(err, HYPR_FAILED_PRECONDITION, ENOENT,
                            "hypervisor '%s' is not installed (%s not found in PATH)", ops->name,
                            ops->binary);
        if (!kvm && ops != &vmm_qemu_ops) {
            free(bin);
            return hypr_err(err, HYPR_FAILED_PRECONDITION, ENODEV,
                            "hypervisor '%s' needs KVM, but /dev/kvm is not usable here (use "
                            "hypervisor 'qemu', which falls back to software emulation)",
                            ops->name);
        }
        *out = adapter_new(ops, bin, kvm);
    }
    if ((*out)->ops == &vmm_qemu_ops && !kvm)
        log_warn("/dev/kvm is not usable: qemu runs VMs with TCG software emulation (much slower)");
    log_debug("hypervisor %s (%s)%s", (*out)->ops->name, (*out)->binary_path,
              kvm ? " with KVM" : "");
    return 0;
}

int vmm_adapter_get(const char *setting, vmm_adapter **out, hypr_error *err)
{
    return vmm_adapter_get_host(setting, NULL, out, err);
}

void vmm_adapter_free(vmm_adapter *a)
{
    if (!a)
        return;
    free(a->binary_path);
    free(a);
}

/* A comma or newline would split a hypervisor option. NULL is fine. */
static bool has_separator(const char *s)
{
    return s && strpbrk(s, ",\n");
}

static int separator_err(const char *s, hypr_error *err)
{
    return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                    "vm config: '%s' contains a comma or newline", s);
}

int vmm_config_check(const vmm_config *cfg, hypr_error *err)
{
    if (str_empty(cfg->id) || strchr(cfg->id, '/'))
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL, "vm config: invalid id");
    if (str_empty(cfg->run_dir))
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL, "vm config: no run dir");
    if (str_empty(cfg->kernel))
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL, "vm config: no kernel");
    if (str_empty(cfg->initramfs))
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL, "vm config: no initramfs");
    if (cfg->vcpus < 1 || cfg->vcpus > 255)
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                        "vm config: %u vCPUs (expected 1 to 255)", cfg->vcpus);
    if (cfg->memory_mb < 64 || cfg->memory_mb > 1024u * 1024u)
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                        "vm config: %u MiB of memory (expected at least 64)", cfg->memory_mb);
    for (size_t i = 0; i < cfg->n_disks; i++)
        if (str_empty(cfg->disks[i].path))
            return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL, "vm config: disk %zu has no path",
                            i);
    for (size_t i = 0; i < cfg->n_nics; i++)
        if (str_empty(cfg->nics[i].tap))
            return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                            "vm config: network interface %zu has no tap device", i);
    /* Paths and names end up inside comma-separated hypervisor options. */
    const char *paths[] = {cfg->run_dir, cfg->kernel, cfg->initramfs, cfg->rootfs};
    for (size_t i = 0; i < ARRAY_SIZE(paths); i++)
        if (has_separator(paths[i]))
            return separator_err(paths[i], err);
    for (size_t i = 0; i < cfg->n_disks; i++)
        if (has_separator(cfg->disks[i].path))
            return separator_err(cfg->disks[i].path, err);
    for (size_t i = 0; i < cfg->n_pci_devices; i++) {
        if (str_empty(cfg->pci_devices[i]))
            return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                            "vm config: PCI device %zu has no address", i);
        if (has_separator(cfg->pci_devices[i]) || strchr(cfg->pci_devices[i], '/'))
            return separator_err(cfg->pci_devices[i], err);
    }
    for (size_t i = 0; i < cfg->n_nics; i++) {
        if (has_separator(cfg->nics[i].tap))
            return separator_err(cfg->nics[i].tap, err);
        if (has_separator(cfg->nics[i].mac))
            return separator_err(cfg->nics[i].mac, err);
    }
    return 0;
}

void vmm_command_init(const vmm_adapter *a, const vmm_config *cfg, vmm_command *cmd)
{
    *cmd = (vmm_command){0};
    argv_add(&cmd->argv, a->binary_path ? a->binary_path : a->ops->binary);
    cmd->stdout_path = a->ops->console_path(a, cfg);
}

char *vmm_kernel_cmdline(const vmm_config *cfg, const char *base, bool vsock)
{
    _cleanup_buf_ hypr_buf b = {0};
    buf_puts(&b, base);
    buf_puts(&b, vsock ? " hypr.ctl=vsock" : " hypr.ctl=serial");
    if (!str_empty(cfg->cmdline)) {
        buf_puts(&b, " ");
        buf_puts(&b, cfg->cmdline);
    }
    return buf_steal(&b);
}

int vmm_remove_vm_files(const vmm_config *cfg, const char *const *suffixes, size_t n,
                        hypr_error *err)
{
    int ret = 0;
    for (size_t i = 0; i < n; i++) {
        _cleanup_free_ char *p = vmm_vm_path(cfg, suffixes[i]);
        if (unlink(p) < 0 && errno != ENOENT && ret == 0)
            ret = hypr_err(err, HYPR_INTERNAL, errno, "remove %s: %s", p, strerror(errno));
    }
    return ret;
}

int vmm_op_kill(const vmm_adapter *a, const vmm_config *cfg, pid_t pid, hypr_error *err)
{
    if (pid <= 0)
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL, "no hypervisor process to kill");
    if (kill(pid, SIGKILL) < 0 && errno != ESRCH)
        return hypr_err(err, HYPR_INTERNAL, errno, "kill hypervisor %d: %s", (int)pid,
                        strerror(errno));
    return 0;
}

char *vmm_console_path(const vmm_adapter *a, const vmm_config *cfg)
{
    return cfg->console_log ? xstrdup(cfg->console_log) : vmm_vm_path(cfg, ".log");
}

int vmm_shares_check(const vmm_adapter_ops *ops, const vmm_config *cfg, hypr_error *err)
{
    if (cfg->n_shares > VMM_MAX_SHARES)
        return hypr_err(err, HYPR_INVALID_ARGUMENT, E2BIG,
                        "%zu shared directories (volumes and bind mounts): at most %d per VM",
                        cfg->n_shares, VMM_MAX_SHARES);
    for (size_t i = 0; i < cfg->n_shares; i++) {
        const vmm_share *s = &cfg->shares[i];
        if (ops->share_transports & s->transport)
            continue;
        if (!ops->share_transports)
            return hypr_err(err, HYPR_FAILED_PRECONDITION, EOPNOTSUPP,
                            "%s has no shared filesystem: volumes and bind mounts need qemu or "
                            "cloud-hypervisor (tmpfs mounts work everywhere)",
                            ops->name);
        return hypr_err(err, HYPR_FAILED_PRECONDITION, EOPNOTSUPP,
                        "%s cannot share %s over %s: set volume_transport to %s", ops->name,
                        s->path, s->transport == VMM_SHARE_9P ? "9p" : "virtiofs",
                        s->transport == VMM_SHARE_9P ? "virtiofs" : "9p");
    }
    return 0;
}

size_t vmm_disk_count(const vmm_config *cfg)
{
    return (cfg->rootfs ? 1 : 0) + cfg->n_disks;
}

void vmm_disk_at(const vmm_config *cfg, size_t i, vmm_disk_info *out)
{
    if (cfg->rootfs && i == 0) {
        snprintf(out->id, sizeof(out->id), "root");
        out->path = cfg->rootfs;
        out->readonly = true;
        return;
    }
    size_t k = cfg->rootfs ? i - 1 : i;
    snprintf(out->id, sizeof(out->id), "disk%zu", k + 1);
    out->path = cfg->disks[k].path;
    out->readonly = cfg->disks[k].readonly;
}

char *vmm_hybrid_vsock_control_path(const vmm_adapter *a, const vmm_config *cfg)
{
    return xasprintf("%s/%s.vsock_%u", cfg->run_dir, cfg->id, VMM_CONTROL_VSOCK_PORT);
}

uint32_t vmm_guest_cid(const vmm_config *cfg)
{
    return cfg->guest_cid >= 3 ? cfg->guest_cid : VMM_DEFAULT_GUEST_CID;
}
