/* The host end of the control channel: the daemon listens on
 * <run-dir>/<id>.vsock, the hypervisor connects (qemu's virtio-serial chardev,
 * or a hybrid-vsock forward), and kestrel's frames arrive on that stream. */
#define LOG_MODULE "vm"
#include "vm_internal.h"

#include <string.h>

static void conn_drop(vm_runtime *vm, const char *why)
{
    if (!vm->ctl_connected)
        return;
    log_debug("VM %s: control channel closed: %s", vm->name, why);
    vm->ctl_connected = false;
    ctl_decoder_reset(&vm->dec);
    vm_exec_end_all(vm, "the VM's control channel closed");
    vm_close_handle(vm, (uv_handle_t *)&vm->ctl_conn);
}

/* kestrel's boot phases, in guest uptime: where a boot's time goes. */
const char *vm_boot_phase_name(uint32_t phase)
{
    static const char *const names[] = {
        [CTL_PHASE_AGENT_START] = "agent",       [CTL_PHASE_MOUNTS_DONE] = "mounts",
        [CTL_PHASE_MODULES_DONE] = "modules",    [CTL_PHASE_CHANNEL_OPEN] = "channel",
        [CTL_PHASE_ROOTFS_READY] = "rootfs",     [CTL_PHASE_NETWORK_READY] = "network",
        [CTL_PHASE_WORKLOAD_START] = "workload",
    };
    return phase < ARRAY_SIZE(names) ? names[phase] : NULL;
}

static void log_boot_phases(vm_runtime *vm, const ctl_hello *h)
{
    _cleanup_buf_ hypr_buf b = {0};
    for (size_t i = 0; i < h->n; i++) {
        const char *name = vm_boot_phase_name(h->ts[i].phase);
        if (name)
            buf_printf(&b, " %s=%.3fs", name, (double)h->ts[i].ns / 1e9);
    }
    log_info("VM %s (%.12s) boot phases (guest uptime):%s", vm->name, vm->id,
             b.data ? b.data : " none");
}

static void record_phases(vm_runtime *vm, const ctl_frame *f)
{
    ctl_hello h;
    if (ctl_parse_hello(f->payload, f->len, &h) < 0)
        return;
    vm->boot_phases = h;
    bool started = false;
    for (size_t i = 0; i < h.n; i++)
        if (h.ts[i].phase == CTL_PHASE_WORKLOAD_START)
            started = true;
    if (!started || vm->workload_started)
        return;
    vm->workload_started = true;
    log_boot_phases(vm, &h);
    vm->ctl_handlers->workload_started(vm);
}

static void on_workload_exit(vm_runtime *vm, const ctl_frame *f)
{
    int32_t code;
    bool again;
    uint32_t restarts;
    if (ctl_parse_workload_exit(f->payload, f->len, &code, &again, &restarts) == 0)
        vm->ctl_handlers->workload_exited(vm, code, again, restarts);
}

static void dispatch(vm_runtime *vm, const ctl_frame *f)
{
    if (f->session != 0) {
        vm_exec_frame(vm, f);
        return;
    }
    switch (f->type) {
    case CTL_HELLO:
        record_phases(vm, f);
        break;
    case CTL_LOG: {
        uint8_t stream;
        const uint8_t *data;
        size_t len;
        if (ctl_parse_log(f->payload, f->len, &stream, &data, &len) == 0 &&
            (stream == CTL_LOG_STDOUT || stream == CTL_LOG_STDERR))
            vm_log_append(vm, stream, data, len);
        break;
    }
    case CTL_METRICS:
        vm_metrics_frame(vm, f);
        break;
    case CTL_WORKLOAD_EXIT:
        on_workload_exit(vm, f);
        break;
    case CTL_ERROR: {
        uint32_t errnum;
        char *msg = NULL;
        if (ctl_parse_error(f->payload, f->len, &errnum, &msg) == 0) {
            log_warn("VM %s: guest agent: %s", vm->name, msg);
            /* Before the workload started: why it could not (unable to find user ...,
             * exec nosuchcmd: ...), the reason run/start/inspect report. */
            if (!vm->workload_started && vm->failure.status == HYPR_OK)
                hypr_err(&vm->failure, HYPR_FAILED_PRECONDITION, (int)errnum, "%s", msg);
        }
        free(msg);
        break;
    }
    default:
        log_debug("VM %s: ignoring %s frame", vm->name, ctl_type_name(f->type));
    }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    buf->base = xmalloc(65536);
    buf->len = 65536;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    vm_runtime *vm = s->data;
    if (n < 0) {
        free(buf->base);
        conn_drop(vm, uv_strerror((int)n));
        return;
    }
    int r = n > 0 ? ctl_decoder_feed(&vm->dec, buf->base, (size_t)n) : 0;
    free(buf->base);
    ctl_frame f;
    while (r >= 0 && (r = ctl_decoder_next(&vm->dec, &f)) == 1) {
        dispatch(vm, &f);
        if (!vm->ctl_connected)
            return;
    }
    if (r < 0)
        conn_drop(vm, strerror(-r));
}

static void on_connection(uv_stream_t *server, int status)
{
    vm_runtime *vm = server->data;
    if (status < 0)
        return;
    if (vm->ctl_connected || uv_is_closing((uv_handle_t *)&vm->ctl_conn)) {
        /* One channel per VM: a second connection replaces nothing. */
        uv_pipe_t *extra = xmalloc(sizeof(*extra));
        uv_pipe_init(vm->d->loop, extra, 0);
        if (uv_accept(server, (uv_stream_t *)extra) == 0)
            log_warn("VM %s: refusing a second control connection", vm->name);
        uv_close((uv_handle_t *)extra, (uv_close_cb)free);
        return;
    }
    uv_pipe_init(vm->d->loop, &vm->ctl_conn, 0);
    vm->ctl_conn.data = vm;
    if (uv_accept(server, (uv_stream_t *)&vm->ctl_conn) < 0) {
        vm_close_handle(vm, (uv_handle_t *)&vm->ctl_conn);
        return;
    }
    vm->ctl_connected = true;
    ctl_decoder_reset(&vm->dec);
    uv_read_start((uv_stream_t *)&vm->ctl_conn, on_alloc, on_read);
    /* kestrel answers a HELLO with its boot phases so far. */
    ctl_buf hello = {0};
    if (ctl_encode_hello(&hello, NULL, 0) == 0)
        vm_ctl_send(vm, &hello);
    ctl_buf_free(&hello);
    log_debug("VM %s: control channel connected", vm->name);
    if (vm->ctl_handlers->channel_up)
        vm->ctl_handlers->channel_up(vm);
}

int vm_ctl_listen(vm_runtime *vm, const vm_ctl_handlers *h, hypr_error *err)
{
    vm->ctl_handlers = h;
    vm->ctl_path = vm->adapter->ops->control_path(vm->adapter, &vm->cfg);
    unlink(vm->ctl_path);
    uv_pipe_init(vm->d->loop, &vm->ctl_listener, 0);
    vm->ctl_listener.data = vm;
    vm->ctl_listening = true;
    int r = uv_pipe_bind(&vm->ctl_listener, vm->ctl_path);
    if (r == 0)
        r = uv_listen((uv_stream_t *)&vm->ctl_listener, 4, on_connection);
    if (r < 0)
        return hypr_err(err, HYPR_INTERNAL, -r, "listen on %s: %s", vm->ctl_path, uv_strerror(r));
    return 0;
}

void vm_ctl_close(vm_runtime *vm)
{
    conn_drop(vm, "VM stopped");
    if (vm->ctl_listening) {
        vm->ctl_listening = false;
        vm_close_handle(vm, (uv_handle_t *)&vm->ctl_listener);
        if (vm->ctl_path)
            unlink(vm->ctl_path);
    }
}
