/* VM RPCs: CreateVM, StartVM, StopVM, DeleteVM, RenameVM, RunVM and StreamVMMetrics.
 * CreateVM and RunVM pull a missing registry image first (RunVM streams the
 * pull's progress as PULLING events); a failed pull fails the call and
 * creates nothing. */
#define LOG_MODULE "api"
#include "vm.h"

#include "image/image.h"

#include <string.h>

static void reply_vm(rpc_call *call, const char *id, bool create)
{
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    store_vm rec = {0};
    if (store_vm_find(api_daemon(call)->db, id, &rec, &err) < 0) {
        api_fail(call, &err);
        return;
    }
    Hypr__V1__VM *m = vm_to_message(api_daemon(call), &rec);
    if (create) {
        Hypr__V1__CreateVMResponse resp = HYPR__V1__CREATE_VMRESPONSE__INIT;
        resp.vm = m;
        rpc_call_reply(call, &resp.base);
    } else {
        Hypr__V1__StartVMResponse resp = HYPR__V1__START_VMRESPONSE__INIT;
        resp.vm = m;
        rpc_call_reply(call, &resp.base);
    }
    vm_message_free(m);
    store_vm_clear(&rec);
}

void api_start_vm(rpc_call *call, ProtobufCMessage *msg)
{
    Hypr__V1__StartVMRequest *req = (Hypr__V1__StartVMRequest *)msg;
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    _cleanup_free_ char *id = xstrdup(req->id);
    protobuf_c_message_free_unpacked(msg, NULL);
    if (vm_start(api_daemon(call), id, NULL, &err) < 0) {
        api_fail(call, &err);
        return;
    }
    reply_vm(call, id, false);
}

void api_stop_vm(rpc_call *call, ProtobufCMessage *msg)
{
    Hypr__V1__StopVMRequest *req = (Hypr__V1__StopVMRequest *)msg;
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    /* timeout 0 in the request means "the VM's own stop timeout". */
    int timeout = req->timeout_seconds ? (int)req->timeout_seconds : -1;
    int r = vm_stop(api_daemon(call), req->id, timeout, call, &err);
    protobuf_c_message_free_unpacked(msg, NULL);
    if (r < 0)
        api_fail(call, &err);
}

void api_rename_vm(rpc_call *call, ProtobufCMessage *msg)
{
    Hypr__V1__RenameVMRequest *req = (Hypr__V1__RenameVMRequest *)msg;
    daemon_ctx *d = api_daemon(call);
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    store_vm rec = {0};
    int r = vm_rename(d, req->id, req->name, &rec, &err);
    protobuf_c_message_free_unpacked(msg, NULL);
    if (r < 0) {
        store_vm_clear(&rec);
        api_fail(call, &err);
        return;
    }
    Hypr__V1__RenameVMResponse resp = HYPR__V1__RENAME_VMRESPONSE__INIT;
    resp.vm = vm_to_message(d, &rec);
    rpc_call_reply(call, &resp.base);
    vm_message_free(resp.vm);
    store_vm_clear(&rec);
}

void api_delete_vm(rpc_call *call, ProtobufCMessage *msg)
{
    Hypr__V1__DeleteVMRequest *req = (Hypr__V1__DeleteVMRequest *)msg;
    daemon_ctx *d = api_daemon(call);
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    _cleanup_free_ char *ref = xstrdup(req->id);
    int r = vm_delete(d, ref, req->force, &err);
    protobuf_c_message_free_unpacked(msg, NULL);
    if (r < 0) {
        api_fail(call, &err);
        return;
    }
    if (r == 0) {
        Hypr__V1__DeleteVMResponse resp = HYPR__V1__DELETE_VMRESPONSE__INIT;
        rpc_call_reply(call, &resp.base);
        return;
    }
    /* A running VM: kill it; the answer comes once its record is gone. */
    store_vm rec = {0};
    store_vm_find(d->db, ref, &rec, NULL);
    vm_runtime *vm = vm_runtime_find(d, rec.id);
    store_vm_clear(&rec);
    if (!vm) {
        rpc_call_finish(call, HYPR_INTERNAL, "VM vanished while being removed");
        return;
    }
    vm_waiter *w = xcalloc(1, sizeof(*w));
    w->call = call;
    w->kind = WAIT_DELETE;
    w->next = vm->stop_waiters;
    vm->stop_waiters = w;
    vm_stop(d, vm->id, 0, NULL, &err);
}

void api_vm_call_close(rpc_call *call, bool cancelled)
{
    (void)cancelled;
    vm_forget_call(api_daemon(call), call);
}

/* ---- CreateVM / RunVM ------------------------------------------------------------ */

static void create_vm(rpc_call *call, const Hypr__V1__VMConfig *cfg)
{
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    store_vm vm = {0};
    if (vm_create(api_daemon(call), cfg, &vm, &err) < 0) {
        api_fail(call, &err);
        return;
    }
    reply_vm(call, vm.id, true);
    store_vm_clear(&vm);
}

static void run_vm(rpc_call *call, const Hypr__V1__VMConfig *cfg)
{
    daemon_ctx *d = api_daemon(call);
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    store_vm vm = {0};
    if (vm_create(d, cfg, &vm, &err) < 0) {
        api_fail(call, &err);
        return;
    }
    Hypr__V1__RunVMEvent ev = HYPR__V1__RUN_VMEVENT__INIT;
    ev.phase = HYPR__V1__RUN_VMEVENT__PHASE__CREATED;
    ev.vm = vm_to_message(d, &vm);
    rpc_call_send(call, &ev.base);
    vm_message_free(ev.vm);
    if (vm_start(d, vm.id, call, &err) < 0) {
        /* A VM that could not even start is not left behind (nor its addresses). */
        vm_remove_record(d, vm.id, vm.name);
        store_vm_clear(&vm);
        api_fail(call, &err);
        return;
    }
    Hypr__V1__RunVMEvent booting = HYPR__V1__RUN_VMEVENT__INIT;
    booting.phase = HYPR__V1__RUN_VMEVENT__PHASE__BOOTING;
    store_vm_clear(&vm);
    if (store_vm_find(d->db, vm.id, &vm, NULL) == 0) {
        booting.vm = vm_to_message(d, &vm);
        rpc_call_send(call, &booting.base);
        vm_message_free(booting.vm);
    }
    store_vm_clear(&vm);
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
    run_vm(call, vr->cfg);
}

/* When the config's image is not in the store and names a registry image,
 * pulls it first; the create (and start) follow once it is in. Returns true
 * when a pull was started: it then owns msg. */
static bool pull_missing_image(rpc_call *call, ProtobufCMessage *msg, const Hypr__V1__VMConfig *cfg,
                               bool run)
{
    daemon_ctx *d = api_daemon(call);
    store_image img = {0};
    int r = image_store_find(d->db, cfg->image, &img, NULL);
    store_image_clear(&img);
    image_ref ref;
    /* A full image ID is never a repository name (Docker refuses those too). */
    if (r != -ENOENT || id_is_valid(cfg->image) || image_ref_parse(cfg->image, &ref, NULL) < 0)
        return false;
    image_ref_clear(&ref);
    if (d->shutting_down)
        return false;
    log_info("image %s is not in the store: pulling it for %s", cfg->image,
             run ? "RunVM" : "CreateVM");
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
static int check_request(rpc_call *call, Hypr__V1__VMConfig *cfg, hypr_error *err)
{
    if (!cfg)
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL, "a VM config is required");
    return vm_config_check(api_daemon(call), cfg, err);
}

void api_create_vm(rpc_call *call, ProtobufCMessage *msg)
{
    Hypr__V1__CreateVMRequest *req = (Hypr__V1__CreateVMRequest *)msg;
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    if (check_request(call, req->config, &err) < 0) {
        protobuf_c_message_free_unpacked(msg, NULL);
        api_fail(call, &err);
        return;
    }
    if (pull_missing_image(call, msg, req->config, false))
        return;
    create_vm(call, req->config);
    protobuf_c_message_free_unpacked(msg, NULL);
}

void api_run_vm(rpc_call *call, ProtobufCMessage *msg)
{
    Hypr__V1__RunVMRequest *req = (Hypr__V1__RunVMRequest *)msg;
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    if (check_request(call, req->config, &err) < 0) {
        protobuf_c_message_free_unpacked(msg, NULL);
        api_fail(call, &err);
        return;
    }
    if (pull_missing_image(call, msg, req->config, true))
        return;
    run_vm(call, req->config);
    protobuf_c_message_free_unpacked(msg, NULL);
}

void api_vm_create_call_close(rpc_call *call, bool cancelled)
{
    api_image_job_close(call, cancelled);
    vm_forget_call(api_daemon(call), call);
}

/* ---- metrics ---------------------------------------------------------------- */

void vm_metrics_frame(vm_runtime *vm, const ctl_frame *f)
{
    uint64_t v[CTL_M_COUNT];
    if (ctl_parse_metrics(f->payload, f->len, v) < 0)
        return;
    memcpy(vm->prev_metrics, vm->last_metrics, sizeof(v));
    memcpy(vm->last_metrics, v, sizeof(v));
    const uint64_t *p = vm->prev_metrics;
    uint64_t busy = v[CTL_M_CPU_USER] + v[CTL_M_CPU_SYSTEM];
    uint64_t total = busy + v[CTL_M_CPU_IDLE] + v[CTL_M_CPU_IOWAIT] + v[CTL_M_CPU_STEAL];
    uint64_t pbusy = p[CTL_M_CPU_USER] + p[CTL_M_CPU_SYSTEM];
    uint64_t ptotal = pbusy + p[CTL_M_CPU_IDLE] + p[CTL_M_CPU_IOWAIT] + p[CTL_M_CPU_STEAL];
    Hypr__V1__VMMetrics m = HYPR__V1__VMMETRICS__INIT;
    m.id = vm->id;
    m.timestamp_ms = time_now_ms();
    if (total > ptotal && busy >= pbusy)
        m.cpu_percent = 100.0 * (double)(busy - pbusy) / (double)(total - ptotal);
    m.memory_total_bytes = v[CTL_M_MEM_TOTAL];
    m.memory_used_bytes = v[CTL_M_MEM_TOTAL] - v[CTL_M_MEM_AVAILABLE];
    m.disk_total_bytes = v[CTL_M_DISK_TOTAL];
    m.disk_used_bytes = v[CTL_M_DISK_USED];
    m.net_rx_bytes = v[CTL_M_NET_RX_BYTES];
    m.net_tx_bytes = v[CTL_M_NET_TX_BYTES];
    for (size_t i = 0; i < ARRAY_SIZE(vm->metrics_calls); i++)
        if (vm->metrics_calls[i])
            rpc_call_send(vm->metrics_calls[i], &m.base);
}

void vm_metrics_end_all(vm_runtime *vm)
{
    for (size_t i = 0; i < ARRAY_SIZE(vm->metrics_calls); i++) {
        rpc_call *c = vm->metrics_calls[i];
        if (c) {
            vm->metrics_calls[i] = NULL;
            rpc_call_set_data(c, NULL);
            rpc_call_finish(c, HYPR_OK, NULL);
        }
    }
}

void api_stream_vm_metrics(rpc_call *call, ProtobufCMessage *msg)
{
    Hypr__V1__StreamVMMetricsRequest *req = (Hypr__V1__StreamVMMetricsRequest *)msg;
    daemon_ctx *d = api_daemon(call);
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    store_vm rec = {0};
    int r = store_vm_find(d->db, req->id, &rec, &err);
    protobuf_c_message_free_unpacked(msg, NULL);
    if (r < 0) {
        api_fail(call, &err);
        return;
    }
    vm_runtime *vm = vm_runtime_find(d, rec.id);
    if (!vm) {
        _cleanup_free_ char *m = xasprintf("VM %s is not running", rec.name);
        store_vm_clear(&rec);
        rpc_call_finish(call, HYPR_FAILED_PRECONDITION, m);
        return;
    }
    store_vm_clear(&rec);
    for (size_t i = 0; i < ARRAY_SIZE(vm->metrics_calls); i++) {
        if (!vm->metrics_calls[i]) {
            vm->metrics_calls[i] = call;
            rpc_call_set_data(call, vm);
            return;
        }
    }
    rpc_call_finish(call, HYPR_RESOURCE_EXHAUSTED, "too many metrics streams for this VM");
}

void api_stream_vm_metrics_close(rpc_call *call, bool cancelled)
{
    (void)cancelled;
    vm_runtime *vm = rpc_call_get_data(call);
    if (!vm)
        return;
    for (size_t i = 0; i < ARRAY_SIZE(vm->metrics_calls); i++)
        if (vm->metrics_calls[i] == call)
            vm->metrics_calls[i] = NULL;
}
