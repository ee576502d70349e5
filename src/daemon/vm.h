/* The daemon's VM lifecycle: records (create, rename, delete), the running side
 * (start, stop, kill, the boot deadline, exit handling, restart policy) and the
 * one interface through which it reports what happens to a VM. It knows nothing
 * of RPCs: the API layer, the event bus and later metrics or compose are
 * listeners. The runtime itself (vm_internal.h) is private to the vm_*.c files.
 * Internal to src/daemon. */
#ifndef HYPR_DAEMON_VM_H
#define HYPR_DAEMON_VM_H

#include "daemon.h"

#include "gpu/gpu.h"

#include "hypr.pb-c.h"

typedef struct vm_runtime vm_runtime;
struct vm_net;

/* ---- what the lifecycle reports ------------------------------------------------ */

typedef enum vm_phase {
    VM_PHASE_CREATED,
    VM_PHASE_BOOTING,    /* a start was accepted: preparing, then the hypervisor boots */
    VM_PHASE_RUNNING,    /* kestrel started the workload */
    VM_PHASE_RESTARTING, /* the workload exited and kestrel runs it again (restart policy) */
    VM_PHASE_STOPPING,
    VM_PHASE_STOPPED,
    VM_PHASE_FAILED,
} vm_phase;

typedef enum vm_notice_kind {
    VM_NOTICE_PHASE,   /* phase: CREATED, BOOTING, RUNNING, RESTARTING, STOPPING */
    VM_NOTICE_EXIT,    /* the hypervisor is gone; phase STOPPED or FAILED, final state stored */
    VM_NOTICE_REMOVED, /* the record and its files are gone (err set: a removal that
                        * nobody waited on failed, and the record stays) */
    VM_NOTICE_RENAMED,
} vm_notice_kind;

typedef struct vm_notice {
    vm_notice_kind kind;
    const char *id;
    const char *name;
    vm_phase phase;
    int exit_code;         /* EXIT (and the last one on other notices) */
    const char *image;     /* CREATED: the image reference */
    const char *old_name;  /* RENAMED */
    const hypr_error *err; /* why it failed (EXIT with FAILED, REMOVED); NULL otherwise */
} vm_notice;

/* A listener is told, on the loop thread, about every VM. It may add or remove
 * listeners, and call the lifecycle, from its callback. */
typedef struct vm_listener {
    void (*notify)(struct vm_listener *l, daemon_ctx *d, const vm_notice *n);
    struct vm_listener *next;
} vm_listener;

void vm_listener_add(daemon_ctx *d, vm_listener *l);
void vm_listener_remove(daemon_ctx *d, vm_listener *l);
const char *vm_phase_status(vm_phase phase); /* "running", as stored */

/* ---- records --------------------------------------------------------------- */

/* The stored config of a record (NULL-safe cleanup: _cleanup_vm_config_). */
int vm_config_decode(const store_vm *rec, Hypr__V1__VMConfig **out, hypr_error *err);
static inline void vm_config_freep(Hypr__V1__VMConfig **c)
{
    if (*c)
        hypr__v1__vmconfig__free_unpacked(*c, NULL);
}
#define _cleanup_vm_config_ _cleanup_(vm_config_freep)

/* Validates a config and applies defaults; fills err with INVALID_ARGUMENT. */
int vm_config_check(daemon_ctx *d, Hypr__V1__VMConfig *cfg, hypr_error *err);
/* Creates the record (status created). out receives the stored record. */
int vm_create(daemon_ctx *d, const Hypr__V1__VMConfig *cfg, store_vm *out, hypr_error *err);
/* Renames a VM (ID, unique prefix or name): the record, its config, and a running
 * VM's DNS names. INVALID_ARGUMENT for a bad name, ALREADY_EXISTS when taken. The
 * renamed record is left in *out (cleared by the caller, also on error). */
int vm_rename(daemon_ctx *d, const char *ref, const char *name, store_vm *out, hypr_error *err);
/* 0 = deleted (REMOVED was reported); 1 = a running VM is being killed (force) and
 * goes once it is down (REMOVED follows EXIT); <0 error. */
int vm_delete(daemon_ctx *d, const char *ref, bool force, bool remove_volumes, hypr_error *err);
/* Removes a record that never ran (a RunVM whose start failed); with
 * remove_volumes (or when the VM is --rm) its anonymous volumes go too. */
void vm_remove_record(daemon_ctx *d, const char *id, const char *name, bool remove_volumes);

/* ---- running ------------------------------------------------------------------ */

/* Starts a created or stopped VM: BOOTING is reported before it returns, then
 * RUNNING, or EXIT with FAILED. client_attaches: the caller opens the workload's
 * session of a -i/-t VM itself (run -it, start -a); otherwise hyprd starts it. */
int vm_start(daemon_ctx *d, const char *ref, bool client_attaches, hypr_error *err);
/* Graceful stop: SHUTDOWN to kestrel, kill after timeout_s (-1: the VM's own stop
 * timeout; 0: kill now). 0 = it was not running (nothing to wait for); 1 = it is
 * stopping and EXIT follows. */
int vm_stop(daemon_ctx *d, const char *ref, int timeout_s, int sig, hypr_error *err);
/* The signal a stop sends the VM's workload: its config's (the image's when the run
 * gave none), else SIGTERM. */
int vm_stop_signal(const store_vm *rec);
/* docker kill: SIGKILL or the stop signal stop the VM (as vm_stop, no restart);
 * another signal goes to the workload, which keeps running unless it dies of it.
 * FAILED_PRECONDITION when the VM is not running. */
int vm_kill(daemon_ctx *d, const char *ref, int sig, hypr_error *err);
/* docker update of a VM that is not running: the restart policy, CPUs and memory given
 * (NULL / 0: kept) are checked as at creation and stored; *out is the record. */
int vm_update(daemon_ctx *d, const char *ref, const Hypr__V1__RestartPolicy *restart, uint32_t cpus,
              uint64_t memory_mb, store_vm *out, hypr_error *err);
/* hypr pause / unpause of a running VM: done(r, err, ud) is called once the hypervisor
 * answered. <0 (nothing queued, done not called) when the VM cannot be (un)paused. */
typedef void (*vm_pause_done)(int r, hypr_error *err, void *ud);
int vm_pause(daemon_ctx *d, const char *ref, bool pause, vm_pause_done done, void *ud,
             hypr_error *err);
bool vm_is_paused(daemon_ctx *d, const char *id);
/* Whether the VM has a runtime (booting, running, stopping); its status then. */
const char *vm_running_status(daemon_ctx *d, const char *id);
/* A running VM's network attachment (NULL when not running or without a network). */
struct vm_net *vm_running_net(daemon_ctx *d, const char *id);

/* ---- the manager -------------------------------------------------------------- */

void vm_manager_init(daemon_ctx *d);
void vm_manager_free(daemon_ctx *d);
/* Re-adopts the VMs whose hypervisor outlived the previous hyprd, settles those
 * whose hypervisor ended meanwhile, kills hypervisors no record claims, removes
 * stale TAPs, then starts the VMs whose restart policy brings them back with the
 * daemon. A store failure is returned. */
int vm_manager_reconcile(daemon_ctx *d, hypr_error *err);
/* Daemon shutdown: with the shutdown_policy setting `keep` (default) running VMs
 * are let go and run on; with `stop` each is stopped. done() runs once none is
 * left in this hyprd. */
void vm_manager_shutdown(daemon_ctx *d, void (*done)(daemon_ctx *d));

/* ---- GPUs (vm_gpu.c) ------------------------------------------------------------ */

/* Checks a config's GpuRequest against the host (CreateVM, RunVM): the devices
 * exist and have an IOMMU group, the boot VGA device only with force, none held
 * by a VM. No request: 0. */
int vm_gpu_check(daemon_ctx *d, const Hypr__V1__VMConfig *cfg, hypr_error *err);
/* pci.ids names, read once. */
gpu_ids *vm_gpu_ids(daemon_ctx *d);
/* The claims in the run dir: which VM holds which devices. */
typedef struct vm_gpu_claims {
    struct {
        char id[HYPR_ID_LEN + 1];
        gpu_claim claim;
    } * items;
    size_t n;
} vm_gpu_claims;
void vm_gpu_claims_load(daemon_ctx *d, vm_gpu_claims *out);
void vm_gpu_claims_clear(vm_gpu_claims *c);
/* The ID of the VM holding address (except, when not NULL, does not count), or NULL. */
const char *vm_gpu_claims_holder(const vm_gpu_claims *c, const char *address, const char *except);

/* ---- restart policy (pure; vm_policy.c) ----------------------------------------- */

typedef struct vm_restart_input {
    const char *policy;   /* "no", "always", "on-failure", "unless-stopped" */
    uint32_t max_retries; /* on-failure:N (0 = unlimited) */
    uint32_t restarts;    /* restarts so far */
    bool workload_started;
    bool failed; /* the hypervisor died under the workload, or the boot failed */
    bool stop_requested;
    bool shutting_down;
} vm_restart_input;
/* Whether hyprd starts the VM again after its hypervisor ended. kestrel applies
 * the policy to the workload inside the VM; this is for a hypervisor that died. */
bool vm_should_restart(const vm_restart_input *in);
/* Delay before restart number n (1-based): 500 ms doubling, at most 30 s. */
uint64_t vm_restart_delay_ms(uint32_t n);
/* At daemon start-up, for a VM that has run and is not running: whether its policy
 * brings it back with the daemon (manual_stop: the user stopped it; on-failure needs
 * a non-zero exit code and retries left). */
bool vm_policy_restarts_with_daemon(const char *policy, uint32_t max_retries,
                                    uint32_t restart_count, bool manual_stop, int exit_code);

#endif
