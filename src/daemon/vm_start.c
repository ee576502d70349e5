/* The VM lifecycle's running side: starting (the boot's preparation on the thread
 * pool, the hypervisor's spawn, the boot deadline), stopping, what happens when
 * the hypervisor process ends (final state, restart policy, --rm), removal,
 * and the daemon's start-up reconcile and shutdown. It reports through the
 * listeners (vm_runtime.c) and knows nothing of RPCs. */
#define LOG_MODULE "vm"
#include "metrics_daemon.h"
#include "vm_internal.h"
#include "volstore.h"

#include "image/image.h"

#include <dirent.h>
#include <fcntl.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Shutdown gives VMs this long to stop by themselves before they are killed. */
#define SHUTDOWN_GRACE_MS 8000

typedef struct start_work {
    uv_work_t req;
    vm_runtime *vm;
    char *kernel_setting;
    char *kernel_path; /* found by the prepare step */
    char *manifest;
    size_t manifest_len;
    bool create_phase; /* second trip: adapter create/start after the spawn */
    int r;
    hypr_error err;
} start_work;

static void start_work_free(start_work *w)
{
    free(w->kernel_setting);
    free(w->kernel_path);
    free(w->manifest);
    hypr_error_clear(&w->err);
    free(w);
}

/* ---- removal ------------------------------------------------------------------- */

/* Removes everything a VM left on disk: logs, sockets, per-VM initrd. */
static void vm_remove_files(daemon_ctx *d, const char *id)
{
    _cleanup_free_ char *log = vm_log_path(d, id);
    _cleanup_free_ char *records = xasprintf("%s.stdio", log);
    _cleanup_free_ char *layer = vm_layer_path(d, id);
    unlink(log);
    unlink(records);
    unlink(layer);
    /* Every per-VM file in the run dir is "<id><suffix>" (vmm_vm_path), whatever
     * the hypervisor: sockets and initrd left by a daemon that died go too. A GPU
     * claim stays: it goes once its devices are back on their drivers. */
    DIR *dir = opendir(d->run_dir);
    struct dirent *de;
    while (dir && (de = readdir(dir))) {
        if (str_startswith(de->d_name, id) && !vm_gpu_file_is_claim(de->d_name)) {
            _cleanup_free_ char *path = path_join(d->run_dir, de->d_name);
            unlink(path);
        }
    }
    if (dir)
        closedir(dir);
}

int vm_remove_record_err(daemon_ctx *d, const char *id, const char *name, bool remove_volumes,
                         hypr_error *err)
{
    /* Its config first: which anonymous volumes it had. */
    _cleanup_store_vm_ store_vm rec = {0};
    _cleanup_vm_config_ Hypr__V1__VMConfig *cfg = NULL;
    if (store_vm_find(d->db, id, &rec, NULL) == 0)
        (void)vm_config_decode(&rec, &cfg, NULL);
    /* Addresses first: deleting the record drops its address rows too, and the
     * pools free only the addresses they find in those rows. A record whose
     * delete then fails gets new addresses at its next start. */
    netmgr_vm_deleted(d, id);
    int r = store_vm_delete(d->db, id, err);
    if (r < 0 && r != -ENOENT)
        return hypr_err_prefix(err, "remove VM %s", name);
    vm_remove_files(d, id);
    volstore_vm_removed(d, cfg, remove_volumes || (cfg && cfg->auto_remove));
    log_info("deleted VM %s (%.12s)", name, id);
    vm_notice n = {.kind = VM_NOTICE_REMOVED, .id = id, .name = name};
    vm_notify(d, &n);
    return 0;
}

void vm_remove_record(daemon_ctx *d, const char *id, const char *name, bool remove_volumes)
{
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    if (vm_remove_record_err(d, id, name, remove_volumes, &err) == 0)
        return;
    /* Nobody called for this removal (--rm, a forced delete's end): this is the top.
     * Waiters hear that it failed. */
    log_error("%s", err.message);
    vm_notice n = {.kind = VM_NOTICE_REMOVED, .id = id, .name = name, .err = &err};
    vm_notify(d, &n);
}

/* ---- restart policy for hypervisor crashes ---------------------------------- */

typedef struct restart_timer {
    uv_timer_t timer;
    daemon_ctx *d;
    char id[HYPR_ID_LEN + 1];
} restart_timer;

static bool should_restart(vm_runtime *vm, bool failed)
{
    _cleanup_store_vm_ store_vm rec = {0};
    _cleanup_vm_config_ Hypr__V1__VMConfig *cfg = NULL;
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    int r = store_vm_find(vm->d->db, vm->id, &rec, &err);
    if (r >= 0)
        r = vm_config_decode(&rec, &cfg, &err);
    if (r < 0) {
        if (r != -ENOENT) /* removed meanwhile is no news; anything else is */
            log_error("VM %s: restart policy unknown, not restarting: %s", vm->name, err.message);
        return false;
    }
    vm_restart_input in = {
        .policy = cfg->restart ? cfg->restart->name : NULL,
        .max_retries = cfg->restart ? cfg->restart->max_retries : 0,
        .restarts = vm->restarts,
        .workload_started = vm->workload_started,
        .failed = failed,
        .stop_requested = vm->stop_requested,
        .shutting_down = vm->d->shutting_down,
    };
    return vm_should_restart(&in);
}

static void on_restart_closed(uv_handle_t *h)
{
    free(h->data);
}

static void on_restart_timer(uv_timer_t *t)
{
    restart_timer *rt = t->data;
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    if (!rt->d->shutting_down && vm_start(rt->d, rt->id, false, &err) < 0)
        log_warn("restart VM %.12s: %s", rt->id, err.message);
    uv_close((uv_handle_t *)&rt->timer, on_restart_closed);
}

static void schedule_restart(daemon_ctx *d, const char *id, uint32_t restarts)
{
    uint64_t delay = vm_restart_delay_ms(restarts);
    restart_timer *rt = xcalloc(1, sizeof(*rt));
    rt->d = d;
    memcpy(rt->id, id, sizeof(rt->id));
    uv_timer_init(d->loop, &rt->timer);
    rt->timer.data = rt;
    uv_timer_start(&rt->timer, on_restart_timer, delay, 0);
    /* The new run counts as a restart. */
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    _cleanup_store_vm_ store_vm rec = {0};
    int r = store_vm_find(d->db, id, &rec, &err);
    if (r == 0) {
        rec.restart_count = (int)restarts;
        r = store_vm_update(d->db, &rec, &err);
    }
    if (r < 0)
        log_warn("VM %.12s: cannot count its restart: %s", id, err.message);
    log_info("restarting VM %.12s in %" PRIu64 " ms", id, delay);
}

/* ---- the end of a run ------------------------------------------------------------ */

/* The end of hyprd's hold on a run, whether the VM ended or runs on without it. */
static void close_channel_and_timers(vm_runtime *vm)
{
    vm_log_flush(vm);
    vm_ctl_close(vm);
    vm_close_handle(vm, (uv_handle_t *)&vm->boot_timer);
    vm_close_handle(vm, (uv_handle_t *)&vm->stop_timer);
    vm_close_handle(vm, (uv_handle_t *)&vm->reconnect_timer);
    if (vm->pid_polling)
        vm_close_handle(vm, (uv_handle_t *)&vm->pid_poll);
}

static void settle_finish(vm_runtime *vm, bool failed);

/* Everything of a run goes (channel, timers, hypervisor files, network, streams,
 * passed-through devices); the final state is stored and reported; then --rm or
 * the restart policy. */
static void settle(vm_runtime *vm, bool failed)
{
    daemon_ctx *d = vm->d;
    close_channel_and_timers(vm);
    vm_mounts_end(vm, true);
    if (vm->adapter)
        vm->adapter->ops->delete (vm->adapter, &vm->cfg, NULL);
    _cleanup_free_ char *proc_file = vm_proc_file(d, vm->id);
    unlink(proc_file);
    netmgr_vm_detach(d, TAKE_PTR(vm->net));
    vm->ip[0] = '\0';
    vm->proc_pid = 0;
    vm_exec_end_all(vm, "the VM stopped");
    vm_pause_resume_parked(vm);
    vm_metrics_end_all(vm);
    vm_log_end_followers(vm);
    /* GPUs go back to their drivers before the VM counts as stopped: whoever
     * waits for the stop finds them back. */
    if (!vm_gpu_give_back(vm, failed, settle_finish))
        settle_finish(vm, failed);
}

static void settle_finish(vm_runtime *vm, bool failed)
{
    daemon_ctx *d = vm->d;
    bool restart = !vm->remove_after && should_restart(vm, failed);
    /* Out of the registry first: a listener may start the VM again. */
    vm_runtime_unlink(vm);
    vm_set_phase(vm, failed ? VM_PHASE_FAILED : VM_PHASE_STOPPED);
    if (vm->remove_after)
        vm_remove_record(d, vm->id, vm->name, vm->remove_volumes);
    else if (restart)
        schedule_restart(d, vm->id, vm->restarts + 1);
    if (vm->proc_spawned)
        vm_close_handle(vm, (uv_handle_t *)&vm->proc);
    vm_runtime_maybe_free(vm);
}

void vm_proc_ended(vm_runtime *vm, bool status_known, int64_t exit_status, int term_signal)
{
    vm->proc_running = false;
    bool failed = false;
    if (!vm->workload_exited && !vm->stop_requested) {
        failed = true;
        _cleanup_free_ char *how =
            !status_known ? xstrdup("")
                          : xasprintf(" (hypervisor %s %d)", term_signal ? "signal" : "exit status",
                                      term_signal ? term_signal : (int)exit_status);
        if (vm->failure.status == HYPR_OK)
            hypr_err(&vm->failure, HYPR_FAILED_PRECONDITION, ECHILD,
                     !vm->workload_started
                         ? "the VM stopped before its workload started%s; see the console log"
                         : "the hypervisor exited unexpectedly%s",
                     how);
        if (!vm->workload_started && vm->exit_code == 0)
            vm->exit_code = 125;
    } else if (!vm->workload_exited) {
        /* Stopped before the workload reported: killed after the timeout. */
        vm->exit_code = 137;
    }
    log_info("VM %s %s (exit code %d)%s%s", vm->name, failed ? "failed" : "stopped", vm->exit_code,
             failed ? ": " : "", failed ? vm->failure.message : "");
    settle(vm, failed);
}

/* Our own child is gone. */
static void on_proc_exit(uv_process_t *p, int64_t exit_status, int term_signal)
{
    vm_proc_ended(p->data, true, exit_status, term_signal);
}

void vm_proc_kill(vm_runtime *vm, int sig)
{
    if (!vm->proc_running)
        return;
    if (!vm->adopted) {
        uv_process_kill(&vm->proc, sig);
        return;
    }
    /* Through the pidfd: the pid may have been reused once the process is gone. */
    if (syscall(SYS_pidfd_send_signal, vm->pidfd, sig, NULL, 0) < 0 && errno != ESRCH)
        log_warn("VM %s: signal %d to pid %d: %s", vm->name, sig, vm->proc_pid, strerror(errno));
}

char *vm_proc_file(daemon_ctx *d, const char *id)
{
    return xasprintf("%s/%s.proc", d->run_dir, id);
}

void vm_write_proc_file(vm_runtime *vm)
{
    uint64_t start = 0;
    int r = proc_start_time(vm->proc_pid, &start);
    _cleanup_free_ char *path = vm_proc_file(vm->d, vm->id);
    _cleanup_free_ char *text = xasprintf("%d %" PRIu64 " %s %d\n", vm->proc_pid, start,
                                          vm->adapter->ops->name, vm->paused ? 1 : 0);
    if (r >= 0)
        r = write_file_atomic(path, text, strlen(text), 0600);
    if (r < 0)
        log_warn("VM %s: cannot record its hypervisor for re-adoption in %s: %s", vm->name, path,
                 strerror(-r));
}

/* Ends a boot that cannot succeed (why is taken): kill the hypervisor, whose exit
 * settles the rest, or settle now when none was spawned. */
static void boot_failed(vm_runtime *vm, hypr_error *why)
{
    if (vm->failure.status == HYPR_OK) {
        vm->failure = *why;
        *why = (hypr_error)HYPR_ERROR_INIT;
        if (!vm->failure.message)
            hypr_err(&vm->failure, HYPR_FAILED_PRECONDITION, EIO, "the VM could not start");
        if (vm->failure.status == HYPR_OK)
            vm->failure.status = HYPR_FAILED_PRECONDITION;
    }
    if (vm->proc_running) {
        vm_proc_kill(vm, SIGKILL);
        return;
    }
    log_info("VM %s failed to start: %s", vm->name, vm->failure.message);
    settle(vm, true);
}

static void on_boot_timeout(uv_timer_t *t)
{
    vm_runtime *vm = t->data;
    _cleanup_error_ hypr_error why = HYPR_ERROR_INIT;
    hypr_err(&why, HYPR_FAILED_PRECONDITION, ETIMEDOUT,
             "the VM did not boot within %d s (the guest never reported its workload); see the "
             "console log %s",
             vm->adapter->boot_timeout_ms / 1000, vm->console_log);
    boot_failed(vm, &why);
}

void vm_arm_boot_deadline(vm_runtime *vm)
{
    uv_timer_start(&vm->boot_timer, on_boot_timeout, (uint64_t)vm->adapter->boot_timeout_ms, 0);
}

/* ---- what kestrel reports ------------------------------------------------------- */

static void on_workload_started(vm_runtime *vm)
{
    uv_timer_stop(&vm->boot_timer);
    if (vm->stop_requested)
        return;
    int64_t boot_ms = time_monotonic_ms() - vm->boot_started_ms;
    log_info("VM %s is running (booted in %" PRId64 " ms)", vm->name, boot_ms);
    metrics_vm_booted((double)boot_ms / 1000.0, &vm->boot_phases);
    netmgr_vm_running(vm->d, vm->net, vm->name);
    /* run -dit, create -it + start, a restart: nobody is there to start it. */
    if (vm->waits_for_main && !vm->client_attaches && !vm->main_session)
        vm_exec_start_detached_main(vm);
    vm_set_phase(vm, VM_PHASE_RUNNING);
}

static void on_workload_exited(vm_runtime *vm, int code, bool again, uint32_t restarts)
{
    vm->exit_code = code;
    vm->restarts = restarts;
    vm_log_flush(vm);
    if (again) {
        log_info("VM %s: workload exited with %d, restarting (restart %u)", vm->name, code,
                 restarts + 1);
        vm->restarts = restarts + 1;
        vm_set_phase(vm, VM_PHASE_RESTARTING);
        vm->phase = VM_PHASE_RUNNING;
        return;
    }
    /* kestrel powers the VM off now; the process exit settles the status. */
    vm->workload_exited = true;
    log_debug("VM %s: workload finished with exit code %d", vm->name, code);
}

/* SHUTDOWN with the signal of the stop under way (none: the manifest's stop signal). */
static bool send_shutdown(vm_runtime *vm)
{
    ctl_buf frame = {0};
    uint32_t sig = (uint32_t)vm->stop_signal;
    uint8_t p[4] = {sig & 0xff, (sig >> 8) & 0xff, (sig >> 16) & 0xff, sig >> 24};
    bool sent = ctl_encode_raw(&frame, CTL_SHUTDOWN, 0, p, sig ? sizeof(p) : 0) == 0 &&
                vm_ctl_send(vm, &frame) == 0;
    ctl_buf_free(&frame);
    return sent;
}

static void on_channel_up(vm_runtime *vm)
{
    uv_timer_stop(&vm->reconnect_timer);
    if (vm->shutdown_pending && send_shutdown(vm))
        vm->shutdown_pending = false;
    vm_exec_channel_up(vm);
    vm_pause_resume_parked(vm);
}

const vm_ctl_handlers vm_lifecycle_handlers = {
    .workload_started = on_workload_started,
    .workload_exited = on_workload_exited,
    .channel_up = on_channel_up,
};

/* ---- starting --------------------------------------------------------------- */

static void start_work_run(uv_work_t *req)
{
    start_work *w = req->data;
    vm_runtime *vm = w->vm;
    if (w->create_phase) {
        const vmm_adapter_ops *ops = vm->adapter->ops;
        w->r = ops->create(vm->adapter, &vm->cfg, 10000, &w->err);
        if (w->r >= 0)
            w->r = ops->start(vm->adapter, &vm->cfg, 10000, &w->err);
        return;
    }
    w->r = vm_host_prepare(vm->d->vm_host, vm->d->data_dir, w->kernel_setting, w->manifest,
                           w->manifest_len, vm->initrd_path, &w->kernel_path, &w->err);
    if (w->r >= 0 && vm->mounts)
        w->r = vm_mounts_prepare(vm->mounts, &w->err);
    /* Last: devices leave their drivers only when nothing else can fail first. */
    if (w->r >= 0 && vm->gpus)
        w->r = vm_gpu_take(vm, &w->err);
}

static int spawn_hypervisor(vm_runtime *vm, hypr_error *err)
{
    _cleanup_vmm_command_ vmm_command cmd = {0};
    int r = vm->adapter->ops->build_command(vm->adapter, &vm->cfg, &cmd, err);
    if (r < 0)
        return r;
    r = vm_ctl_listen(vm, &vm_lifecycle_handlers, err);
    if (r < 0)
        return r;
    /* Its own session: the hypervisor outlives hyprd (an upgrade, a crash, a
     * shutdown that keeps VMs) and is re-adopted by the next one. */
    vm->proc_spawned = true;
    r = vm_spawn_detached(vm, &vm->proc, cmd.argv, cmd.env, cmd.stdout_path, on_proc_exit, err);
    if (r < 0)
        return r;
    vm->proc_running = true;
    vm->proc_pid = vm->proc.pid;
    vm_write_proc_file(vm);
    log_debug("VM %s: spawned %s (pid %d)", vm->name, cmd.argv[0], vm->proc.pid);
    return 0;
}

static void start_work_done(uv_work_t *req, int status)
{
    start_work *w = req->data;
    vm_runtime *vm = w->vm;
    vm->handles_open--;
    if (status == UV_ECANCELED && w->r == 0)
        w->r = hypr_err(&w->err, HYPR_CANCELLED, ECANCELED, "start cancelled");
    if (w->r >= 0 && !w->create_phase && vm->stop_requested)
        w->r = hypr_err(&w->err, HYPR_FAILED_PRECONDITION, ECANCELED, "stopped before it booted");
    if (w->r >= 0 && !w->create_phase) {
        free(vm->kernel_path);
        vm->kernel_path = TAKE_PTR(w->kernel_path);
        vm->cfg.kernel = vm->kernel_path;
        w->r = spawn_hypervisor(vm, &w->err);
    }
    if (w->r < 0) {
        boot_failed(vm, &w->err);
        start_work_free(w);
        return;
    }
    if (w->create_phase) {
        start_work_free(w);
        return;
    }
    vm_persist(vm, VM_PHASE_BOOTING); /* with the hypervisor's pid */
    vm_arm_boot_deadline(vm);
    /* qemu boots from the spawn; the API-driven hypervisors are configured now. */
    w->create_phase = true;
    vm->handles_open++;
    uv_queue_work(vm->d->loop, &w->req, start_work_run, start_work_done);
}

vm_runtime *vm_runtime_for(daemon_ctx *d, const store_vm *rec, const Hypr__V1__VMConfig *cfg,
                           const store_image *img, vmm_adapter *adapter, struct vm_net *net,
                           const vm_net_boot *boot)
{
    vm_runtime *vm = vm_runtime_new(d, rec->id, rec->name);
    vm->adapter = adapter;
    vm->restarts = (uint32_t)rec->restart_count;
    vm->remove_after = cfg->auto_remove;
    vm->waits_for_main = cfg->tty || cfg->open_stdin;
    vm->keeps_stdin = cfg->open_stdin;
    vm->cfg_tty = cfg->tty;
    vm->initrd_path = xasprintf("%s/%s.initrd", d->run_dir, rec->id);
    vm->rootfs_path = path_join(img->path, "rootfs.squashfs");
    vm->console_log = vm_log_path(d, rec->id);
    vm->cfg.id = vm->id;
    vm->cfg.vcpus = cfg->cpus ? cfg->cpus : 1;
    vm->cfg.memory_mb = (unsigned)(cfg->memory_mb ? cfg->memory_mb : 512);
    vm->cfg.initramfs = vm->initrd_path;
    vm->cfg.rootfs = vm->rootfs_path;
    vm->cfg.run_dir = d->run_dir;
    vm->cfg.console_log = vm->console_log;
    vm->net = net;
    vm->netboot = *boot;
    if (boot->n_nics)
        memcpy(vm->ip, boot->nics[0].ip, sizeof(vm->ip));
    for (size_t i = 0; i < boot->n_nics; i++)
        vm->nics[i] = (vmm_nic){.tap = vm->netboot.nics[i].tap, .mac = vm->netboot.nics[i].mac};
    vm->cfg.nics = vm->nics;
    vm->cfg.n_nics = boot->n_nics;
    vm->boot_started_ms = time_monotonic_ms();
    return vm;
}

int vm_start(daemon_ctx *d, const char *ref, bool client_attaches, hypr_error *err)
{
    _cleanup_store_vm_ store_vm rec = {0};
    int r = store_vm_find(d->db, ref, &rec, err);
    if (r < 0)
        return r;
    if (vm_runtime_find(d, rec.id))
        return hypr_err(err, HYPR_FAILED_PRECONDITION, EBUSY, "VM %s is already running", rec.name);
    _cleanup_vm_config_ Hypr__V1__VMConfig *cfg = NULL;
    r = vm_config_decode(&rec, &cfg, err);
    if (r < 0)
        return r;
    _cleanup_store_image_ store_image img = {0};
    r = store_image_find(d->db, str_empty(rec.image_id) ? rec.image : rec.image_id, &img, err);
    if (r < 0)
        return hypr_err_prefix(err, "image of VM %s", rec.name);
    _cleanup_vmm_adapter_ vmm_adapter *adapter = NULL;
    _cleanup_free_ char *hv = settings_get(d, "hypervisor");
    r = vmm_adapter_get(hv, &adapter, err);
    if (r < 0)
        return r;
    _cleanup_strv_ char **gpus = NULL;
    r = vm_gpu_select(d, rec.id, cfg, adapter, &gpus, err);
    if (r < 0)
        return r;
    struct vm_net *net = NULL;
    vm_net_boot boot = {0};
    r = netmgr_vm_attach(d, rec.id, cfg, &net, &boot, err);
    if (r < 0)
        return r;
    vm_mounts *mounts = NULL;
    r = vm_mounts_plan(d, &rec, cfg, adapter, &mounts, err);
    if (r < 0) {
        netmgr_vm_detach(d, net);
        return r;
    }
    start_work *w = xcalloc(1, sizeof(*w));
    r = vm_build_manifest(&rec, cfg, &img, &boot, mounts, &w->manifest, &w->manifest_len, err);
    if (r < 0) {
        netmgr_vm_detach(d, net);
        vm_mounts_free(mounts);
        start_work_free(w);
        return r;
    }
    vm_runtime *vm = vm_runtime_for(d, &rec, cfg, &img, TAKE_PTR(adapter), net, &boot);
    vm->client_attaches = client_attaches;
    vm->mounts = mounts;
    vm_mounts_attach(mounts, &vm->cfg);
    vm->gpus = TAKE_PTR(gpus);
    vm->cfg.pci_devices = (const char *const *)vm->gpus;
    vm->cfg.n_pci_devices = strv_length(vm->gpus);
    log_info("starting VM %s (%.12s) with %s", vm->name, vm->id, vm->adapter->ops->name);
    vm_set_phase(vm, VM_PHASE_BOOTING);
    /* virtiofsd first: they listen by the time the pool has made the layer. */
    _cleanup_error_ hypr_error ferr = HYPR_ERROR_INIT;
    if (vm_mounts_spawn(vm, &ferr) < 0) {
        start_work_free(w);
        boot_failed(vm, &ferr);
        return 0;
    }
    w->vm = vm;
    w->kernel_setting = settings_get(d, "kernel");
    w->req.data = w;
    vm->handles_open++;
    uv_queue_work(d->loop, &w->req, start_work_run, start_work_done);
    return 0;
}

/* ---- stopping ----------------------------------------------------------------- */

static void on_stop_timeout(uv_timer_t *t)
{
    vm_runtime *vm = t->data;
    if (vm->proc_running) {
        log_info("VM %s did not stop in time: killing it", vm->name);
        vm_proc_kill(vm, SIGKILL);
    }
}

static int stop_timeout(daemon_ctx *d, const store_vm *rec)
{
    _cleanup_vm_config_ Hypr__V1__VMConfig *cfg = NULL;
    if (vm_config_decode(rec, &cfg, NULL) == 0 && cfg->stop_timeout)
        return (int)cfg->stop_timeout;
    return (int)settings_get_int(d, "stop_timeout");
}

/* manual: the user asked (restart policies then leave the VM down), not the daemon.
 * sig: what the workload is sent; 0 = the VM's stop signal. */
static int stop_runtime(vm_runtime *vm, const store_vm *rec, int timeout_s, bool manual, int sig)
{
    if (timeout_s < 0)
        timeout_s = stop_timeout(vm->d, rec);
    vm->manual_stop = vm->manual_stop || manual;
    if (!vm->stop_requested)
        vm->stop_signal = sig;
    if (vm->paused && vm->proc_running) {
        /* Its vCPUs are held: nothing in it would hear a SHUTDOWN (Docker kills too). */
        vm->stop_requested = true;
        vm_set_phase(vm, VM_PHASE_STOPPING);
        vm_proc_kill(vm, SIGKILL);
        return 1;
    }
    if (vm->stop_requested) {
        /* A stop is under way; a forced one (timeout 0) does not wait for it. */
        if (timeout_s == 0)
            vm_proc_kill(vm, SIGKILL);
        return 1;
    }
    vm->stop_requested = true;
    if (!vm->proc_running)
        return 1; /* still preparing: start_work_done sees stop_requested and ends it */
    vm_set_phase(vm, VM_PHASE_STOPPING);
    bool sent = send_shutdown(vm);
    if (!sent && timeout_s > 0 && vm_channel_pending(vm)) {
        /* Re-adopted and kestrel not back yet: it hears the SHUTDOWN when it is. */
        vm->shutdown_pending = true;
        sent = true;
    }
    if (!sent || timeout_s == 0) {
        vm_proc_kill(vm, SIGKILL);
        return 1;
    }
    /* kestrel gives the workload timeout_s after SIGTERM; the VM then needs a
     * moment to power off. */
    uv_timer_start(&vm->stop_timer, on_stop_timeout, (uint64_t)timeout_s * 1000 + 500, 0);
    return 1;
}

int vm_stop(daemon_ctx *d, const char *ref, int timeout_s, int sig, hypr_error *err)
{
    _cleanup_store_vm_ store_vm rec = {0};
    int r = store_vm_find(d->db, ref, &rec, err);
    if (r < 0)
        return r;
    vm_runtime *vm = vm_runtime_find(d, rec.id);
    if (!vm)
        return 0; /* like docker stop on a stopped container: nothing to do */
    return stop_runtime(vm, &rec, timeout_s, true, sig);
}

int vm_stop_signal(const store_vm *rec)
{
    _cleanup_vm_config_ Hypr__V1__VMConfig *cfg = NULL;
    int sig = vm_config_decode(rec, &cfg, NULL) == 0 ? signal_parse(cfg->stop_signal) : -EINVAL;
    return sig > 0 ? sig : SIGTERM;
}

int vm_kill(daemon_ctx *d, const char *ref, int sig, hypr_error *err)
{
    _cleanup_store_vm_ store_vm rec = {0};
    int r = store_vm_find(d->db, ref, &rec, err);
    if (r < 0)
        return r;
    vm_runtime *vm = vm_runtime_find(d, rec.id);
    if (!vm || vm->stop_requested || !vm->proc_running)
        return hypr_err(err, HYPR_FAILED_PRECONDITION, ESRCH,
                        "cannot kill VM %s: VM %.12s is not running", rec.name, rec.id);
    /* Docker's rule: SIGKILL and the stop signal end the VM (no restart); others do not. */
    bool fatal = sig == SIGKILL || sig == vm_stop_signal(&rec);
    if (vm->paused && !fatal)
        return hypr_err(err, HYPR_FAILED_PRECONDITION, EBUSY,
                        "cannot kill VM %s with %s: it is paused; unpause it first", rec.name,
                        signal_name(sig) ? signal_name(sig) : "that signal");
    if (fatal) {
        log_info("VM %s: kill with %s", vm->name, signal_name(sig) ? signal_name(sig) : "a signal");
        stop_runtime(vm, &rec, sig == SIGKILL ? 2 : -1, true, sig);
        return 0;
    }
    ctl_buf frame = {0};
    bool sent = ctl_encode_signal(&frame, 0, (uint32_t)sig) == 0 && vm_ctl_send(vm, &frame) == 0;
    ctl_buf_free(&frame);
    if (!sent)
        return hypr_err(err, HYPR_UNAVAILABLE, EAGAIN,
                        "cannot kill VM %s: its agent is not connected yet; try again", rec.name);
    return 0;
}

/* ---- the manager: start-up and shutdown ------------------------------------------ */

void vm_manager_init(daemon_ctx *d)
{
    d->vm_host = vm_host_new(d->run_dir);
    vm_gpu_init(d);
    _cleanup_free_ char *logs = path_join(d->data_dir, "logs");
    mkdir_p(logs, 0700);
}

void vm_manager_free(daemon_ctx *d)
{
    vm_host_free(d->vm_host);
    d->vm_host = NULL;
    vm_gpu_free(d);
}

int vm_manager_reconcile(daemon_ctx *d, hypr_error *err)
{
    return vm_adopt_all(d, err);
}

static void on_shutdown_poll(uv_timer_t *t)
{
    daemon_ctx *d = t->data;
    if (d->vms && time_monotonic_ms() > d->shutdown_deadline) {
        for (vm_runtime *vm = d->vms; vm; vm = vm->next)
            vm_proc_kill(vm, SIGKILL);
        d->shutdown_deadline = INT64_MAX;
    }
    if (d->vms)
        return;
    uv_close((uv_handle_t *)t, NULL);
    d->shutdown_done(d);
}

/* hyprd goes and the VM stays: what hyprd holds of it is let go, and nothing of the
 * VM changes (its record still says running, its TAPs stay); the next hyprd
 * re-adopts it from the record and <id>.proc. */
static void release(vm_runtime *vm)
{
    log_info("VM %s keeps running without hyprd (pid %d)", vm->name, vm->proc_pid);
    close_channel_and_timers(vm);
    vm_mounts_end(vm, false);
    netmgr_vm_release(vm->d, TAKE_PTR(vm->net));
    vm_exec_end_all(vm, "hyprd is shutting down");
    vm_metrics_end_all(vm);
    vm_log_end_followers(vm);
    vm->proc_running = false; /* no longer ours to watch */
    vm_runtime_unlink(vm);
    if (vm->proc_spawned)
        vm_close_handle(vm, (uv_handle_t *)&vm->proc); /* the child runs on */
    vm_runtime_maybe_free(vm);
}

void vm_manager_shutdown(daemon_ctx *d, void (*done)(daemon_ctx *d))
{
    d->shutdown_done = done;
    d->shutdown_deadline = time_monotonic_ms() + SHUTDOWN_GRACE_MS;
    _cleanup_free_ char *policy = settings_get(d, "shutdown_policy");
    bool keep = !policy || strcmp(policy, "stop") != 0;
    vm_runtime *next;
    for (vm_runtime *vm = d->vms; vm; vm = next) {
        next = vm->next;
        /* A VM still being prepared has no hypervisor to keep: it stops. */
        if (keep && vm->proc_running && !vm->stop_requested) {
            release(vm);
            continue;
        }
        _cleanup_store_vm_ store_vm rec = {0};
        if (store_vm_find(d->db, vm->id, &rec, NULL) == 0)
            stop_runtime(vm, &rec, 5, false, 0);
    }
    uv_timer_init(d->loop, &d->shutdown_poll);
    d->shutdown_poll.data = d;
    uv_timer_start(&d->shutdown_poll, on_shutdown_poll, 0, 50);
}
