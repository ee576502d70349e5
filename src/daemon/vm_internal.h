/* The running side of VMs, private to the vm_*.c files: the runtime of a VM with
 * a hypervisor process (its control channel, log followers, exec sessions,
 * metrics streams) on top of its record in the store.
 *
 * Calls go one way: vm.c (records) -> vm_start.c (lifecycle) -> vm_boot.c and
 * vm_ctl.c (control channel) -> vm_logs.c, vm_exec.c, vm_metrics.c (streams) ->
 * vm_runtime.c (registry, persistence, listeners, the channel's writer). */
#ifndef HYPR_DAEMON_VM_INTERNAL_H
#define HYPR_DAEMON_VM_INTERNAL_H

#include "netmgr.h"
#include "vm.h"
#include "vmm/vmm.h"

#include "kestrel/ctl_proto.h"

#include <pthread.h>

typedef struct log_follower log_follower;
typedef struct exec_session exec_session;

#define VM_MAX_METRICS_STREAMS 8

struct vm_runtime {
    daemon_ctx *d;
    char id[HYPR_ID_LEN + 1];
    char *name;
    vm_phase phase; /* mirrors the store's status */

    vmm_adapter *adapter;
    vmm_config cfg;
    /* Strings cfg borrows. */
    char *initrd_path, *kernel_path, *rootfs_path, *console_log, *ctl_path;

    struct vm_net *net;         /* TAPs, addresses, forwards (netmgr.c); NULL without network */
    char ip[16];                /* guest address on its first network, "" without network */
    vmm_nic nics[NET_MAX_NICS]; /* cfg.nics: point into netboot */
    vm_net_boot netboot;

    uv_process_t proc;
    bool proc_running;
    bool proc_spawned; /* proc is an initialised handle */
    int proc_pid;
    /* Re-adopted from an earlier hyprd: the hypervisor is not our child, so its
     * end is watched through a pidfd (and signals go through it too). */
    bool adopted;
    bool paused;           /* hypr pause: the hypervisor holds the vCPUs */
    uint32_t main_session; /* run -it: the exec session that is the workload (0: none) */
    bool waits_for_main;   /* -i/-t: kestrel starts the workload as a main exec session */
    bool client_attaches;  /* ... which the client opens (run -it); else hyprd does */
    bool keeps_stdin;      /* -i: its stdin stays open while no client is attached */
    bool cfg_tty;          /* -t: the workload runs on a terminal */
    bool pause_busy;       /* a pause/unpause request is with the hypervisor */
    struct pause_work *parked_unpause; /* ... or waits for the channel (re-adopted) */
    int pidfd;                         /* -1 */
    uv_poll_t pid_poll;
    bool pid_polling;

    uv_pipe_t ctl_listener;
    bool ctl_listening;
    uv_pipe_t ctl_conn;
    bool ctl_connected;
    ctl_decoder dec;
    const struct vm_ctl_handlers *ctl_handlers;

    uv_timer_t boot_timer;
    uv_timer_t stop_timer;
    /* Re-adopted: how long the control channel gets to come back (qemu reconnects
     * every second); exec calls and a stop's SHUTDOWN wait for it meanwhile. */
    uv_timer_t reconnect_timer;
    bool shutdown_pending;
    int handles_open; /* closing handles and queued work still outstanding */

    char **gpus;              /* PCI devices passed through (cfg.pci_devices); NULL: none */
    struct vm_mounts *mounts; /* shares, virtiofsd, the writable layer (vm_mounts.c) */

    bool workload_started;
    bool workload_exited; /* for good: no restart coming from kestrel */
    bool stop_requested;  /* by the user or the daemon: restart policies do not apply */
    int stop_signal;      /* of the stop under way; 0 = the VM's own */
    bool manual_stop;     /* by the user: an unless-stopped VM stays down across hyprd restarts */
    bool keep_started_at; /* re-adopted while running: its start time stays */
    bool remove_after;    /* --rm, or DeleteVM(force) of a running VM */
    bool remove_volumes;  /* ... and its anonymous volumes (rm -fv) */
    int exit_code;
    uint32_t restarts;
    int64_t boot_started_ms;
    ctl_hello boot_phases;
    hypr_error failure; /* why the hypervisor died or the boot failed (status OK: none) */

    /* Partial workload output lines per stream (1 stdout, 2 stderr). */
    hypr_buf partial[3];
    int log_fds[2]; /* <id>.log and its .stdio records, opened at the first line; -1 */

    log_follower *followers; /* StreamLogs follow calls */
    exec_session *execs;
    rpc_call *metrics_calls[VM_MAX_METRICS_STREAMS];
    uint64_t last_metrics[CTL_M_COUNT];
    uint64_t prev_metrics[CTL_M_COUNT];
    uint32_t next_session;

    vm_runtime *next;
};

/* ---- registry, persistence, listeners (vm_runtime.c) --------------------------- */

/* kestrel's name of a boot phase (CTL_PHASE_*: "rootfs"), NULL when unknown. */
const char *vm_boot_phase_name(uint32_t phase);
vm_runtime *vm_runtime_new(daemon_ctx *d, const char *id, const char *name);
vm_runtime *vm_runtime_find(daemon_ctx *d, const char *id);
/* The runtime of a VM named by ID, prefix or name (need_workload: with a running
 * workload and a connected control channel); FAILED_PRECONDITION "VM x is not
 * running" otherwise. */
int vm_runtime_lookup(daemon_ctx *d, const char *ref, bool need_workload, vm_runtime **out,
                      hypr_error *err);
/* Takes the runtime out of the registry; it is freed once its handles are closed. */
void vm_runtime_unlink(vm_runtime *vm);
/* Closes a handle that lives in the runtime; the runtime is freed only once
 * every such close has completed. */
void vm_close_handle(vm_runtime *vm, uv_handle_t *h);
/* Spawns argv in its own session (it outlives hyprd, to be re-adopted), stdin
 * /dev/null, stdout and stderr appended to log_path; h->data = vm. On failure h
 * is closed and err says why (FAILED_PRECONDITION). */
int vm_spawn_detached(vm_runtime *vm, uv_process_t *h, char **argv, char **env,
                      const char *log_path, uv_exit_cb exit_cb, hypr_error *err);
/* Frees the runtime if it is unlinked and nothing is outstanding. */
void vm_runtime_maybe_free(vm_runtime *vm);
/* Persists the runtime's phase (status, timestamps, exit code, error, address). */
void vm_persist(vm_runtime *vm, vm_phase phase);
/* Tells every listener. */
void vm_notify(daemon_ctx *d, const vm_notice *n);
/* vm_persist, then a PHASE (or, for STOPPED/FAILED, an EXIT) notice. */
void vm_set_phase(vm_runtime *vm, vm_phase phase);
/* Queues one encoded frame to kestrel; -ENOTCONN when the channel is down. */
int vm_ctl_send(vm_runtime *vm, ctl_buf *frame);
char *vm_log_path(daemon_ctx *d, const char *id);

/* ---- the lifecycle (vm_start.c) ------------------------------------------------ */

/* What kestrel's reports do to the lifecycle. */
extern const struct vm_ctl_handlers vm_lifecycle_handlers;
/* The runtime of a record about to boot or be re-adopted: adapter, paths, NICs. */
vm_runtime *vm_runtime_for(daemon_ctx *d, const store_vm *rec, const Hypr__V1__VMConfig *cfg,
                           const store_image *img, vmm_adapter *adapter, struct vm_net *net,
                           const vm_net_boot *boot);
/* The hypervisor process ended (status_known: exit_status/term_signal are real,
 * which they are not for a re-adopted process). Settles the VM. */
void vm_proc_ended(vm_runtime *vm, bool status_known, int64_t exit_status, int term_signal);
/* The boot must reach the workload within the adapter's boot timeout from now. */
void vm_arm_boot_deadline(vm_runtime *vm);
/* Sends a signal to the hypervisor, our child or a re-adopted one. */
void vm_proc_kill(vm_runtime *vm, int sig);
/* "<run-dir>/<id>.proc": the hypervisor's pid, start time and adapter, for the
 * next hyprd to re-adopt it. */
char *vm_proc_file(daemon_ctx *d, const char *id);
/* What the next hyprd needs to find this hypervisor again (pid, start time, adapter,
 * paused); a VM without the file cannot be re-adopted, which costs its workload but
 * nothing else. Written at the spawn and at each pause/unpause. */
void vm_write_proc_file(vm_runtime *vm);
/* An unpause that waited for the channel of a re-adopted VM goes on (the channel is
 * back, or will not come, or the VM ended). */
void vm_pause_resume_parked(vm_runtime *vm);

/* ---- re-adoption at start-up (vm_adopt.c) ------------------------------------ */

/* Re-adopts the VMs whose hypervisor outlived the previous hyprd, settles the
 * ones whose hypervisor is gone, and starts those whose restart policy says so. */
int vm_adopt_all(daemon_ctx *d, hypr_error *err);

/* ---- removal (vm_start.c) ------------------------------------------------------ */

/* The record, its addresses and files go; REMOVED is reported. A store failure
 * leaves everything in place. */
int vm_remove_record_err(daemon_ctx *d, const char *id, const char *name, bool remove_volumes,
                         hypr_error *err);

/* ---- what a boot needs (vm_boot.c) ------------------------------------------- */

/* Guest kernel and the shared initramfs, prepared once per daemon. */
typedef struct vm_host {
    pthread_mutex_t lock; /* starts prepare on the thread pool, possibly at once */
    vmm_kernel kernel;
    char *kernel_setting; /* the `kernel` setting kernel was found with */
    char *initramfs;      /* <run-dir>/kestrel-initramfs.cpio */
    char *kestrel;        /* the static agent binary */
    bool ready;
} vm_host;

vm_host *vm_host_new(const char *run_dir);
void vm_host_free(vm_host *h);
/* Thread pool: the kernel and initramfs for kernel_setting, then the VM's own
 * initrd (the shared one + the manifest); *kernel_path receives the kernel. */
int vm_host_prepare(vm_host *h, const char *data_dir, const char *kernel_setting,
                    const char *manifest, size_t manifest_len, const char *initrd_path,
                    char **kernel_path, hypr_error *err);
/* The runtime manifest kestrel reads: the image's defaults, overridden by the config
 * (Docker's rules), the NICs, the restart policy. */
/* The image's StopSignal as a name ("SIGQUIT"), NULL when it has none. */
char *image_stop_signal(const store_image *img);
/* The ports the image exposes ("80/tcp"), NULL-terminated; NULL for none. */
char **image_exposed_ports(const store_image *img);
int vm_build_manifest(const store_vm *rec, const Hypr__V1__VMConfig *cfg, const store_image *img,
                      const vm_net_boot *net, const struct vm_mounts *mounts, char **out,
                      size_t *out_len, hypr_error *err);

/* ---- filesystems of a start (vm_mounts.c) ------------------------------------- */

typedef struct vm_mounts vm_mounts;
/* <data>/layers/<id>.ext4, the VM's writable layer (removed with the record). */
char *vm_layer_path(daemon_ctx *d, const char *id);
/* The shares and the layer a start of rec attaches: FAILED_PRECONDITION / NOT_FOUND
 * naming a mount whose volume or directory is gone or that the adapter cannot take. */
int vm_mounts_plan(daemon_ctx *d, const store_vm *rec, const Hypr__V1__VMConfig *cfg,
                   const vmm_adapter *adapter, vm_mounts **out, hypr_error *err);
void vm_mounts_free(vm_mounts *p);
/* Points cfg's shares and disks at the plan's (which must outlive cfg). */
void vm_mounts_attach(vm_mounts *p, vmm_config *cfg);
/* The manifest's volume lines, upper disk and read-only root. */
struct kestrel_manifest;
void vm_mounts_manifest(const vm_mounts *p, const Hypr__V1__VMConfig *cfg,
                        struct kestrel_manifest *m);
/* Loop: spawns a virtiofsd per virtiofs share (output to the console log). */
int vm_mounts_spawn(vm_runtime *vm, hypr_error *err);
/* Pool: makes the writable layer at the first start, waits for virtiofsd's sockets. */
int vm_mounts_prepare(vm_mounts *p, hypr_error *err);
/* Loop: the run is over (kill_helpers: virtiofsd that are left get SIGTERM) or
 * hyprd lets the VM go (they run on). */
void vm_mounts_end(vm_runtime *vm, bool kill_helpers);

/* ---- GPU passthrough (vm_gpu.c) ---------------------------------------------- */

void vm_gpu_init(daemon_ctx *d);
void vm_gpu_free(daemon_ctx *d);
/* The devices a start passes through, the whole IOMMU group of each GPU asked for
 * (*out NULL without a request); FAILED_PRECONDITION when the adapter cannot. */
int vm_gpu_select(daemon_ctx *d, const char *id, const Hypr__V1__VMConfig *cfg,
                  const vmm_adapter *adapter, char ***out, hypr_error *err);
/* Thread pool, before the spawn: records vm->gpus in the VM's claim, then binds
 * them to vfio-pci and checks VFIO can use them. On error the claim stays for
 * vm_gpu_give_back(). */
int vm_gpu_take(vm_runtime *vm, hypr_error *err);
/* When the VM holds devices: gives them back on the thread pool, then calls
 * then(vm, failed) on the loop, and returns true. False (then not called) when
 * it holds none. */
bool vm_gpu_give_back(vm_runtime *vm, bool failed, void (*then)(vm_runtime *vm, bool failed));
/* Start-up, after re-adoption: gives back the devices of every VM that is not
 * running any more. */
void vm_gpu_release_orphans(daemon_ctx *d);
/* Whether a run-dir file name is a claim (removing a VM's files keeps it: the
 * devices must be given back first). */
bool vm_gpu_file_is_claim(const char *name);

/* ---- control channel (vm_ctl.c) ----------------------------------------- */

/* What the lifecycle does with kestrel's reports. */
struct vm_ctl_handlers {
    /* The workload started (kestrel's boot phases include WORKLOAD_START). */
    void (*workload_started)(vm_runtime *vm);
    /* The workload exited with code; again: kestrel runs it again (restart policy). */
    void (*workload_exited)(vm_runtime *vm, int code, bool again, uint32_t restarts);
    /* The channel is (again) connected. */
    void (*channel_up)(vm_runtime *vm);
};
typedef struct vm_ctl_handlers vm_ctl_handlers;

int vm_ctl_listen(vm_runtime *vm, const vm_ctl_handlers *h, hypr_error *err);
void vm_ctl_close(vm_runtime *vm);

/* ---- logs (vm_logs.c) --------------------------------------------------- */

/* Appends workload output (stream 1 stdout, 2 stderr), split into lines. */
void vm_log_append(vm_runtime *vm, int stream, const uint8_t *data, size_t len);
/* Writes out partial lines (at exit). */
void vm_log_flush(vm_runtime *vm);
/* Ends every follower of the VM (it stopped). */
void vm_log_end_followers(vm_runtime *vm);

/* ---- exec (vm_exec.c) --------------------------------------------------- */

/* Whether the control channel of a re-adopted VM is still to come back (exec
 * calls wait for it). */
bool vm_channel_pending(const vm_runtime *vm);
/* The channel is back: the exec sessions that waited for it start. */
void vm_exec_channel_up(vm_runtime *vm);
/* Starts the workload of a -i/-t VM as a main session nobody is attached to yet
 * (its output goes to the logs; hypr attach joins it). */
void vm_exec_start_detached_main(vm_runtime *vm);
/* A frame for an exec session arrived from kestrel. */
void vm_exec_frame(vm_runtime *vm, const ctl_frame *f);
/* The VM went away: every session ends with an error. */
void vm_exec_end_all(vm_runtime *vm, const char *why);

/* ---- metrics (vm_metrics.c) --------------------------------------------- */

void vm_metrics_frame(vm_runtime *vm, const ctl_frame *f);
void vm_metrics_end_all(vm_runtime *vm);

#endif
