/* The daemon's VM manager: the in-memory side of VMs that are running (their
 * hypervisor process, control channel, log followers, exec sessions), on top
 * of the records in the store. Internal to src/daemon. */
#ifndef HYPR_DAEMON_VM_H
#define HYPR_DAEMON_VM_H

#include "daemon.h"
#include "netmgr.h"
#include "vmm/vmm.h"

#include "kestrel/ctl_proto.h"

#include <pthread.h>

typedef struct vm_runtime vm_runtime;
typedef struct log_follower log_follower;
typedef struct exec_session exec_session;

/* A call waiting for a VM to reach running (RunVM) or to end (StopVM, DeleteVM). */
typedef enum { WAIT_RUN, WAIT_STOP, WAIT_DELETE } vm_wait_kind;
typedef struct vm_waiter {
    rpc_call *call;
    vm_wait_kind kind;
    struct vm_waiter *next;
} vm_waiter;

struct vm_runtime {
    daemon_ctx *d;
    char id[HYPR_ID_LEN + 1];
    char *name;
    char *status; /* mirrors the store: booting, running, stopping, restarting */

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

    uv_pipe_t ctl_listener;
    bool ctl_listening;
    uv_pipe_t ctl_conn;
    bool ctl_connected;
    ctl_decoder dec;

    uv_timer_t boot_timer;
    uv_timer_t stop_timer;
    int handles_open; /* closing handles still outstanding */

    bool workload_started;
    bool workload_exited; /* for good: no restart coming from kestrel */
    bool stop_requested;  /* by the user: restart policies do not apply */
    bool remove_after;    /* --rm, or DeleteVM(force) of a running VM */
    int exit_code;
    uint32_t restarts;
    int64_t boot_started_ms;
    ctl_hello boot_phases;
    char *failure; /* reason when the hypervisor died or the boot failed */

    /* Partial workload output lines per stream (1 stdout, 2 stderr). */
    hypr_buf partial[3];
    int log_fds[2]; /* <id>.log and its .stdio records, opened at the first line; -1 */

    vm_waiter *run_waiters;  /* RunVM calls waiting for running/failed */
    vm_waiter *stop_waiters; /* StopVM/DeleteVM calls waiting for the end */
    log_follower *followers; /* StreamLogs follow calls */
    exec_session *execs;
    rpc_call *metrics_calls[8];
    uint64_t last_metrics[CTL_M_COUNT];
    uint64_t prev_metrics[CTL_M_COUNT];
    uint32_t next_session;

    vm_runtime *next;
};

/* Guest kernel and the shared initramfs, prepared once per daemon. */
typedef struct vm_host {
    pthread_mutex_t lock; /* starts prepare on the thread pool, possibly at once */
    vmm_kernel kernel;
    char *kernel_setting; /* the `kernel` setting kernel was found with */
    char *initramfs;      /* <run-dir>/kestrel-initramfs.cpio */
    char *kestrel;        /* the static agent binary */
    bool ready;
} vm_host;

/* ---- registry and lifecycle (vm.c, vm_start.c) ---------------------------- */

void vm_manager_init(daemon_ctx *d);
void vm_manager_free(daemon_ctx *d);
/* Stops every running VM (daemon shutdown); done() runs once all are gone. */
void vm_manager_shutdown(daemon_ctx *d, void (*done)(daemon_ctx *d));
vm_runtime *vm_runtime_find(daemon_ctx *d, const char *id);
/* Marks VMs left running by a previous hyprd as stopped; restarts those whose
 * policy says so. */
void vm_manager_reconcile(daemon_ctx *d);

/* Validates a config and applies defaults; fills err with INVALID_ARGUMENT. */
int vm_config_check(daemon_ctx *d, Hypr__V1__VMConfig *cfg, hypr_error *err);
/* Creates the record (status created). out receives the stored record. */
int vm_create(daemon_ctx *d, const Hypr__V1__VMConfig *cfg, store_vm *out, hypr_error *err);
/* Starts a created or stopped VM. on_phase is told about booting/running/failed. */
int vm_start(daemon_ctx *d, const char *ref, rpc_call *run_waiter, hypr_error *err);
/* Graceful stop: SHUTDOWN to kestrel, kill after timeout_s. waiter (may be
 * NULL) is answered with the final VM once it is down. */
int vm_stop(daemon_ctx *d, const char *ref, int timeout_s, rpc_call *waiter, hypr_error *err);
/* 0 = deleted; 1 = a running VM is being killed and goes once it is down
 * (force); <0 error. */
int vm_delete(daemon_ctx *d, const char *ref, bool force, hypr_error *err);
/* Removes a VM's record and files (after its hypervisor is gone). */
void vm_remove_record(daemon_ctx *d, const char *id, const char *name);
/* Drops a call from every waiter list (the call closed). */
void vm_forget_call(daemon_ctx *d, rpc_call *call);
/* Persists the runtime's status (and timestamps/exit code) and publishes an event. */
void vm_set_status(vm_runtime *vm, const char *status, const char *event);
/* Builds the API message for a stored VM; free with vm_message_free. */
/* Renames a VM (ID, unique prefix or name): the record, its config, and a running
 * VM's DNS names. INVALID_ARGUMENT for a bad name, ALREADY_EXISTS when taken. The
 * renamed record is left in *out (cleared by the caller, also on error). */
int vm_rename(daemon_ctx *d, const char *ref, const char *name, store_vm *out, hypr_error *err);
/* The API form of a record; a running VM's NICs come from its runtime (d may be NULL). */
Hypr__V1__VM *vm_to_message(daemon_ctx *d, const store_vm *vm);
void vm_message_free(Hypr__V1__VM *m);
/* Answers the RunVM waiters of a VM with a phase (and ends them if final). */
void vm_notify_run_waiters(vm_runtime *vm, Hypr__V1__RunVMEvent__Phase phase, const char *message);

/* Closes a handle that lives in the runtime; the runtime is freed only once
 * every such close has completed. */
void vm_close_handle(vm_runtime *vm, uv_handle_t *h);

/* ---- control channel (vm_ctl.c) ----------------------------------------- */

int vm_ctl_listen(vm_runtime *vm, hypr_error *err);
/* Queues one encoded frame to kestrel; -ENOTCONN when the channel is down. */
int vm_ctl_send(vm_runtime *vm, ctl_buf *frame);
void vm_ctl_close(vm_runtime *vm);

/* ---- logs (vm_logs.c) --------------------------------------------------- */

char *vm_log_path(daemon_ctx *d, const char *id);
/* Appends workload output (stream 1 stdout, 2 stderr), split into lines. */
void vm_log_append(vm_runtime *vm, int stream, const uint8_t *data, size_t len);
/* Writes out partial lines (at exit). */
void vm_log_flush(vm_runtime *vm);
/* Ends every follower of the VM (it stopped). */
void vm_log_end_followers(vm_runtime *vm);
void api_stream_logs(rpc_call *call, ProtobufCMessage *msg);
void api_stream_logs_close(rpc_call *call, bool cancelled);

/* ---- exec (vm_exec.c) --------------------------------------------------- */

void api_exec(rpc_call *call, ProtobufCMessage *msg);
void api_exec_half_close(rpc_call *call);
void api_exec_close(rpc_call *call, bool cancelled);
/* A frame for an exec session arrived from kestrel. */
void vm_exec_frame(vm_runtime *vm, const ctl_frame *f);
/* The VM went away: every session ends with an error. */
void vm_exec_end_all(vm_runtime *vm, const char *why);

/* ---- metrics ------------------------------------------------------------- */

void vm_metrics_frame(vm_runtime *vm, const ctl_frame *f);
void vm_metrics_end_all(vm_runtime *vm);
void api_stream_vm_metrics(rpc_call *call, ProtobufCMessage *msg);
void api_stream_vm_metrics_close(rpc_call *call, bool cancelled);

#endif
