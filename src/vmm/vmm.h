/* hypr vmm module: hypervisor adapters (qemu, cloud-hypervisor, firecracker),
 * guest kernel discovery and the kestrel initramfs.
 *
 * Lifecycle of one VM, as the daemon drives it:
 *
 *   vmm_kernel_find()            once per daemon (cached ELF vmlinux + module dir)
 *   vmm_initramfs_ensure()       once per kernel/kestrel (rebuilt only on change)
 *   ops->delete()                clears leftovers of an earlier run of this VM
 *   vmm_write_vm_initrd()        <run-dir>/<id>.initrd = base cpio + manifest cpio
 *   listen on ops->control_path() (the guest connects to the daemon, see below)
 *   ops->build_command()         argv/env/stdout for uv_spawn
 *   uv_spawn(...)                stdin /dev/null; stdout+stderr appended to
 *                                cmd.stdout_path (the serial console goes there)
 *   ops->create()                waits for the API/QMP socket, configures the VM
 *   ops->start()                 boots it (cloud-hypervisor, firecracker)
 *   accept on the control socket with a deadline of adapter->boot_timeout_ms;
 *                                no connection by then: ops->kill() and fail
 *   ops->stop(graceful)          power button / Ctrl-Alt-Del / hard shutdown;
 *                                the daemon waits for the child's exit itself
 *   ops->kill(pid)               SIGKILL
 *   ops->delete()                removes sockets and the per-VM initrd
 *
 * create/start/stop do blocking socket I/O bounded by their timeout: call them
 * from the libuv thread pool, never on the loop thread. build_command, the
 * endpoints and the request builders do no I/O.
 *
 * Control channel: kestrel connects to the host (CTL_VSOCK_CID:CTL_VSOCK_PORT over
 * vsock, or opens the virtio-serial port "hypr.ctl"). Either way the daemon
 * listens on the unix socket ops->control_path() BEFORE spawning the hypervisor
 * and accepts one stream connection:
 *   qemu:                  <run-dir>/<id>.vsock       (qemu's chardev connects to
 *                          it and reconnects every second if the daemon restarts)
 *   cloud-hypervisor/fc:   <run-dir>/<id>.vsock_1024  (hybrid vsock forwards guest
 *                          connections to port P to "<uds>_P"; the hypervisor
 *                          itself listens on <run-dir>/<id>.vsock)
 * The kernel command line carries "hypr.ctl=serial" or "hypr.ctl=vsock" so kestrel
 * knows which one it has. */
#ifndef HYPR_VMM_H
#define HYPR_VMM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/common.h"

/* Must match guest/kestrel/include/kestrel/ctl_proto.h (CTL_VSOCK_PORT, CTL_SERIAL_NAME). */
#define VMM_CONTROL_VSOCK_PORT  1024
#define VMM_CONTROL_SERIAL_NAME "hypr.ctl"
#define VMM_DEFAULT_GUEST_CID   3

/* ---- VM description ----------------------------------------------------- */

typedef struct vmm_disk {
    const char *path;
    bool readonly;
} vmm_disk;

/* One virtio-net interface: a host TAP device and the guest's MAC. */
/* A host directory shared with the guest, which mounts it by tag. */
typedef enum { VMM_SHARE_VIRTIOFS = 1, VMM_SHARE_9P = 2 } vmm_share_transport;
typedef struct vmm_share {
    const char *tag;    /* the guest's mount source, e.g. "hyprfs0" (at most 31 bytes) */
    const char *path;   /* host directory (9p: the hypervisor serves it) */
    const char *socket; /* virtiofs: the vhost-user socket of the virtiofsd serving path */
    bool readonly;      /* 9p: refused by the host too; virtiofs: the guest mounts it ro */
    vmm_share_transport transport;
} vmm_share;

typedef struct vmm_nic {
    const char *tap; /* TAP device name (required) */
    const char *mac; /* guest MAC "02:xx:..", NULL = hypervisor default */
} vmm_nic;

/* Everything an adapter needs to run one VM. All strings are borrowed from the
 * caller and must outlive every call that takes the config. */
typedef struct vmm_config {
    const char *id;        /* VM id (64 hex); names every per-VM file */
    unsigned vcpus;        /* >= 1 */
    unsigned memory_mb;    /* >= 64 */
    const char *kernel;    /* uncompressed ELF vmlinux (vmm_kernel.path) */
    const char *initramfs; /* <run-dir>/<id>.initrd from vmm_write_vm_initrd() */
    const char *cmdline;   /* extra kernel arguments after the adapter's own; may be NULL */
    const char *rootfs;    /* image rootfs (squashfs); always attached read-only as the
                              first disk (/dev/vda) */
    const vmm_disk *disks; /* further disks (/dev/vdb, ...) */
    size_t n_disks;
    const vmm_nic *nics;     /* network interfaces in order (guest sees them in this order where
                                the hypervisor allows; the guest agent finds each by MAC) */
    size_t n_nics;           /* 0 = no network interface */
    const char *run_dir;     /* per-VM sockets live here */
    uint32_t guest_cid;      /* vsock CID for cloud-hypervisor/firecracker; 0 = 3 */
    const char *console_log; /* serial console log (<data-dir>/logs/<id>.log); NULL =
                                <run-dir>/<id>.log. Becomes vmm_command.stdout_path. */
    /* Host PCI devices passed through with VFIO ("0000:01:00.0"), already bound to
     * vfio-pci, whole IOMMU groups. Only adapters with ops->pci_passthrough take them;
     * the others refuse the config. The guest's memory is then locked (VFIO pins it). */
    const char *const *pci_devices;
    size_t n_pci_devices;
    /* Shared directories (volumes, bind mounts); only over the transports in the
     * adapter's ops->share_transports (vmm_shares_check). */
    const vmm_share *shares;
    size_t n_shares;
} vmm_config;

/* What the daemon spawns. argv[0] is the absolute binary path. env NULL =
 * inherit the daemon's environment. The daemon opens stdout_path with
 * O_WRONLY|O_CREAT|O_APPEND|O_CLOEXEC and gives it to the child as stdout and
 * stderr: the guest's serial console and the hypervisor's own messages. */
typedef struct vmm_command {
    char **argv;
    char **env;
    char *stdout_path;
} vmm_command;
void vmm_command_free(vmm_command *cmd);
static inline void vmm_command_freep(vmm_command *c)
{
    vmm_command_free(c);
}
#define _cleanup_vmm_command_ _cleanup_(vmm_command_freep)

/* ---- adapters ----------------------------------------------------------- */

typedef struct vmm_adapter vmm_adapter;

typedef struct vmm_adapter_ops {
    const char *name;          /* "qemu", "cloud-hypervisor", "firecracker" */
    const char *binary;        /* executable looked up in PATH */
    bool pci_passthrough;      /* takes vmm_config.pci_devices (VFIO) */
    unsigned share_transports; /* VMM_SHARE_* bits it can attach (0: no shared directories) */
    int (*build_command)(const vmm_adapter *a, const vmm_config *cfg, vmm_command *out,
                         hypr_error *err);
    /* After spawn: waits up to timeout_ms for the hypervisor's API/QMP socket and
     * configures the VM (qemu: checks it is running). */
    int (*create)(const vmm_adapter *a, const vmm_config *cfg, int timeout_ms, hypr_error *err);
    /* Boots the configured VM (qemu: no-op, it runs from spawn). */
    int (*start)(const vmm_adapter *a, const vmm_config *cfg, int timeout_ms, hypr_error *err);
    /* graceful: ACPI power button (qemu, cloud-hypervisor) or Ctrl-Alt-Del
     * (firecracker); the guest decides. Not graceful: the hypervisor stops now
     * (qemu quit, cloud-hypervisor vm.shutdown + vmm.shutdown; firecracker has
     * none: -EOPNOTSUPP, use kill). Returns once the request is accepted. */
    int (*stop)(const vmm_adapter *a, const vmm_config *cfg, bool graceful, int timeout_ms,
                hypr_error *err);
    /* pause: the vCPUs stop (qemu: QMP stop); !pause: they run again (cont). NULL when
     * the hypervisor cannot (yet). Blocking: call it off the loop. */
    int (*pause)(const vmm_adapter *a, const vmm_config *cfg, bool pause, int timeout_ms,
                 hypr_error *err);
    /* SIGKILL to the hypervisor process (pid from uv_spawn). */
    int (*kill)(const vmm_adapter *a, const vmm_config *cfg, pid_t pid, hypr_error *err);
    /* Removes the VM's sockets and per-VM initrd from the run dir; idempotent. */
    int (*delete)(const vmm_adapter *a, const vmm_config *cfg, hypr_error *err);
    /* Where the serial console goes: the command's stdout_path. Caller frees. */
    char *(*console_path)(const vmm_adapter *a, const vmm_config *cfg);
    /* The unix socket the daemon listens on for kestrel's control stream. Caller frees. */
    char *(*control_path)(const vmm_adapter *a, const vmm_config *cfg);
} vmm_adapter_ops;

struct vmm_adapter {
    const vmm_adapter_ops *ops;
    char *binary_path;   /* resolved absolute path of ops->binary */
    bool kvm;            /* hardware virtualization in use */
    int boot_timeout_ms; /* how long a healthy boot may take to reach the control channel */
    /* cloud-hypervisor only: start the process with just its API socket and
     * configure + boot through vm.create/vm.boot (default: the command line
     * carries the VM and it boots at spawn). Firecracker always uses its API. */
    bool configure_via_api;
};

/* Host facts the factory depends on; injectable for tests. */
typedef struct vmm_host {
    const char *path_env; /* PATH to search; NULL = getenv("PATH") */
    int kvm;              /* -1 = probe /dev/kvm, 0 = unusable, 1 = usable */
} vmm_host;

/* setting: "auto" (or NULL/""), "qemu", "cloud-hypervisor", "firecracker".
 * auto = the first of qemu-system-x86_64, cloud-hypervisor, firecracker found
 * in PATH. qemu without KVM uses TCG and logs one warning. */
int vmm_adapter_get(const char *setting, vmm_adapter **out, hypr_error *err);
int vmm_adapter_get_host(const char *setting, const vmm_host *host, vmm_adapter **out,
                         hypr_error *err);
void vmm_adapter_free(vmm_adapter *a);
DEFINE_CLEANUP_FUNC(vmm_adapter, vmm_adapter_free)
#define _cleanup_vmm_adapter_ _cleanup_(vmm_adapter_freep)

/* True when /dev/kvm opens read-write and creates a VM. */
bool vmm_kvm_usable(void);

/* qemu with KVM only (else a no-op): /dev/kvm can create VMs and still fail
 * to run a real guest (nested setups stop with "KVM internal error" and qemu
 * hangs). Boots `kernel` (the ELF vmlinux) under KVM for at most timeout_ms
 * (5000 is plenty) without a root filesystem; unless it gets to the root mount,
 * the adapter switches to TCG with one warning. Call it once after
 * vmm_kernel_find(), on the thread pool. Errors only when qemu cannot be spawned. */
int vmm_adapter_verify_kvm(vmm_adapter *a, const char *kernel, int timeout_ms, hypr_error *err);

/* "<run-dir>/<id><suffix>": the naming rule for every per-VM file. Caller frees. */
char *vmm_vm_path(const vmm_config *cfg, const char *suffix);
/* FAILED_PRECONDITION when the adapter cannot attach one of cfg's shares. */
int vmm_shares_check(const struct vmm_adapter_ops *ops, const vmm_config *cfg, hypr_error *err);
/* The most shared directories a VM may have (virtio-mmio slots are few). */
#define VMM_MAX_SHARES 16

/* ---- guest kernel ------------------------------------------------------- */

typedef struct vmm_kernel_opts {
    const char *setting;      /* the `kernel` setting; NULL/"" = discover */
    const char *data_dir;     /* <data-dir>: kernel/vmlinux, kernel/cache/ */
    const char *boot_dir;     /* NULL = "/boot" */
    const char *modules_root; /* NULL = "/lib/modules" */
} vmm_kernel_opts;

typedef struct vmm_kernel {
    char *path;        /* uncompressed ELF vmlinux to boot */
    char *version;     /* "6.1.0-13-amd64"; NULL when unknown */
    char *modules_dir; /* <modules_root>/<version> when it exists, else NULL */
} vmm_kernel;
void vmm_kernel_clear(vmm_kernel *k);

/* Order: the setting, else <data-dir>/kernel/vmlinux, else the newest
 * <boot_dir>/vmlinuz-*. A compressed kernel (bzImage) is decompressed once into
 * <data-dir>/kernel/cache/vmlinux-<version>-<stamp>; later calls find it there and
 * do no work. Not thread-safe for the same data dir: call it from one thread. */
int vmm_kernel_find(const vmm_kernel_opts *opts, vmm_kernel *out, hypr_error *err);

/* ---- initramfs ---------------------------------------------------------- */

typedef struct vmm_initramfs_opts {
    const char *kestrel;        /* the static kestrel binary, becomes /init */
    const char *kernel_version; /* stamp key; may be NULL */
    const char *modules_dir;    /* /lib/modules/<ver>; NULL = no modules */
    const char *out;            /* <run-dir>/kestrel-initramfs.cpio */
} vmm_initramfs_opts;

/* Builds opts->out = /init (kestrel, 0755) + /lib/modules/<name>.ko for the
 * virtio/vsock/squashfs/overlay modules and their dependencies (decompressed)
 * + /hypr/modules.order (one /lib/modules/<name>.ko per line, dependencies
 * first: load them in this order). Does nothing when the stamp file
 * "<out>.stamp" says kernel and kestrel are unchanged. *rebuilt may be NULL. */
int vmm_initramfs_ensure(const vmm_initramfs_opts *opts, bool *rebuilt, hypr_error *err);

/* out = base_cpio + a second cpio holding /hypr/manifest (the kernel unpacks
 * concatenated archives). Written atomically. */
int vmm_write_vm_initrd(const char *base_cpio, const void *manifest, size_t manifest_len,
                        const char *out, hypr_error *err);

#endif
