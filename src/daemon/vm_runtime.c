/* The bottom of the VM manager: the registry of runtimes, their persistence in
 * the store, the listeners that hear about every VM, and the writer of the
 * control channel. Everything else in vm_*.c calls down to here. */
#define LOG_MODULE "vm"
#include "vm_internal.h"

#include <string.h>

/* ---- stored configs ---------------------------------------------------------- */

int vm_config_decode(const store_vm *rec, Hypr__V1__VMConfig **out, hypr_error *err)
{
    *out = rec->config_len
               ? hypr__v1__vmconfig__unpack(NULL, rec->config_len, (const uint8_t *)rec->config)
               : NULL;
    if (!*out)
        return hypr_err(err, HYPR_INTERNAL, EINVAL, "VM %s has no readable config", rec->name);
    return 0;
}

/* ---- phases and listeners ------------------------------------------------------- */

const char *vm_phase_status(vm_phase phase)
{
    static const char *const names[] = {
        [VM_PHASE_CREATED] = "created",   [VM_PHASE_BOOTING] = "booting",
        [VM_PHASE_RUNNING] = "running",   [VM_PHASE_RESTARTING] = "running",
        [VM_PHASE_STOPPING] = "stopping", [VM_PHASE_STOPPED] = "stopped",
        [VM_PHASE_FAILED] = "failed",
    };
    return (size_t)phase < ARRAY_SIZE(names) ? names[phase] : "unknown";
}

void vm_listener_add(daemon_ctx *d, vm_listener *l)
{
    l->next = d->vm_listeners;
    d->vm_listeners = l;
}

void vm_listener_remove(daemon_ctx *d, vm_listener *l)
{
    for (vm_listener **p = &d->vm_listeners; *p; p = &(*p)->next) {
        if (*p == l) {
            *p = l->next;
            return;
        }
    }
}

void vm_notify(daemon_ctx *d, const vm_notice *n)
{
    vm_listener *l = d->vm_listeners;
    while (l) {
        /* A listener may remove itself. */
        vm_listener *next = l->next;
        l->notify(l, d, n);
        l = next;
    }
}

/* ---- the registry ------------------------------------------------------------------ */

vm_runtime *vm_runtime_new(daemon_ctx *d, const char *id, const char *name)
{
    vm_runtime *vm = xcalloc(1, sizeof(*vm));
    vm->d = d;
    vm->log_fds[0] = vm->log_fds[1] = -1;
    vm->pidfd = -1;
    snprintf(vm->id, sizeof(vm->id), "%s", id);
    vm->name = xstrdup(name);
    vm->phase = VM_PHASE_BOOTING;
    ctl_decoder_init(&vm->dec);
    uv_timer_init(d->loop, &vm->boot_timer);
    uv_timer_init(d->loop, &vm->stop_timer);
    uv_timer_init(d->loop, &vm->reconnect_timer);
    vm->boot_timer.data = vm->stop_timer.data = vm->reconnect_timer.data = vm;
    vm->next = d->vms;
    d->vms = vm;
    return vm;
}

vm_runtime *vm_runtime_find(daemon_ctx *d, const char *id)
{
    for (vm_runtime *vm = d->vms; vm; vm = vm->next)
        if (strcmp(vm->id, id) == 0)
            return vm;
    return NULL;
}

int vm_runtime_lookup(daemon_ctx *d, const char *ref, bool need_workload, vm_runtime **out,
                      hypr_error *err)
{
    _cleanup_store_vm_ store_vm rec = {0};
    int r = store_vm_find(d->db, ref, &rec, err);
    if (r < 0)
        return r;
    vm_runtime *vm = vm_runtime_find(d, rec.id);
    if (!vm || (need_workload && (!vm->workload_started || !vm->ctl_connected)))
        return hypr_err(err, HYPR_FAILED_PRECONDITION, ENOTCONN,
                        "VM %s is not running (status: %s)", rec.name,
                        vm ? vm_phase_status(vm->phase) : rec.status);
    *out = vm;
    return 0;
}

const char *vm_running_status(daemon_ctx *d, const char *id)
{
    vm_runtime *vm = vm_runtime_find(d, id);
    return vm ? vm_phase_status(vm->phase) : NULL;
}

bool vm_channel_pending(const vm_runtime *vm)
{
    return vm->adopted && !vm->ctl_connected && uv_is_active((uv_handle_t *)&vm->reconnect_timer);
}

struct vm_net *vm_running_net(daemon_ctx *d, const char *id)
{
    vm_runtime *vm = vm_runtime_find(d, id);
    return vm ? vm->net : NULL;
}

void vm_runtime_unlink(vm_runtime *vm)
{
    for (vm_runtime **p = &vm->d->vms; *p; p = &(*p)->next) {
        if (*p == vm) {
            *p = vm->next;
            return;
        }
    }
}

static void runtime_free(vm_runtime *vm)
{
    free(vm->name);
    vmm_adapter_free(vm->adapter);
    free(vm->initrd_path);
    free(vm->kernel_path);
    free(vm->rootfs_path);
    free(vm->console_log);
    free(vm->ctl_path);
    strv_free(vm->gpus);
    vm_mounts_free(vm->mounts);
    hypr_error_clear(&vm->failure);
    for (size_t i = 0; i < ARRAY_SIZE(vm->partial); i++)
        buf_free(&vm->partial[i]);
    for (size_t i = 0; i < ARRAY_SIZE(vm->log_fds); i++)
        if (vm->log_fds[i] >= 0)
            close(vm->log_fds[i]);
    if (vm->pidfd >= 0)
        close(vm->pidfd);
    ctl_decoder_free(&vm->dec);
    free(vm);
}

void vm_runtime_maybe_free(vm_runtime *vm)
{
    if (vm->handles_open > 0 || vm->proc_running || vm_runtime_find(vm->d, vm->id) == vm)
        return;
    if (vm->proc_spawned && !uv_is_closing((uv_handle_t *)&vm->proc))
        return;
    runtime_free(vm);
}

static void on_handle_closed(uv_handle_t *h)
{
    vm_runtime *vm = h->data;
    vm->handles_open--;
    vm_runtime_maybe_free(vm);
}

void vm_close_handle(vm_runtime *vm, uv_handle_t *h)
{
    if (uv_is_closing(h))
        return;
    vm->handles_open++;
    h->data = vm;
    uv_close(h, on_handle_closed);
}

int vm_spawn_detached(vm_runtime *vm, uv_process_t *h, char **argv, char **env,
                      const char *log_path, uv_exit_cb exit_cb, hypr_error *err)
{
    _cleanup_close_ int log_fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (log_fd < 0)
        return hypr_err(err, HYPR_INTERNAL, errno, "open console log %s: %s", log_path,
                        strerror(errno));
    uv_stdio_container_t stdio[3] = {
        {.flags = UV_IGNORE},
        {.flags = UV_INHERIT_FD, .data.fd = log_fd},
        {.flags = UV_INHERIT_FD, .data.fd = log_fd},
    };
    uv_process_options_t opts = {
        .flags = UV_PROCESS_DETACHED,
        .exit_cb = exit_cb,
        .file = argv[0],
        .args = argv,
        .env = env,
        .stdio_count = 3,
        .stdio = stdio,
    };
    h->data = vm;
    int r = uv_spawn(vm->d->loop, h, &opts);
    if (r < 0) {
        /* uv_spawn leaves an initialised handle behind on failure. */
        vm_close_handle(vm, (uv_handle_t *)h);
        return hypr_err(err, HYPR_FAILED_PRECONDITION, -r, "start %s: %s", argv[0], uv_strerror(r));
    }
    return 0;
}

/* ---- persistence ---------------------------------------------------------------- */

void vm_persist(vm_runtime *vm, vm_phase phase)
{
    daemon_ctx *d = vm->d;
    vm->phase = phase;
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    _cleanup_store_vm_ store_vm rec = {0};
    int r = store_vm_find(d->db, vm->id, &rec, &err);
    if (r == 0) {
        free(rec.status);
        rec.status = xstrdup(vm_phase_status(phase));
        int64_t now = time_now_ms() / 1000;
        if (phase == VM_PHASE_BOOTING) {
            rec.manual_stop = false;
        } else if (phase == VM_PHASE_RUNNING) {
            if (!vm->keep_started_at || !rec.started_at)
                rec.started_at = now;
            vm->keep_started_at = false;
            rec.exit_code = 0;
            free(TAKE_PTR(rec.error));
        } else if (phase == VM_PHASE_STOPPED || phase == VM_PHASE_FAILED) {
            rec.stopped_at = now;
            rec.exit_code = vm->exit_code;
            rec.manual_stop = vm->manual_stop;
            free(rec.error);
            rec.error = vm->failure.message ? xstrdup(vm->failure.message) : NULL;
        }
        rec.pid = vm->proc_running ? vm->proc_pid : 0;
        /* Like docker: a VM has an address while it is up. */
        free(rec.ip_address);
        rec.ip_address = vm->ip[0] ? xstrdup(vm->ip) : NULL;
        rec.restart_count = (int)vm->restarts;
        r = store_vm_update(d->db, &rec, &err);
    }
    /* Nobody waits on this write to answer: this is the top for its error. */
    if (r < 0)
        log_error("VM %s: cannot store status %s: %s", vm->name, vm_phase_status(phase),
                  err.message);
}

void vm_set_phase(vm_runtime *vm, vm_phase phase)
{
    vm_persist(vm, phase);
    bool final = phase == VM_PHASE_STOPPED || phase == VM_PHASE_FAILED;
    vm_notice n = {
        .kind = final ? VM_NOTICE_EXIT : VM_NOTICE_PHASE,
        .id = vm->id,
        .name = vm->name,
        .phase = phase,
        .exit_code = vm->exit_code,
        .err = vm->failure.status != HYPR_OK ? &vm->failure : NULL,
    };
    vm_notify(vm->d, &n);
}

/* ---- the control channel's writer ------------------------------------------------ */

typedef struct ctl_write {
    uv_write_t req;
    uint8_t *data;
} ctl_write;

static void on_write(uv_write_t *req, int status)
{
    ctl_write *w = (ctl_write *)req;
    free(w->data);
    free(w);
    (void)status; /* a broken channel shows up on the read side */
}

int vm_ctl_send(vm_runtime *vm, ctl_buf *frame)
{
    if (!vm->ctl_connected)
        return -ENOTCONN;
    ctl_write *w = xcalloc(1, sizeof(*w));
    w->data = TAKE_PTR(frame->data);
    uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)frame->len);
    frame->len = frame->cap = 0;
    int r = uv_write(&w->req, (uv_stream_t *)&vm->ctl_conn, &b, 1, on_write);
    if (r < 0) {
        free(w->data);
        free(w);
        return r;
    }
    return 0;
}

char *vm_log_path(daemon_ctx *d, const char *id)
{
    return xasprintf("%s/logs/%s.log", d->data_dir, id);
}
