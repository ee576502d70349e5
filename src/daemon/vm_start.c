/* Running VMs: preparing the boot (kernel, initramfs, manifest), spawning the
 * hypervisor, the boot deadline, stopping, and what happens when the
 * hypervisor process ends (status, exit code, restart policy, --rm). */
#define LOG_MODULE "vm"
#include "vm.h"

#include "image/image.h"
#include "kestrel/manifest.h"
#include "netmgr.h"

#include <fcntl.h>
#include <string.h>

/* Restarts after a hypervisor crash back off up to this. */
#define MAX_RESTART_DELAY_MS 30000

static void runtime_maybe_free(vm_runtime *vm);

vm_runtime *vm_runtime_find(daemon_ctx *d, const char *id)
{
    for (vm_runtime *vm = d->vms; vm; vm = vm->next)
        if (strcmp(vm->id, id) == 0)
            return vm;
    return NULL;
}

static void runtime_unlink(vm_runtime *vm)
{
    for (vm_runtime **p = &vm->d->vms; *p; p = &(*p)->next) {
        if (*p == vm) {
            *p = vm->next;
            return;
        }
    }
}

/* ---- the kestrel binary and the guest kernel ------------------------------ */

static char *find_kestrel(void)
{
    const char *env = getenv("HYPR_KESTREL");
    if (!str_empty(env))
        return xstrdup(env);
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n > 0) {
        self[n] = '\0';
        char *slash = strrchr(self, '/');
        if (slash) {
            *slash = '\0';
            /* In the build tree hyprd is build/src/daemon/hyprd. */
            char *in_tree = xasprintf("%s/../../guest/kestrel/kestrel", self);
            if (access(in_tree, X_OK) == 0)
                return in_tree;
            free(in_tree);
            char *installed = xasprintf("%s/../libexec/hypr/kestrel", self);
            if (access(installed, X_OK) == 0)
                return installed;
            free(installed);
        }
    }
    return xstrdup("/usr/libexec/hypr/kestrel");
}

/* Runs on the thread pool: decompressing a kernel and building the initramfs
 * take seconds the first time, and nothing afterwards. A changed `kernel`
 * setting is looked up again. */
static int host_prepare_locked(vm_host *h, const char *data_dir, const char *kernel_setting,
                               hypr_error *err)
{
    if (h->ready && strcmp(h->kernel_setting, kernel_setting) == 0)
        return 0;
    h->ready = false;
    vmm_kernel_clear(&h->kernel);
    free(h->kernel_setting);
    h->kernel_setting = xstrdup(kernel_setting);
    vmm_kernel_opts kopts = {.setting = kernel_setting, .data_dir = data_dir};
    int r = vmm_kernel_find(&kopts, &h->kernel, err);
    if (r < 0)
        return r;
    if (access(h->kestrel, X_OK) < 0)
        return hypr_err(err, HYPR_FAILED_PRECONDITION, errno,
                        "guest agent not found at %s (build it with 'make', or set HYPR_KESTREL)",
                        h->kestrel);
    vmm_initramfs_opts iopts = {
        .kestrel = h->kestrel,
        .kernel_version = h->kernel.version,
        .modules_dir = h->kernel.modules_dir,
        .out = h->initramfs,
    };
    r = vmm_initramfs_ensure(&iopts, NULL, err);
    if (r < 0)
        return r;
    h->ready = true;
    return 0;
}

void vm_manager_init(daemon_ctx *d)
{
    vm_host *h = xcalloc(1, sizeof(*h));
    pthread_mutex_init(&h->lock, NULL);
    h->kernel_setting = xstrdup("");
    h->kestrel = find_kestrel();
    h->initramfs = path_join(d->run_dir, "kestrel-initramfs.cpio");
    d->vm_host = h;
    _cleanup_free_ char *logs = path_join(d->data_dir, "logs");
    mkdir_p(logs, 0700);
}

void vm_manager_free(daemon_ctx *d)
{
    vm_host *h = d->vm_host;
    if (!h)
        return;
    vmm_kernel_clear(&h->kernel);
    pthread_mutex_destroy(&h->lock);
    free(h->kernel_setting);
    free(h->initramfs);
    free(h->kestrel);
    free(h);
    d->vm_host = NULL;
}

/* ---- the runtime manifest ------------------------------------------------- */

static void strv_push_all(manifest_strv *out, char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        manifest_strv_push(out, v[i]);
}

/* Entrypoint, cmd, env, workdir and user of the image, from its manifest.json. */
static void image_defaults(const store_image *img, kestrel_manifest *m)
{
    image_info info = {0};
    if (str_empty(img->manifest) || image_info_from_json(img->manifest, &info, NULL) < 0)
        return;
    strv_push_all(&m->entrypoint, info.config.entrypoint);
    strv_push_all(&m->cmd, info.config.cmd);
    strv_push_all(&m->image_env, info.config.env);
    if (!str_empty(info.config.workdir))
        m->workdir = xstrdup(info.config.workdir);
    if (!str_empty(info.config.user))
        m->user = xstrdup(info.config.user);
    image_info_clear(&info);
}

static void strv_reset(manifest_strv *v)
{
    for (size_t i = 0; i < v->n; i++)
        free(v->v[i]);
    free(v->v);
    v->v = NULL;
    v->n = 0;
}

/* Docker's rules: --entrypoint replaces the image's entrypoint and drops its
 * cmd; a cmd given replaces the image's cmd. */
static int build_manifest(const store_vm *rec, const Hypr__V1__VMConfig *cfg,
                          const store_image *img, const vm_net_boot *net, char **out,
                          size_t *out_len, hypr_error *err)
{
    kestrel_manifest m;
    manifest_init(&m);
    image_defaults(img, &m);
    /* The first network has the default route and the resolver (hyprd's DNS server
     * on its gateway); the others only their subnets. kestrel finds each NIC by MAC. */
    for (size_t i = 0; i < net->n_nics; i++) {
        const vm_nic_boot *nic = &net->nics[i];
        if (i > 0) {
            manifest_add_netif(&m, nic->mac, nic->ip_cidr);
            continue;
        }
        m.ip = xstrdup(nic->ip_cidr);
        m.mac = xstrdup(nic->mac);
        m.gateway = xstrdup(nic->gateway);
        manifest_strv_push(&m.dns, nic->gateway);
    }
    m.hostname = xstrdup(str_empty(cfg->hostname) ? rec->name : cfg->hostname);
    if (cfg->entrypoint_set || cfg->n_entrypoint > 0) {
        strv_reset(&m.entrypoint);
        strv_reset(&m.cmd);
        for (size_t i = 0; i < cfg->n_entrypoint; i++)
            manifest_strv_push(&m.entrypoint, cfg->entrypoint[i]);
    }
    if (cfg->n_cmd > 0) {
        strv_reset(&m.cmd);
        for (size_t i = 0; i < cfg->n_cmd; i++)
            manifest_strv_push(&m.cmd, cfg->cmd[i]);
    }
    for (size_t i = 0; i < cfg->n_env; i++) {
        _cleanup_free_ char *kv = xasprintf("%s=%s", cfg->env[i]->key, cfg->env[i]->value);
        manifest_strv_push(&m.env, kv);
    }
    if (!str_empty(cfg->workdir)) {
        free(m.workdir);
        m.workdir = xstrdup(cfg->workdir);
    }
    if (!str_empty(cfg->user)) {
        free(m.user);
        m.user = xstrdup(cfg->user);
    }
    if (cfg->restart && !str_empty(cfg->restart->name)) {
        _cleanup_free_ char *policy =
            cfg->restart->max_retries && strcmp(cfg->restart->name, "on-failure") == 0
                ? xasprintf("on-failure:%u", cfg->restart->max_retries)
                : xstrdup(cfg->restart->name);
        restart_policy_parse(policy, &m.restart, &m.restart_max);
    }
    m.stop_timeout_s = cfg->stop_timeout;
    int r = 0;
    if (m.entrypoint.n == 0 && m.cmd.n == 0)
        r = hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                     "no command to run: the image has no entrypoint or cmd; give one after "
                     "the image name");
    else if (manifest_encode(&m, out, out_len) < 0)
        r = hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL, "VM config cannot be encoded");
    manifest_free(&m);
    return r;
}

/* ---- starting --------------------------------------------------------------- */

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

static void boot_failed(vm_runtime *vm, const char *why);

static void start_work_free(start_work *w)
{
    free(w->kernel_setting);
    free(w->kernel_path);
    free(w->manifest);
    hypr_error_clear(&w->err);
    free(w);
}

static void on_handle_closed(uv_handle_t *h)
{
    vm_runtime *vm = h->data;
    vm->handles_open--;
    runtime_maybe_free(vm);
}

void vm_close_handle(vm_runtime *vm, uv_handle_t *h)
{
    if (uv_is_closing(h))
        return;
    vm->handles_open++;
    h->data = vm;
    uv_close(h, on_handle_closed);
}

static void answer_stop_waiters(vm_runtime *vm)
{
    store_vm rec = {0};
    bool have = store_vm_find(vm->d->db, vm->id, &rec, NULL) == 0;
    vm_waiter *w = vm->stop_waiters;
    vm->stop_waiters = NULL;
    while (w) {
        vm_waiter *next = w->next;
        if (w->kind == WAIT_STOP && have) {
            Hypr__V1__StopVMResponse resp = HYPR__V1__STOP_VMRESPONSE__INIT;
            resp.vm = vm_to_message(vm->d, &rec);
            rpc_call_reply(w->call, &resp.base);
            vm_message_free(resp.vm);
        } else {
            Hypr__V1__DeleteVMResponse resp = HYPR__V1__DELETE_VMRESPONSE__INIT;
            rpc_call_reply(w->call, &resp.base);
        }
        free(w);
        w = next;
    }
    store_vm_clear(&rec);
}

static bool should_restart(vm_runtime *vm, bool failed);
static void schedule_restart(daemon_ctx *d, const char *id, uint32_t restarts);

/* The hypervisor is gone: settle the VM's final state. */
static void vm_finished(vm_runtime *vm, int64_t exit_status, int term_signal)
{
    daemon_ctx *d = vm->d;
    vm->proc_running = false;
    bool failed = false;
    if (!vm->workload_exited && !vm->stop_requested) {
        failed = true;
        if (!vm->failure) {
            vm->failure =
                !vm->workload_started
                    ? xasprintf("the VM stopped before its workload started (hypervisor %s %d); "
                                "see the console log",
                                term_signal ? "signal" : "exit status",
                                term_signal ? term_signal : (int)exit_status)
                    : xasprintf("the hypervisor exited unexpectedly (%s %d)",
                                term_signal ? "signal" : "exit status",
                                term_signal ? term_signal : (int)exit_status);
        }
        if (!vm->workload_started && vm->exit_code == 0)
            vm->exit_code = 125;
    } else if (!vm->workload_exited) {
        /* Stopped before the workload reported: killed after the timeout. */
        vm->exit_code = 137;
    }
    vm_log_flush(vm);
    log_info("VM %s %s (exit code %d)%s%s", vm->name, failed ? "failed" : "stopped", vm->exit_code,
             failed ? ": " : "", failed ? vm->failure : "");

    vm_ctl_close(vm);
    vm_close_handle(vm, (uv_handle_t *)&vm->boot_timer);
    vm_close_handle(vm, (uv_handle_t *)&vm->stop_timer);
    if (vm->adapter)
        vm->adapter->ops->delete (vm->adapter, &vm->cfg, NULL);
    netmgr_vm_detach(d, TAKE_PTR(vm->net));
    vm->ip[0] = '\0';

    vm_set_status(vm, failed ? "failed" : "stopped", failed ? "vm.failed" : "vm.stopped");
    if (vm->run_waiters)
        vm_notify_run_waiters(vm, HYPR__V1__RUN_VMEVENT__PHASE__FAILED,
                              vm->failure ? vm->failure : "the VM stopped while booting");
    vm_exec_end_all(vm, "the VM stopped");
    vm_metrics_end_all(vm);
    vm_log_end_followers(vm);

    bool restart = should_restart(vm, failed);
    uint32_t restarts = vm->restarts + 1;
    if (vm->remove_after) {
        vm_remove_record(d, vm->id, vm->name);
        restart = false;
    }
    answer_stop_waiters(vm);
    if (restart)
        schedule_restart(d, vm->id, restarts);
    runtime_unlink(vm);
    vm->proc_pid = 0;
    vm_close_handle(vm, (uv_handle_t *)&vm->proc);
}

static void on_proc_exit(uv_process_t *p, int64_t exit_status, int term_signal)
{
    vm_finished(p->data, exit_status, term_signal);
}

static void on_boot_timeout(uv_timer_t *t)
{
    vm_runtime *vm = t->data;
    int secs = vm->adapter->boot_timeout_ms / 1000;
    _cleanup_free_ char *why = xasprintf(
        "the VM did not boot within %d s (the guest never reported its workload); see the "
        "console log %s",
        secs, vm->console_log);
    boot_failed(vm, why);
}

/* Ends a boot that cannot succeed: kill the hypervisor; its exit settles the rest. */
static void boot_failed(vm_runtime *vm, const char *why)
{
    if (!vm->failure)
        vm->failure = xstrdup(why);
    if (vm->proc_running) {
        uv_process_kill(&vm->proc, SIGKILL);
        return;
    }
    /* Nothing was spawned: settle now. */
    netmgr_vm_detach(vm->d, TAKE_PTR(vm->net));
    vm->ip[0] = '\0';
    vm_set_status(vm, "failed", "vm.failed");
    if (vm->run_waiters)
        vm_notify_run_waiters(vm, HYPR__V1__RUN_VMEVENT__PHASE__FAILED, vm->failure);
    answer_stop_waiters(vm);
    vm_ctl_close(vm);
    if (vm->adapter)
        vm->adapter->ops->delete (vm->adapter, &vm->cfg, NULL);
    if (vm->remove_after)
        vm_remove_record(vm->d, vm->id, vm->name);
    runtime_unlink(vm);
    vm_close_handle(vm, (uv_handle_t *)&vm->boot_timer);
    vm_close_handle(vm, (uv_handle_t *)&vm->stop_timer);
    runtime_maybe_free(vm);
}

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
    vm_host *h = vm->d->vm_host;
    pthread_mutex_lock(&h->lock);
    w->r = host_prepare_locked(h, vm->d->data_dir, w->kernel_setting, &w->err);
    if (w->r >= 0)
        w->r = vmm_write_vm_initrd(h->initramfs, w->manifest, w->manifest_len, vm->initrd_path,
                                   &w->err);
    /* The kernel path is copied while the lock still guards it. */
    if (w->r >= 0)
        w->kernel_path = xstrdup(h->kernel.path);
    pthread_mutex_unlock(&h->lock);
}

static int spawn_hypervisor(vm_runtime *vm, hypr_error *err)
{
    _cleanup_vmm_command_ vmm_command cmd = {0};
    int r = vm->adapter->ops->build_command(vm->adapter, &vm->cfg, &cmd, err);
    if (r < 0)
        return r;
    r = vm_ctl_listen(vm, err);
    if (r < 0)
        return r;
    _cleanup_close_ int log_fd =
        open(cmd.stdout_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (log_fd < 0)
        return hypr_err(err, HYPR_INTERNAL, errno, "open console log %s: %s", cmd.stdout_path,
                        strerror(errno));
    uv_stdio_container_t stdio[3] = {
        {.flags = UV_IGNORE},
        {.flags = UV_INHERIT_FD, .data.fd = log_fd},
        {.flags = UV_INHERIT_FD, .data.fd = log_fd},
    };
    uv_process_options_t opts = {
        .exit_cb = on_proc_exit,
        .file = cmd.argv[0],
        .args = cmd.argv,
        .env = cmd.env,
        .stdio_count = 3,
        .stdio = stdio,
    };
    vm->proc.data = vm;
    vm->proc_spawned = true;
    r = uv_spawn(vm->d->loop, &vm->proc, &opts);
    if (r < 0) {
        /* uv_spawn leaves an initialised handle behind on failure. */
        vm_close_handle(vm, (uv_handle_t *)&vm->proc);
        return hypr_err(err, HYPR_FAILED_PRECONDITION, -r, "start %s: %s", cmd.argv[0],
                        uv_strerror(r));
    }
    vm->proc_running = true;
    vm->proc_pid = vm->proc.pid;
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
    if (w->r < 0) {
        boot_failed(vm, w->err.message ? w->err.message : "could not start the VM");
        start_work_free(w);
        return;
    }
    if (w->create_phase) {
        start_work_free(w);
        return;
    }
    if (vm->stop_requested) {
        boot_failed(vm, "stopped before it booted");
        start_work_free(w);
        return;
    }
    hypr_error_clear(&w->err);
    free(vm->kernel_path);
    vm->kernel_path = TAKE_PTR(w->kernel_path);
    vm->cfg.kernel = vm->kernel_path;
    if (spawn_hypervisor(vm, &w->err) < 0) {
        boot_failed(vm, w->err.message);
        start_work_free(w);
        return;
    }
    vm_set_status(vm, "booting", NULL);
    uv_timer_start(&vm->boot_timer, on_boot_timeout, (uint64_t)vm->adapter->boot_timeout_ms, 0);
    /* qemu boots from the spawn; the API-driven hypervisors are configured now. */
    w->create_phase = true;
    vm->handles_open++;
    uv_queue_work(vm->d->loop, &w->req, start_work_run, start_work_done);
}

static void runtime_free(vm_runtime *vm)
{
    free(vm->name);
    free(vm->status);
    vmm_adapter_free(vm->adapter);
    free(vm->initrd_path);
    free(vm->kernel_path);
    free(vm->rootfs_path);
    free(vm->console_log);
    free(vm->ctl_path);
    free(vm->failure);
    for (size_t i = 0; i < ARRAY_SIZE(vm->partial); i++)
        buf_free(&vm->partial[i]);
    for (size_t i = 0; i < ARRAY_SIZE(vm->log_fds); i++)
        if (vm->log_fds[i] >= 0)
            close(vm->log_fds[i]);
    ctl_decoder_free(&vm->dec);
    free(vm);
}

/* Frees once the runtime is out of the registry and every handle is closed. */
static void runtime_maybe_free(vm_runtime *vm)
{
    if (vm->handles_open > 0 || vm->proc_running || vm_runtime_find(vm->d, vm->id) == vm)
        return;
    if (vm->proc_spawned && !uv_is_closing((uv_handle_t *)&vm->proc))
        return;
    runtime_free(vm);
}

int vm_start(daemon_ctx *d, const char *ref, rpc_call *run_waiter, hypr_error *err)
{
    store_vm rec = {0};
    int r = store_vm_find(d->db, ref, &rec, err);
    if (r < 0)
        return r;
    if (vm_runtime_find(d, rec.id)) {
        r = hypr_err(err, HYPR_FAILED_PRECONDITION, EBUSY, "VM %s is already running", rec.name);
        store_vm_clear(&rec);
        return r;
    }
    Hypr__V1__VMConfig *cfg =
        rec.config_len ? hypr__v1__vmconfig__unpack(NULL, rec.config_len, (uint8_t *)rec.config)
                       : NULL;
    store_image img = {0};
    start_work *w = xcalloc(1, sizeof(*w));
    if (!cfg)
        r = hypr_err(err, HYPR_INTERNAL, EINVAL, "VM %s has no readable config", rec.name);
    if (r >= 0) {
        r = store_image_find(d->db, str_empty(rec.image_id) ? rec.image : rec.image_id, &img, err);
        if (r < 0)
            hypr_err_prefix(err, "image of VM %s", rec.name);
    }
    vmm_adapter *adapter = NULL;
    if (r >= 0) {
        _cleanup_free_ char *hv = settings_get(d, "hypervisor");
        r = vmm_adapter_get(hv, &adapter, err);
    }
    vm_net *net = NULL;
    vm_net_boot boot = {0};
    if (r >= 0)
        r = netmgr_vm_attach(d, rec.id, cfg, &net, &boot, err);
    if (r >= 0) {
        r = build_manifest(&rec, cfg, &img, &boot, &w->manifest, &w->manifest_len, err);
        if (r < 0)
            netmgr_vm_detach(d, TAKE_PTR(net));
    }
    if (r < 0) {
        vmm_adapter_free(adapter);
        if (cfg)
            hypr__v1__vmconfig__free_unpacked(cfg, NULL);
        store_image_clear(&img);
        store_vm_clear(&rec);
        start_work_free(w);
        return r;
    }

    vm_runtime *vm = xcalloc(1, sizeof(*vm));
    vm->d = d;
    vm->log_fds[0] = vm->log_fds[1] = -1;
    memcpy(vm->id, rec.id, sizeof(vm->id));
    vm->name = xstrdup(rec.name);
    vm->status = xstrdup("booting");
    vm->adapter = adapter;
    vm->restarts = (uint32_t)rec.restart_count;
    vm->remove_after = cfg->auto_remove;
    vm->initrd_path = xasprintf("%s/%s.initrd", d->run_dir, rec.id);
    vm->rootfs_path = path_join(img.path, "rootfs.squashfs");
    vm->console_log = vm_log_path(d, rec.id);
    vm->cfg.id = vm->id;
    vm->cfg.vcpus = cfg->cpus ? cfg->cpus : 1;
    vm->cfg.memory_mb = (unsigned)(cfg->memory_mb ? cfg->memory_mb : 512);
    vm->cfg.initramfs = vm->initrd_path;
    vm->cfg.rootfs = vm->rootfs_path;
    vm->cfg.run_dir = d->run_dir;
    vm->cfg.console_log = vm->console_log;
    vm->net = net;
    vm->netboot = boot;
    if (boot.n_nics)
        memcpy(vm->ip, boot.nics[0].ip, sizeof(vm->ip));
    for (size_t i = 0; i < boot.n_nics; i++)
        vm->nics[i] = (vmm_nic){.tap = vm->netboot.nics[i].tap, .mac = vm->netboot.nics[i].mac};
    vm->cfg.nics = vm->nics;
    vm->cfg.n_nics = boot.n_nics;
    vm->boot_started_ms = time_monotonic_ms();
    ctl_decoder_init(&vm->dec);
    uv_timer_init(d->loop, &vm->boot_timer);
    uv_timer_init(d->loop, &vm->stop_timer);
    vm->boot_timer.data = vm->stop_timer.data = vm;
    if (run_waiter) {
        vm_waiter *wt = xcalloc(1, sizeof(*wt));
        wt->call = run_waiter;
        wt->kind = WAIT_RUN;
        vm->run_waiters = wt;
    }
    vm->next = d->vms;
    d->vms = vm;
    hypr__v1__vmconfig__free_unpacked(cfg, NULL);
    store_image_clear(&img);
    store_vm_clear(&rec);

    /* A fresh start clears the last run's failure and exit code. */
    vm_set_status(vm, "booting", "vm.starting");
    log_info("starting VM %s (%.12s) with %s", vm->name, vm->id, adapter->ops->name);
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
        uv_process_kill(&vm->proc, SIGKILL);
    }
}

int vm_stop(daemon_ctx *d, const char *ref, int timeout_s, rpc_call *waiter, hypr_error *err)
{
    store_vm rec = {0};
    int r = store_vm_find(d->db, ref, &rec, err);
    if (r < 0)
        return r;
    vm_runtime *vm = vm_runtime_find(d, rec.id);
    if (!vm) {
        /* Like docker stop on a stopped container: nothing to do. */
        if (waiter) {
            Hypr__V1__StopVMResponse resp = HYPR__V1__STOP_VMRESPONSE__INIT;
            resp.vm = vm_to_message(d, &rec);
            rpc_call_reply(waiter, &resp.base);
            vm_message_free(resp.vm);
        }
        store_vm_clear(&rec);
        return 0;
    }
    if (timeout_s < 0) {
        Hypr__V1__VMConfig *cfg =
            rec.config_len ? hypr__v1__vmconfig__unpack(NULL, rec.config_len, (uint8_t *)rec.config)
                           : NULL;
        timeout_s = cfg && cfg->stop_timeout ? (int)cfg->stop_timeout
                                             : (int)settings_get_int(d, "stop_timeout");
        if (cfg)
            hypr__v1__vmconfig__free_unpacked(cfg, NULL);
    }
    store_vm_clear(&rec);
    if (waiter) {
        vm_waiter *w = xcalloc(1, sizeof(*w));
        w->call = waiter;
        w->kind = WAIT_STOP;
        w->next = vm->stop_waiters;
        vm->stop_waiters = w;
    }
    if (vm->stop_requested) {
        /* A stop is under way; a forced one (timeout 0) does not wait for it. */
        if (timeout_s == 0 && vm->proc_running)
            uv_process_kill(&vm->proc, SIGKILL);
        return 0;
    }
    vm->stop_requested = true;
    if (!vm->proc_running) {
        /* Still preparing: start_work_done sees stop_requested and ends it. */
        return 0;
    }
    vm_set_status(vm, "stopping", "vm.stopping");
    ctl_buf frame = {0};
    bool sent =
        ctl_encode_raw(&frame, CTL_SHUTDOWN, 0, NULL, 0) == 0 && vm_ctl_send(vm, &frame) == 0;
    ctl_buf_free(&frame);
    if (!sent || timeout_s == 0) {
        uv_process_kill(&vm->proc, SIGKILL);
        return 0;
    }
    /* kestrel gives the workload timeout_s after SIGTERM; the VM then needs a
     * moment to power off. */
    uv_timer_start(&vm->stop_timer, on_stop_timeout, (uint64_t)timeout_s * 1000 + 500, 0);
    return 0;
}

/* ---- restart policy for hypervisor crashes ---------------------------------- */

typedef struct restart_timer {
    uv_timer_t timer;
    daemon_ctx *d;
    char id[HYPR_ID_LEN + 1];
} restart_timer;

static bool should_restart(vm_runtime *vm, bool failed)
{
    if (vm->stop_requested || vm->d->shutting_down)
        return false;
    store_vm rec = {0};
    if (store_vm_find(vm->d->db, vm->id, &rec, NULL) < 0)
        return false;
    Hypr__V1__VMConfig *cfg =
        rec.config_len ? hypr__v1__vmconfig__unpack(NULL, rec.config_len, (uint8_t *)rec.config)
                       : NULL;
    bool restart = false;
    if (cfg && cfg->restart && vm->workload_started) {
        const char *p = cfg->restart->name;
        /* kestrel applies the policy to the workload inside the VM; this is for
         * a hypervisor that died under it. */
        if (strcmp(p, "always") == 0 || strcmp(p, "unless-stopped") == 0)
            restart = failed;
        else if (strcmp(p, "on-failure") == 0)
            restart = failed &&
                      (cfg->restart->max_retries == 0 || vm->restarts < cfg->restart->max_retries);
    }
    if (cfg)
        hypr__v1__vmconfig__free_unpacked(cfg, NULL);
    store_vm_clear(&rec);
    return restart;
}

static void on_restart_closed(uv_handle_t *h)
{
    free(h->data);
}

static void on_restart_timer(uv_timer_t *t)
{
    restart_timer *rt = t->data;
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    if (!rt->d->shutting_down && vm_start(rt->d, rt->id, NULL, &err) < 0)
        log_warn("restart VM %.12s: %s", rt->id, err.message);
    uv_close((uv_handle_t *)&rt->timer, on_restart_closed);
}

static void schedule_restart(daemon_ctx *d, const char *id, uint32_t restarts)
{
    uint64_t delay = 500;
    for (uint32_t i = 1; i < restarts && delay < MAX_RESTART_DELAY_MS; i++)
        delay *= 2;
    if (delay > MAX_RESTART_DELAY_MS)
        delay = MAX_RESTART_DELAY_MS;
    restart_timer *rt = xcalloc(1, sizeof(*rt));
    rt->d = d;
    memcpy(rt->id, id, sizeof(rt->id));
    uv_timer_init(d->loop, &rt->timer);
    rt->timer.data = rt;
    uv_timer_start(&rt->timer, on_restart_timer, delay, 0);
    /* The new run counts as a restart. */
    store_vm rec = {0};
    if (store_vm_find(d->db, id, &rec, NULL) == 0) {
        rec.restart_count = (int)restarts;
        store_vm_update(d->db, &rec, NULL);
    }
    store_vm_clear(&rec);
    log_info("restarting VM %.12s in %" PRIu64 " ms", id, delay);
}

/* ---- daemon start-up and shutdown ------------------------------------------ */

void vm_manager_reconcile(daemon_ctx *d)
{
    store_vm *vms = NULL;
    size_t n = 0;
    if (store_vm_list(d->db, &vms, &n, NULL) < 0)
        return;
    for (size_t i = 0; i < n; i++) {
        store_vm *v = &vms[i];
        if (strcmp(v->status, "created") == 0 || strcmp(v->status, "stopped") == 0 ||
            strcmp(v->status, "failed") == 0)
            continue;
        /* The previous hyprd stopped its VMs, or died with them. */
        free(v->status);
        v->status = xstrdup("stopped");
        if (!v->stopped_at)
            v->stopped_at = time_now_ms() / 1000;
        v->pid = 0;
        store_vm_update(d->db, v, NULL);
        Hypr__V1__VMConfig *cfg =
            v->config_len ? hypr__v1__vmconfig__unpack(NULL, v->config_len, (uint8_t *)v->config)
                          : NULL;
        bool restart = cfg && cfg->restart &&
                       (strcmp(cfg->restart->name, "always") == 0 ||
                        strcmp(cfg->restart->name, "unless-stopped") == 0);
        if (cfg)
            hypr__v1__vmconfig__free_unpacked(cfg, NULL);
        _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
        if (restart && vm_start(d, v->id, NULL, &err) < 0)
            log_warn("restart VM %s: %s", v->name, err.message);
    }
    store_vms_free(vms, n);
}

/* Shutdown gives VMs this long to stop by themselves before they are killed. */
#define SHUTDOWN_GRACE_MS 8000

static void (*shutdown_done)(daemon_ctx *d);
static uv_timer_t shutdown_poll;
static int64_t shutdown_deadline;

static void on_shutdown_poll(uv_timer_t *t)
{
    daemon_ctx *d = t->data;
    if (d->vms && time_monotonic_ms() > shutdown_deadline) {
        for (vm_runtime *vm = d->vms; vm; vm = vm->next)
            if (vm->proc_running)
                uv_process_kill(&vm->proc, SIGKILL);
        shutdown_deadline = INT64_MAX;
    }
    if (d->vms)
        return;
    uv_close((uv_handle_t *)t, NULL);
    shutdown_done(d);
}

void vm_manager_shutdown(daemon_ctx *d, void (*done)(daemon_ctx *d))
{
    shutdown_done = done;
    shutdown_deadline = time_monotonic_ms() + SHUTDOWN_GRACE_MS;
    for (vm_runtime *vm = d->vms; vm; vm = vm->next) {
        _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
        vm_stop(d, vm->id, 5, NULL, &err);
    }
    uv_timer_init(d->loop, &shutdown_poll);
    shutdown_poll.data = d;
    uv_timer_start(&shutdown_poll, on_shutdown_poll, 0, 50);
}

void vm_forget_call(daemon_ctx *d, rpc_call *call)
{
    for (vm_runtime *vm = d->vms; vm; vm = vm->next) {
        vm_waiter **lists[] = {&vm->run_waiters, &vm->stop_waiters};
        for (size_t i = 0; i < ARRAY_SIZE(lists); i++) {
            for (vm_waiter **p = lists[i]; *p;) {
                if ((*p)->call == call) {
                    vm_waiter *w = *p;
                    *p = w->next;
                    free(w);
                } else {
                    p = &(*p)->next;
                }
            }
        }
    }
}
