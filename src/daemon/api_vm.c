/* VM RPCs: CreateVM, StartVM, StopVM, DeleteVM, RenameVM and RunVM.
 * CreateVM and RunVM pull a missing registry image first (RunVM streams the
 * pull's progress as PULLING events); a failed pull fails the call and
 * creates nothing. Calls that wait on a VM (RunVM until it runs, StopVM until it
 * is down, DeleteVM until it is gone) are answered from the lifecycle's notices:
 * this file is a VM listener. */
#define LOG_MODULE "api"
#include "api.h"
#include "vm.h"

#include "image/image.h"

#include <string.h>

typedef enum { WAIT_RUN, WAIT_START, WAIT_STOP, WAIT_DELETE, WAIT_EXIT } wait_kind;

typedef struct vm_waiter {
    rpc_call *call;
    wait_kind kind;
    char id[HYPR_ID_LEN + 1];
    struct vm_waiter *next;
} vm_waiter;

typedef struct api_state api_state;

struct api_state {
    vm_listener listener; /* first: the listener is the state */
    vm_waiter *waiters;
};

static void waiter_add(daemon_ctx *d, rpc_call *call, wait_kind kind, const char *id)
{
    vm_waiter *w = xcalloc(1, sizeof(*w));
    w->call = call;
    w->kind = kind;
    snprintf(w->id, sizeof(w->id), "%s", id);
    w->next = d->api->waiters;
    d->api->waiters = w;
}

static void waiters_drop_call(daemon_ctx *d, rpc_call *call)
{
    for (vm_waiter **p = &d->api->waiters; *p;) {
        vm_waiter *w = *p;
        if (w->call == call) {
            *p = w->next;
            free(w);
        } else {
            p = &w->next;
        }
    }
}

/* The VM of a record, as the API shows it (NULL when the record is gone). The
 * message points into rec, which the caller clears after it. */
static Hypr__V1__VM *vm_message_by_id(daemon_ctx *d, const char *id, store_vm *rec)
{
    return store_vm_find(d->db, id, rec, NULL) == 0 ? api_vm_message(d, rec) : NULL;
}

static void send_run_event(daemon_ctx *d, rpc_call *call, Hypr__V1__RunVMEvent__Phase phase,
                           const char *id, const char *message)
{
    Hypr__V1__RunVMEvent ev = HYPR__V1__RUN_VMEVENT__INIT;
    ev.phase = phase;
    ev.message = (char *)(message ? message : "");
    _cleanup_store_vm_ store_vm rec = {0};
    ev.vm = vm_message_by_id(d, id, &rec);
    rpc_call_send(call, &ev.base);
    api_vm_message_free(ev.vm);
}

/* Replies with a response that is { VM vm = 1; } (StartVM, StopVM, KillVM, PauseVM,
 * UpdateVM, RenameVM, CreateVM): desc's message with its field "vm" set; vm is freed. */
static void reply_vm(rpc_call *call, const ProtobufCMessageDescriptor *desc, Hypr__V1__VM *vm)
{
    _cleanup_free_ ProtobufCMessage *m = xcalloc(1, desc->sizeof_message);
    desc->message_init(m);
    const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(desc, "vm");
    if (f)
        *(Hypr__V1__VM **)((char *)m + f->offset) = vm;
    rpc_call_reply(call, m);
    api_vm_message_free(vm);
}

/* The same, with VM id as it is now. */
static void reply_vm_by_id(daemon_ctx *d, rpc_call *call, const ProtobufCMessageDescriptor *desc,
                           const char *id)
{
    _cleanup_store_vm_ store_vm rec = {0}; /* the message borrows from it */
    reply_vm(call, desc, vm_message_by_id(d, id, &rec));
}

static void reply_wait(daemon_ctx *d, rpc_call *call, const char *id)
{
    Hypr__V1__WaitVMResponse resp = HYPR__V1__WAIT_VMRESPONSE__INIT;
    _cleanup_store_vm_ store_vm rec = {0};
    resp.vm = vm_message_by_id(d, id, &rec);
    resp.exit_code = resp.vm ? resp.vm->exit_code : 0;
    rpc_call_reply(call, &resp.base);
    api_vm_message_free(resp.vm);
}

/* Whether a notice ends a waiter (it is then answered and freed). */
static bool notice_ends(const vm_waiter *w, const vm_notice *n)
{
    switch (w->kind) {
    case WAIT_RUN:
    case WAIT_START:
        return n->kind == VM_NOTICE_EXIT || n->kind == VM_NOTICE_REMOVED ||
               (n->kind == VM_NOTICE_PHASE && n->phase == VM_PHASE_RUNNING);
    case WAIT_STOP:
    case WAIT_EXIT:
        return n->kind == VM_NOTICE_EXIT || n->kind == VM_NOTICE_REMOVED;
    case WAIT_DELETE:
        return n->kind == VM_NOTICE_REMOVED;
    }
    return false;
}

static void answer(daemon_ctx *d, vm_waiter *w, const vm_notice *n)
{
    if (w->kind == WAIT_STOP) {
        reply_vm_by_id(d, w->call, &hypr__v1__stop_vmresponse__descriptor, n->id);
        return;
    }
    if (w->kind == WAIT_START) {
        if (n->kind == VM_NOTICE_PHASE) { /* RUNNING: the workload was started */
            reply_vm_by_id(d, w->call, &hypr__v1__start_vmresponse__descriptor, n->id);
        } else if (n->err && n->err->status != HYPR_OK) {
            rpc_call_finish(w->call, n->err->status, n->err->message);
        } else {
            rpc_call_finish(w->call, HYPR_FAILED_PRECONDITION,
                            n->err && n->err->message ? n->err->message
                                                      : "the VM stopped while booting");
        }
        return;
    }
    if (w->kind == WAIT_EXIT) {
        if (n->kind == VM_NOTICE_REMOVED)
            rpc_call_finish(w->call, HYPR_NOT_FOUND, "the VM was removed while waiting");
        else
            reply_wait(d, w->call, n->id);
        return;
    }
    if (w->kind == WAIT_DELETE) {
        if (n->err) {
            api_fail(w->call, n->err);
        } else {
            Hypr__V1__DeleteVMResponse resp = HYPR__V1__DELETE_VMRESPONSE__INIT;
            rpc_call_reply(w->call, &resp.base);
        }
        return;
    }
    if (n->kind == VM_NOTICE_PHASE) { /* RUNNING */
        send_run_event(d, w->call, HYPR__V1__RUN_VMEVENT__PHASE__RUNNING, n->id, NULL);
        rpc_call_finish(w->call, HYPR_OK, NULL);
        return;
    }
    const char *why = n->err && n->err->message ? n->err->message : "the VM stopped while booting";
    send_run_event(d, w->call, HYPR__V1__RUN_VMEVENT__PHASE__FAILED, n->id, why);
    hypr_status status =
        n->err && n->err->status != HYPR_OK ? n->err->status : HYPR_FAILED_PRECONDITION;
    rpc_call_finish(w->call, status, why);
}

static void on_vm_notice(vm_listener *l, daemon_ctx *d, const vm_notice *n)
{
    api_state *st = (api_state *)l;
    /* Ended waiters leave the list before any call is answered: answering may
     * close a call, whose on_close walks the list. */
    vm_waiter *ended = NULL;
    for (vm_waiter **p = &st->waiters; *p;) {
        vm_waiter *w = *p;
        if (strcmp(w->id, n->id) == 0 && notice_ends(w, n)) {
            *p = w->next;
            w->next = ended;
            ended = w;
        } else {
            p = &w->next;
        }
    }
    if (n->kind == VM_NOTICE_PHASE && n->phase == VM_PHASE_BOOTING) {
        for (vm_waiter *w = st->waiters, *next; w; w = next) {
            next = w->next;
            if (w->kind == WAIT_RUN && strcmp(w->id, n->id) == 0)
                send_run_event(d, w->call, HYPR__V1__RUN_VMEVENT__PHASE__BOOTING, n->id, NULL);
        }
    }
    while (ended) {
        vm_waiter *w = ended;
        ended = w->next;
        answer(d, w, n);
        free(w);
    }
}

void api_init(daemon_ctx *d)
{
    d->api = xcalloc(1, sizeof(*d->api));
    d->api->listener.notify = on_vm_notice;
    vm_listener_add(d, &d->api->listener);
}

void api_free(daemon_ctx *d)
{
    if (!d->api)
        return;
    vm_listener_remove(d, &d->api->listener);
    while (d->api->waiters) {
        vm_waiter *w = d->api->waiters;
        d->api->waiters = w->next;
        free(w);
    }
    free(d->api);
    d->api = NULL;
}

/* ---- StartVM / StopVM / RenameVM / DeleteVM ------------------------------------------- */

/* The full ID of a VM named by ID, prefix or name. */
static int resolve_id(daemon_ctx *d, const char *ref, char id[HYPR_ID_LEN + 1], hypr_error *err)
{
    _cleanup_store_vm_ store_vm rec = {0};
    int r = store_vm_find(d->db, ref, &rec, err);
    if (r >= 0)
        memcpy(id, rec.id, HYPR_ID_LEN + 1);
    return r;
}

void api_start_vm(rpc_call *call, ProtobufCMessage *msg)
{
    _cleanup_pb_ Hypr__V1__StartVMRequest *req = (Hypr__V1__StartVMRequest *)msg;
    daemon_ctx *d = api_daemon(call);
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    char id[HYPR_ID_LEN + 1];
    if (resolve_id(d, req->id, id, &err) < 0 || vm_start(d, id, req->attach, &err) < 0) {
        api_fail(call, &err);
        return;
    }
    /* Answered once the workload runs (or the boot failed), as docker start returns. */
    waiter_add(d, call, WAIT_START, id);
}

void api_stop_vm(rpc_call *call, ProtobufCMessage *msg)
{
    _cleanup_pb_ Hypr__V1__StopVMRequest *req = (Hypr__V1__StopVMRequest *)msg;
    daemon_ctx *d = api_daemon(call);
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    /* timeout 0 in the request means "the VM's own stop timeout". */
    int timeout = req->timeout_seconds ? (int)req->timeout_seconds : -1;
    int sig = str_empty(req->signal) ? 0 : signal_parse(req->signal);
    if (sig < 0) {
        rpc_call_finish(call, HYPR_INVALID_ARGUMENT, "invalid signal: use a name or number");
        return;
    }
    char id[HYPR_ID_LEN + 1];
    int r = resolve_id(d, req->id, id, &err);
    if (r >= 0)
        r = vm_stop(d, id, timeout, sig, &err);
    if (r < 0)
        api_fail(call, &err);
    else if (r == 0)
        reply_vm_by_id(d, call, &hypr__v1__stop_vmresponse__descriptor, id); /* not running */
    else
        waiter_add(d, call, WAIT_STOP, id);
}

void api_kill_vm(rpc_call *call, ProtobufCMessage *msg)
{
    _cleanup_pb_ Hypr__V1__KillVMRequest *req = (Hypr__V1__KillVMRequest *)msg;
    daemon_ctx *d = api_daemon(call);
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    int sig = str_empty(req->signal) ? SIGKILL : signal_parse(req->signal);
    if (sig < 0) {
        _cleanup_free_ char *m = xasprintf("invalid signal: %s", req->signal);
        rpc_call_finish(call, HYPR_INVALID_ARGUMENT, m);
        return;
    }
    char id[HYPR_ID_LEN + 1];
    if (resolve_id(d, req->id, id, &err) < 0 || vm_kill(d, id, sig, &err) < 0) {
        api_fail(call, &err);
        return;
    }
    reply_vm_by_id(d, call, &hypr__v1__kill_vmresponse__descriptor, id);
}

/* A PauseVM/UnpauseVM call while the hypervisor answers (call NULL: it went away). */
typedef struct pause_call {
    rpc_call *call;
    daemon_ctx *d;
    char id[HYPR_ID_LEN + 1];
} pause_call;

static void pause_done(int r, hypr_error *err, void *ud)
{
    pause_call *p = ud;
    if (p->call) {
        rpc_call_set_data(p->call, NULL);
        if (r < 0) {
            api_fail(p->call, err);
        } else {
            /* PauseVMResponse and UnpauseVMResponse are the same message: { VM vm = 1; } */
            reply_vm_by_id(p->d, p->call, &hypr__v1__pause_vmresponse__descriptor, p->id);
        }
    }
    free(p);
}

static void pause_or_unpause(rpc_call *call, const char *ref, bool pause)
{
    daemon_ctx *d = api_daemon(call);
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    pause_call *p = xcalloc(1, sizeof(*p));
    p->call = call;
    p->d = d;
    if (resolve_id(d, ref, p->id, &err) < 0 || vm_pause(d, p->id, pause, pause_done, p, &err) < 0) {
        free(p);
        api_fail(call, &err);
        return;
    }
    rpc_call_set_data(call, p);
}

void api_pause_vm(rpc_call *call, ProtobufCMessage *msg)
{
    _cleanup_pb_ Hypr__V1__PauseVMRequest *req = (Hypr__V1__PauseVMRequest *)msg;
    pause_or_unpause(call, req->id, true);
}

void api_unpause_vm(rpc_call *call, ProtobufCMessage *msg)
{
    _cleanup_pb_ Hypr__V1__UnpauseVMRequest *req = (Hypr__V1__UnpauseVMRequest *)msg;
    pause_or_unpause(call, req->id, false);
}

void api_pause_call_close(rpc_call *call, bool cancelled)
{
    (void)cancelled;
    pause_call *p = rpc_call_get_data(call);
    if (p)
        p->call = NULL; /* pause_done frees it */
}

void api_wait_vm(rpc_call *call, ProtobufCMessage *msg)
{
    _cleanup_pb_ Hypr__V1__WaitVMRequest *req = (Hypr__V1__WaitVMRequest *)msg;
    daemon_ctx *d = api_daemon(call);
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    char id[HYPR_ID_LEN + 1];
    if (resolve_id(d, req->id, id, &err) < 0) {
        api_fail(call, &err);
        return;
    }
    if (vm_running_status(d, id))
        waiter_add(d, call, WAIT_EXIT, id);
    else
        reply_wait(d, call, id);
}

void api_update_vm(rpc_call *call, ProtobufCMessage *msg)
{
    _cleanup_pb_ Hypr__V1__UpdateVMRequest *req = (Hypr__V1__UpdateVMRequest *)msg;
    daemon_ctx *d = api_daemon(call);
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    _cleanup_store_vm_ store_vm rec = {0};
    if (vm_update(d, req->id, req->restart, req->cpus, req->memory_mb, &rec, &err) < 0) {
        api_fail(call, &err);
        return;
    }
    reply_vm(call, &hypr__v1__update_vmresponse__descriptor, api_vm_message(d, &rec));
}

void api_rename_vm(rpc_call *call, ProtobufCMessage *msg)
{
    _cleanup_pb_ Hypr__V1__RenameVMRequest *req = (Hypr__V1__RenameVMRequest *)msg;
    daemon_ctx *d = api_daemon(call);
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    _cleanup_store_vm_ store_vm rec = {0};
    if (vm_rename(d, req->id, req->name, &rec, &err) < 0) {
        api_fail(call, &err);
        return;
    }
    reply_vm(call, &hypr__v1__rename_vmresponse__descriptor, api_vm_message(d, &rec));
}

void api_delete_vm(rpc_call *call, ProtobufCMessage *msg)
{
    _cleanup_pb_ Hypr__V1__DeleteVMRequest *req = (Hypr__V1__DeleteVMRequest *)msg;
    daemon_ctx *d = api_daemon(call);
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    char id[HYPR_ID_LEN + 1];
    int r = resolve_id(d, req->id, id, &err);
    if (r >= 0)
        r = vm_delete(d, id, req->force, req->remove_volumes, &err);
    if (r < 0) {
        api_fail(call, &err);
    } else if (r == 0) {
        Hypr__V1__DeleteVMResponse resp = HYPR__V1__DELETE_VMRESPONSE__INIT;
        rpc_call_reply(call, &resp.base);
    } else {
        /* A running VM is being killed: the answer comes once its record is gone. */
        waiter_add(d, call, WAIT_DELETE, id);
    }
}

void api_vm_call_close(rpc_call *call, bool cancelled)
{
    (void)cancelled;
    waiters_drop_call(api_daemon(call), call);
}

/* ---- CreateVM / RunVM ------------------------------------------------------------ */

static void create_vm(rpc_call *call, const Hypr__V1__VMConfig *cfg)
{
    daemon_ctx *d = api_daemon(call);
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    _cleanup_store_vm_ store_vm vm = {0};
    if (vm_create(d, cfg, &vm, &err) < 0) {
        api_fail(call, &err);
        return;
    }
    reply_vm(call, &hypr__v1__create_vmresponse__descriptor, api_vm_message(d, &vm));
}

/* Created, then started: the call streams CREATED here, then BOOTING, RUNNING or
 * FAILED from the lifecycle's notices. */
static void run_vm(rpc_call *call, ProtobufCMessage *msg, const Hypr__V1__VMConfig *cfg)
{
    bool attach = ((const Hypr__V1__RunVMRequest *)msg)->attach;
    daemon_ctx *d = api_daemon(call);
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    _cleanup_store_vm_ store_vm vm = {0};
    if (vm_create(d, cfg, &vm, &err) < 0) {
        api_fail(call, &err);
        return;
    }
    send_run_event(d, call, HYPR__V1__RUN_VMEVENT__PHASE__CREATED, vm.id, NULL);
    waiter_add(d, call, WAIT_RUN, vm.id);
    if (vm_start(d, vm.id, attach, &err) < 0) {
        /* A VM that could not even start is not left behind (nor its addresses). */
        waiters_drop_call(d, call);
        vm_remove_record(d, vm.id, vm.name, true);
        api_fail(call, &err);
    }
}

/* A CreateVM/RunVM request waiting for its image to be pulled. */
typedef struct vm_request {
    ProtobufCMessage *msg;
    const Hypr__V1__VMConfig *cfg; /* inside msg */
    bool run;
} vm_request;

static void vm_request_free(void *ud)
{
    vm_request *vr = ud;
    protobuf_c_message_free_unpacked(vr->msg, NULL);
    free(vr);
}

static void send_pulling(rpc_call *call, const Hypr__V1__PullProgress *msg)
{
    Hypr__V1__RunVMEvent ev = HYPR__V1__RUN_VMEVENT__INIT;
    ev.phase = HYPR__V1__RUN_VMEVENT__PHASE__PULLING;
    ev.pull = (Hypr__V1__PullProgress *)msg;
    rpc_call_send(call, &ev.base);
}

static void pull_progress(rpc_call *call, const Hypr__V1__PullProgress *msg, void *ud)
{
    vm_request *vr = ud;
    if (vr->run)
        send_pulling(call, msg);
}

static void pull_done(rpc_call *call, const store_image *img, hypr_error *err, void *ud)
{
    vm_request *vr = ud;
    if (!img) {
        /* The pull's own status and message: nothing was created. */
        api_fail(call, err);
        return;
    }
    if (!vr->run) {
        create_vm(call, vr->cfg);
        return;
    }
    Hypr__V1__PullProgress done = HYPR__V1__PULL_PROGRESS__INIT;
    done.phase = HYPR__V1__PULL_PROGRESS__PHASE__DONE;
    done.image_id = (char *)img->id;
    done.digest = img->digest ? img->digest : "";
    send_pulling(call, &done);
    run_vm(call, vr->msg, vr->cfg);
}

/* When the config's image is not in the store (or pull is "always") and names a
 * registry image, pulls it first; the create (and start) follow once it is in.
 * Returns true when a pull was started: it then owns msg. */
static bool pull_image_first(rpc_call *call, ProtobufCMessage *msg, const Hypr__V1__VMConfig *cfg,
                             const char *pull, bool run)
{
    daemon_ctx *d = api_daemon(call);
    _cleanup_store_image_ store_image img = {0};
    int r = image_store_find(d->db, cfg->image, &img, NULL);
    bool always = strcmp(pull, "always") == 0;
    image_ref ref;
    /* A full image ID is never a repository name (Docker refuses those too). */
    if ((r != -ENOENT && !always) || strcmp(pull, "never") == 0 || id_is_valid(cfg->image) ||
        image_ref_parse(cfg->image, &ref, NULL) < 0)
        return false;
    image_ref_clear(&ref);
    if (d->shutting_down)
        return false;
    log_info("image %s: pulling it for %s (pull %s)", cfg->image, run ? "RunVM" : "CreateVM", pull);
    vm_request *vr = xcalloc(1, sizeof(*vr));
    vr->msg = msg;
    vr->cfg = cfg;
    vr->run = run;
    const api_pull_hooks hooks = {
        .progress = pull_progress, .done = pull_done, .ud = vr, .free_ud = vm_request_free};
    api_image_pull(call, cfg->image, NULL, &hooks);
    return true;
}

/* Validates the config before anything (a pull included) happens. */
static int check_request(rpc_call *call, Hypr__V1__VMConfig *cfg, const char *pull, hypr_error *err)
{
    if (!cfg)
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL, "a VM config is required");
    if (strcmp(pull, "missing") != 0 && strcmp(pull, "always") != 0 && strcmp(pull, "never") != 0)
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                        "invalid pull option: '%s': must be one of \"always\", \"missing\" or "
                        "\"never\"",
                        pull);
    return vm_config_check(api_daemon(call), cfg, err);
}

/* CreateVM and RunVM: the config is checked before anything (a pull included)
 * happens; a missing registry image is pulled first, and the pull then owns msg. */
static void create_or_run(rpc_call *call, ProtobufCMessage *msg, Hypr__V1__VMConfig *cfg,
                          const char *pull, bool run)
{
    _cleanup_pb_ ProtobufCMessage *owned = msg;
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    if (str_empty(pull))
        pull = "missing";
    if (check_request(call, cfg, pull, &err) < 0) {
        api_fail(call, &err);
        return;
    }
    if (pull_image_first(call, msg, cfg, pull, run)) {
        owned = NULL;
        return;
    }
    if (run)
        run_vm(call, msg, cfg);
    else
        create_vm(call, cfg);
}

void api_create_vm(rpc_call *call, ProtobufCMessage *msg)
{
    Hypr__V1__CreateVMRequest *req = (Hypr__V1__CreateVMRequest *)msg;
    create_or_run(call, msg, req->config, req->pull, false);
}

void api_run_vm(rpc_call *call, ProtobufCMessage *msg)
{
    Hypr__V1__RunVMRequest *req = (Hypr__V1__RunVMRequest *)msg;
    create_or_run(call, msg, req->config, req->pull, true);
}

void api_vm_create_call_close(rpc_call *call, bool cancelled)
{
    api_image_job_close(call, cancelled);
    waiters_drop_call(api_daemon(call), call);
}
