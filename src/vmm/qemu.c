/* qemu adapter: `qemu-system-x86_64 -M microvm`, PVH boot of an ELF vmlinux,
 * KVM when usable else TCG, control over QMP. */
#define LOG_MODULE "vmm"

#include <string.h>

#include "vmm/vmm-private.h"

/* reboot=t: a guest reboot triple-faults, and -no-reboot turns that into an
 * exit; panic=-1 reboots (so exits) at once on a panic. */
#define QEMU_CMDLINE_BASE "console=ttyS0 reboot=t panic=-1"

static const char *const qemu_files[] = {".qmp", ".vsock", ".initrd"};

static char *qemu_control_path(const vmm_adapter *a, const vmm_config *cfg)
{
    return vmm_vm_path(cfg, ".vsock");
}

/* The host's TSC rate in kHz (TCG guests read the host's TSC), 0 if unknown. */
static unsigned long host_tsc_khz(void)
{
    _cleanup_fclose_ FILE *f = fopen("/proc/cpuinfo", "re");
    char line[256];
    double mhz = 0;
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "cpu MHz : %lf", &mhz) == 1)
            break;
    return mhz > 0 ? (unsigned long)(mhz * 1000) : 0;
}

static void add_disk(char ***argv, const char *id, const char *path, bool readonly)
{
    argv_add(argv, "-drive");
    argv_addf(argv, "id=%s,file=%s,format=raw,if=none,readonly=%s", id, path,
              readonly ? "on" : "off");
    argv_add(argv, "-device");
    /* The serial shows in /sys/block/vdX/serial so the guest can tell disks apart. */
    argv_addf(argv, "virtio-blk-device,drive=%s,serial=%s", id, id);
}

/* virtiofs: a vhost-user-fs device per virtiofsd socket; 9p: qemu serves the
 * directory itself (passthrough: the guest's owners and modes are the host's). */
static void add_share(char ***argv, size_t i, const vmm_share *s)
{
    if (s->transport == VMM_SHARE_VIRTIOFS) {
        argv_add(argv, "-chardev");
        argv_addf(argv, "socket,id=fs%zu,path=%s", i, s->socket);
        argv_add(argv, "-device");
        argv_addf(argv, "vhost-user-fs-device,chardev=fs%zu,tag=%s", i, s->tag);
        return;
    }
    argv_add(argv, "-fsdev");
    argv_addf(argv, "local,id=fs%zu,path=%s,security_model=passthrough%s", i, s->path,
              s->readonly ? ",readonly=on" : "");
    argv_add(argv, "-device");
    argv_addf(argv, "virtio-9p-device,fsdev=fs%zu,mount_tag=%s", i, s->tag);
}

static bool has_virtiofs(const vmm_config *cfg)
{
    for (size_t i = 0; i < cfg->n_shares; i++)
        if (cfg->shares[i].transport == VMM_SHARE_VIRTIOFS)
            return true;
    return false;
}

static int qemu_build_command(const vmm_adapter *a, const vmm_config *cfg, vmm_command *out,
                              hypr_error *err)
{
    int r = vmm_config_check(cfg, err);
    if (r < 0 || (r = vmm_shares_check(a->ops, cfg, err)) < 0)
        return r;
    if (str_empty(cfg->rootfs))
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL, "vm config: no rootfs disk");

    _cleanup_vmm_command_ vmm_command cmd = {0};
    vmm_command_init(a, cfg, &cmd);
    char ***v = &cmd.argv;

    argv_add(v, "-M");
    /* No option ROMs: less to emulate. The PIT stays: without it a TCG guest
     * cannot calibrate its TSC and the boot stalls. The serial port is the
     * console; ACPI (default on) gives the power button and poweroff. */
    /* Passed-through devices need a PCI bus: microvm has PCIe (a GPEX host bridge)
     * since QEMU 5.2, and their DMA needs all of the guest's memory pinned. */
    bool vfio = cfg->n_pci_devices > 0;
    /* vhost-user (virtiofsd) maps the guest's memory: it must be a shared memfd. */
    bool shared_mem = has_virtiofs(cfg);
    argv_addf(v, "microvm,x-option-roms=off,isa-serial=on,rtc=on%s%s", vfio ? ",pcie=on" : "",
              shared_mem ? ",memory-backend=mem" : "");
    if (shared_mem) {
        argv_add(v, "-object");
        argv_addf(v, "memory-backend-memfd,id=mem,size=%uM,share=on", cfg->memory_mb);
        /* microvm's virtio-mmio is legacy by default; vhost-user-fs needs virtio 1.x. */
        argv_add(v, "-global");
        argv_add(v, "virtio-mmio.force-legacy=false");
    }
    if (a->kvm) {
        argv_add(v, "-accel");
        argv_add(v, "kvm");
        argv_add(v, "-cpu");
        argv_add(v, "host");
    } else {
        argv_add(v, "-accel");
        argv_add(v, "tcg");
        argv_add(v, "-cpu");
        argv_add(v, "max");
    }
    argv_add(v, "-m");
    argv_addf(v, "%uM", cfg->memory_mb);
    argv_add(v, "-smp");
    argv_addf(v, "%u", cfg->vcpus);
    if (vfio) {
        argv_add(v, "-overcommit");
        argv_add(v, "mem-lock=on");
    }
    argv_add(v, "-nodefaults");
    argv_add(v, "-no-user-config");
    argv_add(v, "-display");
    argv_add(v, "none");
    argv_add(v, "-no-reboot");

    /* Under TCG the kernel's PIT calibration of the TSC fails when the host is
     * busy, and then the boot hangs for want of a clock: give it the rate. */
    unsigned long khz = a->kvm ? 0 : host_tsc_khz();
    _cleanup_free_ char *base =
        khz ? xasprintf("%s tsc_early_khz=%lu tsc=reliable", QEMU_CMDLINE_BASE, khz)
            : xstrdup(QEMU_CMDLINE_BASE);
    _cleanup_free_ char *cmdline = vmm_kernel_cmdline(cfg, base, false);
    argv_add(v, "-kernel");
    argv_add(v, cfg->kernel);
    argv_add(v, "-initrd");
    argv_add(v, cfg->initramfs);
    argv_add(v, "-append");
    argv_add(v, cmdline);

    /* The console goes to qemu's stdout, which the daemon appends to the log. */
    argv_add(v, "-chardev");
    argv_add(v, "stdio,id=console,signal=off");
    argv_add(v, "-serial");
    argv_add(v, "chardev:console");

    for (size_t i = 0; i < vmm_disk_count(cfg); i++) {
        vmm_disk_info d;
        vmm_disk_at(cfg, i, &d);
        add_disk(v, d.id, d.path, d.readonly);
    }

    for (size_t i = 0; i < cfg->n_shares; i++)
        add_share(v, i, &cfg->shares[i]);

    for (size_t i = 0; i < cfg->n_nics; i++) {
        const vmm_nic *nic = &cfg->nics[i];
        argv_add(v, "-netdev");
        argv_addf(v, "tap,id=net%zu,ifname=%s,script=no,downscript=no", i, nic->tap);
        argv_add(v, "-device");
        argv_addf(v, "virtio-net-device,netdev=net%zu%s%s", i, nic->mac ? ",mac=" : "",
                  nic->mac ? nic->mac : "");
    }

    for (size_t i = 0; i < cfg->n_pci_devices; i++) {
        argv_add(v, "-device");
        argv_addf(v, "vfio-pci,host=%s", cfg->pci_devices[i]);
    }

    /* Control channel: a virtio-serial port whose host end connects to the
     * daemon's listening socket (and reconnects if the daemon restarts).
     * vhost-vsock would need /dev/vhost-vsock and an AF_VSOCK host side. */
    _cleanup_free_ char *ctl = qemu_control_path(a, cfg);
    argv_add(v, "-device");
    argv_add(v, "virtio-serial-device,max_ports=2");
    argv_add(v, "-chardev");
    argv_addf(v, "socket,id=ctl,path=%s,server=off,reconnect=1", ctl);
    argv_add(v, "-device");
    argv_add(v, "virtserialport,chardev=ctl,name=" VMM_CONTROL_SERIAL_NAME);

    _cleanup_free_ char *qmp = vmm_vm_path(cfg, ".qmp");
    argv_add(v, "-qmp");
    argv_addf(v, "unix:%s,server=on,wait=off", qmp);

    *out = cmd;
    cmd = (vmm_command){0};
    return 0;
}

static int qemu_create(const vmm_adapter *a, const vmm_config *cfg, int timeout_ms, hypr_error *err)
{
    _cleanup_free_ char *qmp = vmm_vm_path(cfg, ".qmp");
    _cleanup_json_ json_t *st = NULL;
    int r = qmp_execute(qmp, "query-status", timeout_ms, &st, err);
    if (r < 0)
        return r;
    const char *status = json_string_value(json_object_get(st, "status"));
    log_debug("vm %.12s: qemu status %s", cfg->id, status ? status : "?");
    if (!status || (strcmp(status, "running") != 0 && strcmp(status, "prelaunch") != 0))
        return hypr_err(err, HYPR_INTERNAL, EIO, "qemu reports the VM as '%s'",
                        status ? status : "unknown");
    return 0;
}

static int qemu_start(const vmm_adapter *a, const vmm_config *cfg, int timeout_ms, hypr_error *err)
{
    return 0;
}

static int qemu_stop(const vmm_adapter *a, const vmm_config *cfg, bool graceful, int timeout_ms,
                     hypr_error *err)
{
    _cleanup_free_ char *qmp = vmm_vm_path(cfg, ".qmp");
    return qmp_execute(qmp, graceful ? "system_powerdown" : "quit", timeout_ms, NULL, err);
}

static int qemu_pause(const vmm_adapter *a, const vmm_config *cfg, bool pause, int timeout_ms,
                      hypr_error *err)
{
    _cleanup_free_ char *qmp = vmm_vm_path(cfg, ".qmp");
    return qmp_execute(qmp, pause ? "stop" : "cont", timeout_ms, NULL, err);
}

static int qemu_delete(const vmm_adapter *a, const vmm_config *cfg, hypr_error *err)
{
    return vmm_remove_vm_files(cfg, qemu_files, ARRAY_SIZE(qemu_files), err);
}

const vmm_adapter_ops vmm_qemu_ops = {
    .name = "qemu",
    .binary = "qemu-system-x86_64",
    .pci_passthrough = true,
    .share_transports = VMM_SHARE_VIRTIOFS | VMM_SHARE_9P,
    .build_command = qemu_build_command,
    .create = qemu_create,
    .start = qemu_start,
    .stop = qemu_stop,
    .pause = qemu_pause,
    .kill = vmm_op_kill,
    .delete = qemu_delete,
    .console_path = vmm_console_path,
    .control_path = qemu_control_path,
};
