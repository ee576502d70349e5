/* Exec: relays one bidirectional Exec call to one session of kestrel's
 * control channel (stdin, resize and signals in; output and exit code out). */
#define LOG_MODULE "vm"
#include "api.h"
#include "vm_internal.h"

#include <signal.h>
#include <string.h>

struct exec_session {
    rpc_call *call;
    vm_runtime *vm; /* NULL once the VM is gone */
    uint32_t session;
    bool main;       /* the workload itself (run -it): the call's end detaches, not kills */
    bool joined;     /* hypr attach: its stdin is not this call's to close */
    bool stdin_kept; /* start -a of a -i VM: its stdin stays open for a later attach */
    bool started;
    bool eof_sent;
    Hypr__V1__ExecRequest *parked; /* its start, waiting for the VM's channel to come back */
    hypr_buf queued;               /* frames that came after it, sent once it is */
    bool done;
    exec_session *next;
};

static void session_unlink(exec_session *s)
{
    if (!s->vm)
        return;
    for (exec_session **p = &s->vm->execs; *p; p = &(*p)->next) {
        if (*p == s) {
            *p = s->next;
            break;
        }
    }
    s->vm = NULL;
}

static void session_end(exec_session *s, hypr_status status, const char *message)
{
    if (s->done)
        return;
    s->done = true;
    session_unlink(s);
    rpc_call_finish(s->call, status, message);
}

static int send_frame(exec_session *s, int r, ctl_buf *b)
{
    if (r == 0 && s->parked)
        buf_append(&s->queued, b->data, b->len);
    else if (r == 0)
        r = vm_ctl_send(s->vm, b);
    ctl_buf_free(b);
    return r;
}

/* The EXEC_START frame of a session. */
static int encode_start(ctl_buf *b, uint32_t session, const Hypr__V1__ExecStart *st)
{
    ctl_exec_start e = {0};
    static char *const default_cmd[] = {"/bin/sh", NULL};
    e.argc = st->n_command ? st->n_command : 1;
    /* argv is a NULL-terminated copy: protobuf-c's repeated field is not. */
    _cleanup_free_ char **argv = xcalloc(e.argc + 1, sizeof(char *));
    for (size_t i = 0; i < e.argc; i++)
        argv[i] = st->n_command ? st->command[i] : default_cmd[i];
    e.argv = argv;
    _cleanup_strv_ char **env = xcalloc(st->n_env + 1, sizeof(char *));
    for (size_t i = 0; i < st->n_env; i++)
        env[i] = xasprintf("%s=%s", st->env[i]->key, st->env[i]->value);
    e.env = env;
    e.envc = st->n_env;
    e.workdir = st->workdir ? st->workdir : "";
    e.user = st->user ? st->user : "";
    e.tty = st->tty;
    e.main = st->main;
    if (st->size) {
        e.rows = (uint16_t)st->size->rows;
        e.cols = (uint16_t)st->size->cols;
    }
    return ctl_encode_exec_start(b, session, &e);
}

/* A main session without a client on stdin: EOF, unless the VM keeps its stdin open
 * (-i) for whoever attaches later. */
static bool eof_at_start(const vm_runtime *vm, const Hypr__V1__ExecStart *st)
{
    return !st->interactive && !(st->main && vm->keeps_stdin);
}

/* Sends the start of a session to kestrel on vm's channel. */
static void exec_send_start(exec_session *s, vm_runtime *vm, const Hypr__V1__ExecStart *st)
{
    ctl_buf b = {0};
    int r = send_frame(s, encode_start(&b, s->session, st), &b);
    if (r < 0) {
        _cleanup_free_ char *m = xasprintf("exec: cannot reach the VM's agent: %s", strerror(-r));
        session_end(s, r == -EMSGSIZE ? HYPR_INVALID_ARGUMENT : HYPR_UNAVAILABLE, m);
        return;
    }
    s->started = true;
    if (st->main)
        vm->main_session = s->session; /* its output goes on to the logs after a detach */
    s->stdin_kept = !st->interactive && !eof_at_start(vm, st);
    if (eof_at_start(vm, st)) {
        /* Nothing will come on stdin. */
        ctl_buf eof = {0};
        send_frame(s, ctl_encode_raw(&eof, CTL_STDIN_EOF, s->session, NULL, 0), &eof);
        s->eof_sent = true;
    }
}

void vm_exec_start_detached_main(vm_runtime *vm)
{
    static char *placeholder[] = {(char *)"main"}; /* kestrel runs the workload's own */
    Hypr__V1__TerminalSize size = HYPR__V1__TERMINAL_SIZE__INIT;
    size.rows = 24; /* Docker's size for a terminal nobody has attached to yet */
    size.cols = 80;
    Hypr__V1__ExecStart st = HYPR__V1__EXEC_START__INIT;
    st.command = placeholder;
    st.n_command = 1;
    st.main = true;
    st.tty = vm->cfg_tty;
    st.size = vm->cfg_tty ? &size : NULL;
    uint32_t session = ++vm->next_session;
    ctl_buf b = {0};
    int r = encode_start(&b, session, &st);
    if (r == 0)
        r = vm_ctl_send(vm, &b);
    ctl_buf_free(&b);
    if (r == 0 && eof_at_start(vm, &st)) {
        r = ctl_encode_raw(&b, CTL_STDIN_EOF, session, NULL, 0);
        if (r == 0)
            r = vm_ctl_send(vm, &b);
        ctl_buf_free(&b);
    }
    if (r < 0) {
        log_warn("VM %s: cannot start its workload: %s", vm->name, strerror(-r));
        return;
    }
    vm->main_session = session;
}

/* req is taken (kept while the session waits for the VM's channel). */
static void exec_start(rpc_call *call, exec_session *s, Hypr__V1__ExecRequest *req)
{
    _cleanup_pb_ Hypr__V1__ExecRequest *owned = req;
    _cleanup_error_ hypr_error err = HYPR_ERROR_INIT;
    vm_runtime *vm = NULL;
    int r = vm_runtime_lookup(api_daemon(call), req->start->id, false, &vm, &err);
    if (r == 0 && !(vm->workload_started && (vm->ctl_connected || vm_channel_pending(vm))))
        r = vm_runtime_lookup(api_daemon(call), req->start->id, true, &vm, &err);
    if (r == 0 && vm->paused)
        r = hypr_err(&err, HYPR_FAILED_PRECONDITION, EBUSY,
                     "VM %s is paused, unpause the VM before exec", vm->name);
    if (r < 0) {
        s->done = true;
        api_fail(call, &err);
        return;
    }
    if (req->start->attach) {
        exec_session *other = vm->execs;
        while (other && !(other->main && other->session == vm->main_session))
            other = other->next;
        if (!vm->main_session)
            r = hypr_err(&err, HYPR_FAILED_PRECONDITION, ENOTTY,
                         "VM %s has no attachable workload: only a VM started by run -it or "
                         "-i can be attached to",
                         vm->name);
        else if (other)
            r = hypr_err(&err, HYPR_FAILED_PRECONDITION, EBUSY, "VM %s is attached to already",
                         vm->name);
        if (r < 0) {
            s->done = true;
            api_fail(call, &err);
            return;
        }
    }
    s->vm = vm;
    s->main = req->start->main || req->start->attach;
    s->session = req->start->attach ? vm->main_session : ++vm->next_session;
    s->next = vm->execs;
    vm->execs = s;
    if (req->start->attach) { /* joins the session that runs: nothing to start */
        s->started = true;
        s->joined = true;
        if (req->start->size && req->start->tty) {
            ctl_buf b = {0};
            send_frame(s,
                       ctl_encode_resize(&b, s->session, (uint16_t)req->start->size->rows,
                                         (uint16_t)req->start->size->cols),
                       &b);
        }
        return;
    }
    if (!vm->ctl_connected) {
        s->parked = TAKE_PTR(owned); /* hyprd restarted: kestrel is about to reconnect */
        return;
    }
    exec_send_start(s, vm, req->start);
}

void vm_exec_channel_up(vm_runtime *vm)
{
    for (exec_session *s = vm->execs; s; s = s->next) {
        if (!s->parked)
            continue;
        _cleanup_pb_ Hypr__V1__ExecRequest *req = TAKE_PTR(s->parked);
        exec_send_start(s, vm, req->start);
        if (s->queued.len && !s->done) {
            ctl_buf b = {
                .data = (uint8_t *)s->queued.data, .len = s->queued.len, .cap = s->queued.len};
            s->queued = (hypr_buf){0};
            send_frame(s, 0, &b);
        }
    }
}

void api_exec(rpc_call *call, ProtobufCMessage *msg)
{
    _cleanup_pb_ Hypr__V1__ExecRequest *req = (Hypr__V1__ExecRequest *)msg;
    exec_session *s = rpc_call_get_data(call);
    if (!s) {
        s = xcalloc(1, sizeof(*s));
        s->call = call;
        rpc_call_set_data(call, s);
        if (req->msg_case != HYPR__V1__EXEC_REQUEST__MSG_START)
            session_end(s, HYPR_INVALID_ARGUMENT, "the first Exec message must be a start");
        else
            exec_start(call, s, TAKE_PTR(req));
        return;
    }
    if (s->done || !s->vm)
        return;
    ctl_buf b = {0};
    int r = 0;
    switch (req->msg_case) {
    case HYPR__V1__EXEC_REQUEST__MSG_STDIN:
        r = ctl_encode_data(&b, CTL_STDIN, s->session, req->stdin.data, req->stdin.len);
        break;
    case HYPR__V1__EXEC_REQUEST__MSG_RESIZE:
        r = ctl_encode_resize(&b, s->session, (uint16_t)req->resize->rows,
                              (uint16_t)req->resize->cols);
        break;
    case HYPR__V1__EXEC_REQUEST__MSG_SIGNAL:
        r = ctl_encode_signal(&b, s->session, (uint32_t)req->signal);
        break;
    case HYPR__V1__EXEC_REQUEST__MSG_STDIN_EOF:
        if (!s->eof_sent)
            r = ctl_encode_raw(&b, CTL_STDIN_EOF, s->session, NULL, 0);
        s->eof_sent = true;
        break;
    default:
        r = -EINVAL;
    }
    if (b.len > 0)
        r = send_frame(s, r, &b);
    else
        ctl_buf_free(&b);
    if (r < 0)
        session_end(s, HYPR_INVALID_ARGUMENT, "bad Exec message");
}

void api_exec_half_close(rpc_call *call)
{
    exec_session *s = rpc_call_get_data(call);
    if (!s || s->done || !s->vm || s->eof_sent || s->joined || s->stdin_kept)
        return;
    s->eof_sent = true;
    ctl_buf b = {0};
    send_frame(s, ctl_encode_raw(&b, CTL_STDIN_EOF, s->session, NULL, 0), &b);
}

void api_exec_close(rpc_call *call, bool cancelled)
{
    exec_session *s = rpc_call_get_data(call);
    if (!s)
        return;
    if (!s->done && s->vm && s->started && !s->main) {
        /* The client went away: the command must not outlive it. */
        ctl_buf b = {0};
        send_frame(s, ctl_encode_signal(&b, s->session, SIGKILL), &b);
    }
    (void)cancelled;
    session_unlink(s);
    if (s->parked)
        protobuf_c_message_free_unpacked(&s->parked->base, NULL);
    buf_free(&s->queued);
    free(s);
}

/* The workload's session could not start (exec nosuchcmd: ...): the VM's error, and a
 * line in its logs, as Docker shows; kestrel ends the VM with 127/126. */
static void main_failed(vm_runtime *vm, const ctl_frame *f)
{
    uint32_t errnum = 0;
    char *msg = NULL;
    if (ctl_parse_error(f->payload, f->len, &errnum, &msg) < 0)
        return;
    log_warn("VM %s: its workload did not start: %s", vm->name, msg);
    if (vm->failure.status == HYPR_OK)
        hypr_err(&vm->failure, HYPR_FAILED_PRECONDITION, (int)errnum, "%s", msg);
    _cleanup_free_ char *line = xasprintf("%s\n", msg);
    vm_log_append(vm, CTL_LOG_STDERR, (const uint8_t *)line, strlen(line));
    free(msg);
}

void vm_exec_frame(vm_runtime *vm, const ctl_frame *f)
{
    exec_session *s = vm->execs;
    while (s && s->session != f->session)
        s = s->next;
    bool main = f->session == vm->main_session;
    if (main && (f->type == CTL_STDOUT || f->type == CTL_STDERR)) /* the workload's output */
        vm_log_append(vm, f->type == CTL_STDOUT ? CTL_LOG_STDOUT : CTL_LOG_STDERR, f->payload,
                      f->len);
    if (main && f->type == CTL_ERROR)
        main_failed(vm, f);
    if (!s)
        return;
    Hypr__V1__ExecResponse resp = HYPR__V1__EXEC_RESPONSE__INIT;
    switch (f->type) {
    case CTL_STDOUT:
    case CTL_STDERR:
        if (f->type == CTL_STDOUT) {
            resp.msg_case = HYPR__V1__EXEC_RESPONSE__MSG_STDOUT;
            resp.stdout = (ProtobufCBinaryData){f->len, (uint8_t *)f->payload};
        } else {
            resp.msg_case = HYPR__V1__EXEC_RESPONSE__MSG_STDERR;
            resp.stderr = (ProtobufCBinaryData){f->len, (uint8_t *)f->payload};
        }
        rpc_call_send(s->call, &resp.base);
        break;
    case CTL_EXIT: {
        int32_t code = 0;
        if (ctl_parse_exit(f->payload, f->len, &code) < 0) {
            session_end(s, HYPR_INTERNAL, "malformed exit frame from the guest agent");
            return;
        }
        resp.msg_case = HYPR__V1__EXEC_RESPONSE__MSG_EXIT_CODE;
        resp.exit_code = code;
        rpc_call_send(s->call, &resp.base);
        session_end(s, HYPR_OK, NULL);
        break;
    }
    case CTL_ERROR: {
        uint32_t errnum = 0;
        char *msg = NULL;
        ctl_parse_error(f->payload, f->len, &errnum, &msg);
        _cleanup_free_ char *m = xasprintf("exec: %s", msg ? msg : "failed in the guest");
        free(msg);
        session_end(s, errnum == EINVAL ? HYPR_INVALID_ARGUMENT : HYPR_FAILED_PRECONDITION, m);
        break;
    }
    default:
        break;
    }
}

void vm_exec_end_all(vm_runtime *vm, const char *why)
{
    while (vm->execs)
        session_end(vm->execs, HYPR_UNAVAILABLE, why);
}
