/* Drives a server-side HTTP/2 connection (no socket) with arbitrary client
 * bytes: request parsing, framing, handlers that answer re-entrantly, deadlines,
 * resets and teardown. Must never crash or leak. */
#include "rpc/rpc_internal.h"
#include "hypr.pb-c.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static uv_loop_t loop;
static rpc_server *server;

static void unary(rpc_call *call, ProtobufCMessage *m)
{
    protobuf_c_message_free_unpacked(m, NULL);
    Hypr__V1__HealthResponse r = HYPR__V1__HEALTH_RESPONSE__INIT;
    r.status = "healthy";
    rpc_call_reply(call, &r.base);
}

static void failing(rpc_call *call, ProtobufCMessage *m)
{
    protobuf_c_message_free_unpacked(m, NULL);
    rpc_call_finish(call, HYPR_NOT_FOUND, "not found: 100% \xc3\xa9\n");
}

static void streaming(rpc_call *call, ProtobufCMessage *m)
{
    protobuf_c_message_free_unpacked(m, NULL);
    for (int i = 0; i < 3; i++) {
        Hypr__V1__Event ev = HYPR__V1__EVENT__INIT;
        ev.type = "t";
        ev.timestamp_ms = i;
        rpc_call_send(call, &ev.base);
    }
    rpc_call_finish(call, HYPR_OK, NULL);
}

/* Stays open: only the client, a deadline or teardown ends it. */
static void hanging(rpc_call *call, ProtobufCMessage *m)
{
    protobuf_c_message_free_unpacked(m, NULL);
    Hypr__V1__Event ev = HYPR__V1__EVENT__INIT;
    rpc_call_send(call, &ev.base);
    rpc_call_set_data(call, xstrdup("per-call data"));
}

static void echo(rpc_call *call, ProtobufCMessage *m)
{
    Hypr__V1__ExecRequest *req = (Hypr__V1__ExecRequest *)m;
    Hypr__V1__ExecResponse r = HYPR__V1__EXEC_RESPONSE__INIT;
    r.msg_case = HYPR__V1__EXEC_RESPONSE__MSG_STDOUT;
    if (req->msg_case == HYPR__V1__EXEC_REQUEST__MSG_STDIN)
        r.stdout = req->stdin;
    rpc_call_send(call, &r.base);
    if (req->msg_case == HYPR__V1__EXEC_REQUEST__MSG_SIGNAL)
        rpc_call_finish(call, HYPR_ABORTED, "signalled");
    protobuf_c_message_free_unpacked(m, NULL);
}

static void echo_end(rpc_call *call)
{
    rpc_call_finish(call, HYPR_OK, NULL);
}

static void closed(rpc_call *call, bool cancelled)
{
    free(rpc_call_get_data(call));
    rpc_call_set_data(call, NULL);
    /* Must be refused, not crash, from inside on_close. */
    Hypr__V1__Event ev = HYPR__V1__EVENT__INIT;
    if (rpc_call_send(call, &ev.base) != -ECANCELED)
        __builtin_trap();
    rpc_call_finish(call, HYPR_OK, NULL);
}

static const rpc_method methods[] = {
    {"/hypr.v1.HyprService/Health", &hypr__v1__health_request__descriptor, unary, NULL, closed,
     false},
    {"/hypr.v1.HyprService/Fail", &hypr__v1__health_request__descriptor, failing, NULL, closed,
     false},
    {"/hypr.v1.HyprService/SubscribeEvents", &hypr__v1__subscribe_events_request__descriptor,
     streaming, NULL, closed, false},
    {"/hypr.v1.HyprService/Hang", &hypr__v1__health_request__descriptor, hanging, NULL, closed,
     false},
    {"/hypr.v1.HyprService/Exec", &hypr__v1__exec_request__descriptor, echo, echo_end, closed,
     true},
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    hypr_log_init("error");
    uv_loop_init(&loop);
    rpc_server_options opts = {.max_message = 64 * 1024};
    if (rpc_server_new(&loop, methods, ARRAY_SIZE(methods), &opts, &server, NULL) < 0)
        abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char magic[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    rpc_conn *c = rpc_server_test_conn(server);
    if (!c)
        return 0;
    /* The first byte picks how the rest is cut up (and whether the client
     * preface is sent for it, so most inputs reach the frame layer). */
    uint8_t mode = size ? data[0] : 0;
    if (size) {
        data++;
        size--;
    }
    int r = 0;
    if (!(mode & 0x80))
        r = rpc_test_conn_feed(c, (const uint8_t *)magic, sizeof(magic) - 1);
    size_t chunk = (size_t)(mode & 0x7f) * 7 + 1;
    for (size_t off = 0; r == 0 && off < size; off += chunk) {
        size_t n = chunk < size - off ? chunk : size - off;
        r = rpc_test_conn_feed(c, data + off, n);
        /* Zero-delay deadlines and deferred flushes run here. */
        uv_run(&loop, UV_RUN_NOWAIT);
    }
    rpc_test_conn_close(c);
    uv_run(&loop, UV_RUN_NOWAIT);
    if (rpc_server_active_calls(server) != 0)
        __builtin_trap();
    return 0;
}
