/* hypr pause / unpause: the hypervisor stops the VM's vCPUs (qemu: QMP stop) and
 * runs them again (cont). The request to the hypervisor blocks, so it runs on the
 * thread pool; the runtime stays alive until it is back. */
#define LOG_MODULE "vm"
#include "vm_internal.h"

#include <string.h>

typedef struct pause_work {
    uv_work_t req;
    vm_runtime *vm;
    bool pause;
    int r;
    hypr_error err;
    vm_pause_done done;
    void *ud;
} pause_work;

static void pause_run(uv_work_t *req)
{
    pause_work *w = req->data;
    w->r = w->vm->adapter->ops->pause(w->vm->adapter, &w->vm->cfg, w->pause, 5000, &w->err);
}

static void pause_after(uv_work_t *req, int status)
{
    pause_work *w = req->data;
    vm_runtime *vm = w->vm;
    vm->pause_busy = false;
    vm->handles_open--;
    if (status < 0 && w->r >= 0)
        w->r = hypr_err(&w->err, HYPR_CANCELLED, -status, "the pause request was cancelled");
    if (w->r >= 0 && vm->proc_running) {
        vm->paused = w->pause;
        vm_write_proc_file(vm); /* a hyprd restart must know it is still paused */
        log_info("VM %s %s", vm->name, w->pause ? "paused" : "unpaused");
        char *attrs[] = {"name", vm->name, NULL};
        event_publish(vm->d->events, w->pause ? "vm.paused" : "vm.unpaused", vm->id, vm->name,
                      attrs);
    }
    w->done(w->r, &w->err, w->ud);
    hypr_error_clear(&w->err);
    free(w);
    vm_runtime_maybe_free(vm);
}

int vm_pause(daemon_ctx *d, const char *ref, bool pause, vm_pause_done done, void *ud,
             hypr_error *err)
{
    _cleanup_store_vm_ store_vm rec = {0};
    int r = store_vm_find(d->db, ref, &rec, err);
    if (r < 0)
        return r;
    vm_runtime *vm = vm_runtime_find(d, rec.id);
    if (!vm || !vm->proc_running || vm->stop_requested || vm->phase != VM_PHASE_RUNNING)
        return hypr_err(err, HYPR_FAILED_PRECONDITION, ESRCH, "VM %s is not running", rec.name);
    if (vm->pause_busy)
        return hypr_err(err, HYPR_FAILED_PRECONDITION, EBUSY,
                        "VM %s is being paused or unpaused already", rec.name);
    if (pause && vm->paused)
        return hypr_err(err, HYPR_FAILED_PRECONDITION, EALREADY, "VM %s is already paused",
                        rec.name);
    if (!pause && !vm->paused)
        return hypr_err(err, HYPR_FAILED_PRECONDITION, EINVAL, "VM %s is not paused", rec.name);
    if (!vm->adapter->ops->pause)
        return hypr_err(err, HYPR_UNIMPLEMENTED, ENOTSUP,
                        "pause is not supported with the %s hypervisor yet",
                        vm->adapter->ops->name);
    pause_work *w = xcalloc(1, sizeof(*w));
    w->req.data = w;
    w->vm = vm;
    w->pause = pause;
    w->done = done;
    w->ud = ud;
    w->err = (hypr_error)HYPR_ERROR_INIT;
    /* Re-adopted while paused: resumed before qemu has reconnected its channel, the
     * guest's port stays dead. The cont waits for the channel (a second at most). */
    if (!pause && vm_channel_pending(vm)) {
        vm->parked_unpause = w;
    } else if ((r = uv_queue_work(d->loop, &w->req, pause_run, pause_after)) < 0) {
        free(w);
        return hypr_err(err, HYPR_INTERNAL, -r, "queue the pause: %s", uv_strerror(r));
    }
    vm->pause_busy = true;
    vm->handles_open++; /* the runtime outlives the request */
    return 0;
}

void vm_pause_resume_parked(vm_runtime *vm)
{
    pause_work *w = TAKE_PTR(vm->parked_unpause);
    if (!w)
        return;
    int r = uv_queue_work(vm->d->loop, &w->req, pause_run, pause_after);
    if (r < 0) {
        hypr_err(&w->err, HYPR_INTERNAL, -r, "queue the unpause: %s", uv_strerror(r));
        w->r = r;
        pause_after(&w->req, 0);
    }
}

bool vm_is_paused(daemon_ctx *d, const char *id)
{
    vm_runtime *vm = vm_runtime_find(d, id);
    return vm && vm->paused;
}
