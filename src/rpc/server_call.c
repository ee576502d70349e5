/* gRPC server calls: HTTP/2 stream callbacks, request validation and decoding,
 * responses and trailers, deadlines, and the rpc_call API for handlers. */
#define LOG_MODULE "rpc"
#include "rpc/rpc_internal.h"

#include <string.h>

#define NV(n, v, vlen)                                                                             \
    {                                                                                              \
        (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, (vlen), NGHTTP2_NV_FLAG_NONE                \
    }

static void call_finish(rpc_call *call, hypr_status status, const char *message);

/* ---- lifetime ---------------------------------------------------------------- */

static void call_ref(rpc_call *call)
{
    call->refs++;
}

static void call_unref(rpc_call *call)
{
    if (--call->refs > 0)
        return;
    rpc_conn *c = call->conn;
    call->server->n_calls--;
    rpc_framer_free(&call->framer);
    buf_free(&call->out);
    free(call->unary_msg);
    free(call->path);
    free(call->message);
    /* glibc keeps freed megabytes mapped after a big message; the daemon's
     * idle footprint should not remember its largest request. The trim waits
     * for the socket writes, which hold copies of the message. */
    if (call->big_buffers)
        call->server->trim_wanted = true;
    free(call);
    if (c)
        rpc_conn_unref(c);
}

static void call_timer_closed(uv_handle_t *h)
{
    rpc_call *call = h->data;
    free(h);
    call_unref(call);
}

static void call_stop_timer(rpc_call *call)
{
    if (!call->timer)
        return;
    uv_close((uv_handle_t *)call->timer, call_timer_closed);
    call->timer = NULL;
}

/* The handler is about to run for the first time: the observer hears of it. */
static void call_mark_started(rpc_call *call)
{
    call->started = true;
    call->started_ms = time_monotonic_ms();
    if (call->server->observe)
        call->server->observe(call->server->userdata, call->path, false, HYPR_OK, 0);
}

/* Tells the handler the call is over, once. */
static void call_notify_close(rpc_call *call, bool cancelled)
{
    if (call->closed)
        return;
    call->closed = true;
    call->finished = true;
    call->on_drain = NULL;
    if (call->started && call->server->observe)
        call->server->observe(call->server->userdata, call->path, true,
                              cancelled && call->status == HYPR_OK ? HYPR_CANCELLED : call->status,
                              (double)(time_monotonic_ms() - call->started_ms) / 1000.0);
    if (!call->started || !call->method->on_close)
        return;
    call_ref(call);
    call->method->on_close(call, cancelled);
    call_unref(call);
}

/* The HTTP/2 stream is gone (closed, reset, or the connection died). */
static void call_detach(rpc_call *call, bool cancelled)
{
    if (!call->attached)
        return;
    rpc_conn *c = call->conn;
    call->attached = false;
    DLIST_REMOVE(c->calls, call);
    if (c->session)
        nghttp2_session_set_stream_user_data(c->session, call->stream_id, NULL);
    call_stop_timer(call);
    call_notify_close(call, cancelled);
    call_unref(call); /* the stream's */
}

void rpc_conn_cancel_calls(rpc_conn *c)
{
    while (c->calls)
        call_detach(c->calls, true);
}

static rpc_call *stream_call(nghttp2_session *session, int32_t stream_id)
{
    return nghttp2_session_get_stream_user_data(session, stream_id);
}

/* ---- responses --------------------------------------------------------------- */

static ssize_t call_read_data(nghttp2_session *session, int32_t stream_id, uint8_t *buf,
                              size_t length, uint32_t *data_flags, nghttp2_data_source *source,
                              void *user_data);

static int call_submit_status(rpc_call *call, bool trailers_only)
{
    rpc_conn *c = call->conn;
    char status[16];
    snprintf(status, sizeof(status), "%d", (int)call->status);
    _cleanup_free_ char *msg = rpc_percent_encode(call->message ? call->message : "");
    nghttp2_nv nva[5];
    size_t n = 0;
    if (trailers_only) {
        nva[n++] = (nghttp2_nv)NV(":status", "200", 3);
        nva[n++] = (nghttp2_nv)NV("content-type", "application/grpc", 16);
    }
    nva[n++] = (nghttp2_nv)NV("grpc-status", status, strlen(status));
    if (msg[0])
        nva[n++] = (nghttp2_nv)NV("grpc-message", msg, strlen(msg));
    int r = trailers_only ? nghttp2_submit_response(c->session, call->stream_id, nva, n, NULL)
                          : nghttp2_submit_trailer(c->session, call->stream_id, nva, n);
    if (r != 0)
        log_debug("stream %d: cannot submit status: %s", call->stream_id, nghttp2_strerror(r));
    return r;
}

static int call_submit_headers(rpc_call *call)
{
    nghttp2_nv nva[] = {
        NV(":status", "200", 3),
        NV("content-type", "application/grpc", 16),
    };
    nghttp2_data_provider prd = {.source.ptr = call, .read_callback = call_read_data};
    int r =
        nghttp2_submit_response(call->conn->session, call->stream_id, nva, ARRAY_SIZE(nva), &prd);
    if (r != 0)
        log_debug("stream %d: cannot submit headers: %s", call->stream_id, nghttp2_strerror(r));
    return r;
}

static bool call_usable(rpc_call *call)
{
    if (call && call->tx)
        return !call->finished && !call->closed;
    return call && call->attached && !call->finished && !call->conn->closing && call->conn->session;
}

static void out_drop(rpc_call *call)
{
    buf_free(&call->out);
    call->out_off = 0;
}

static ssize_t call_read_data(nghttp2_session *session, int32_t stream_id, uint8_t *buf,
                              size_t length, uint32_t *data_flags, nghttp2_data_source *source,
                              void *user_data)
{
    rpc_call *call = source->ptr;
    size_t avail = call->out.len - call->out_off;
    size_t n = rpc_out_read(&call->out, &call->out_off, buf, length, RPC_DRAIN_LOW_WATER);
    if (n > 0) {
        if (call->on_drain && avail >= RPC_DRAIN_LOW_WATER && avail - n < RPC_DRAIN_LOW_WATER)
            call->drain_pending = true;
        return (ssize_t)n;
    }
    if (!call->finished)
        return NGHTTP2_ERR_DEFERRED;
    *data_flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
    if (call_submit_status(call, false) != 0)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    return 0;
}

static void call_finish(rpc_call *call, hypr_status status, const char *message)
{
    if (!call_usable(call))
        return;
    call->finished = true;
    call->on_drain = NULL;
    call->status = status;
    free(call->message);
    call->message = message && message[0] ? xstrdup(message) : NULL;
    if (call->tx) {
        call_ref(call);
        call->tx->finish(call->tx_data, status, call->message);
        call_unref(call);
        return;
    }
    if (!call->headers_sent) {
        call->headers_sent = true;
        if (call_submit_status(call, true) != 0)
            nghttp2_submit_rst_stream(call->conn->session, NGHTTP2_FLAG_NONE, call->stream_id,
                                      NGHTTP2_INTERNAL_ERROR);
    } else {
        nghttp2_session_resume_data(call->conn->session, call->stream_id);
    }
    rpc_conn_schedule_flush(call->conn);
}

/* The rpc layer ends a call on the handler's behalf (bad input, deadline). */
static void call_abort(rpc_call *call, hypr_status status, const char *message)
{
    if (!call_usable(call))
        return;
    call->aborted = true;
    rpc_framer_free(&call->framer);
    call_finish(call, status, message);
}

/* ---- requests ---------------------------------------------------------------- */

static void call_deliver(rpc_call *call, const uint8_t *data, size_t len)
{
    ProtobufCMessage *msg = protobuf_c_message_unpack(call->method->request, NULL, len, data);
    if (!msg) {
        _cleanup_free_ char *m =
            xasprintf("cannot decode the request message (%s)", call->method->request->name);
        call_abort(call, HYPR_INVALID_ARGUMENT, m);
        return;
    }
    if (!call->started)
        call_mark_started(call);
    if (!call->method->on_message) {
        protobuf_c_message_free_unpacked(msg, NULL);
        return;
    }
    call_ref(call);
    call->method->on_message(call, msg);
    call_unref(call);
}

static void call_deadline_cb(uv_timer_t *t)
{
    rpc_call *call = t->data;
    call_ref(call);
    if (call_usable(call)) {
        /* Queued messages would only delay the status behind flow control. */
        out_drop(call);
        call_abort(call, HYPR_DEADLINE_EXCEEDED, "deadline exceeded");
    }
    call_notify_close(call, true);
    call_unref(call);
}

static const rpc_method *server_find_method(rpc_server *s, const char *path)
{
    for (size_t i = 0; i < s->n_methods; i++)
        if (strcmp(s->methods[i].path, path) == 0)
            return &s->methods[i];
    return NULL;
}

static void call_reject(rpc_call *call, hypr_status status, const char *message)
{
    call->rejected = true;
    call_finish(call, status, message);
}

static void call_headers_done(rpc_call *call)
{
    rpc_server *s = call->conn->server;
    if (s->shutting_down) {
        call_reject(call, HYPR_UNAVAILABLE, "server is shutting down");
        return;
    }
    if (!call->is_post) {
        call_reject(call, HYPR_INVALID_ARGUMENT, "gRPC requests must use POST");
        return;
    }
    if (!call->content_type_ok) {
        call_reject(call, HYPR_INVALID_ARGUMENT, "content-type must be application/grpc");
        return;
    }
    const rpc_method *m = call->path ? server_find_method(s, call->path) : NULL;
    if (!m) {
        _cleanup_free_ char *msg = xasprintf("unknown method %s", call->path ? call->path : "");
        call_reject(call, HYPR_UNIMPLEMENTED, msg);
        return;
    }
    if (call->timeout_bad) {
        call_reject(call, HYPR_INVALID_ARGUMENT, "invalid grpc-timeout");
        return;
    }
    call->method = m;
    call->framer.max_message = s->max_message;
    if (call->timeout_ms >= 0) {
        call->deadline = time_monotonic_ms() + call->timeout_ms;
        call->timer = xcalloc(1, sizeof(*call->timer));
        uv_timer_init(s->loop, call->timer);
        call->timer->data = call;
        call_ref(call); /* the timer's, until it is closed */
        uv_timer_start(call->timer, call_deadline_cb, (uint64_t)call->timeout_ms, 0);
    }
}

static void call_remote_end(rpc_call *call)
{
    if (!call->method || !call_usable(call))
        return;
    if (call->framer.in.len > 0) {
        call_abort(call, HYPR_INVALID_ARGUMENT, "truncated request message");
        return;
    }
    if (call->method->client_streaming) {
        if (!call->started)
            call_mark_started(call);
        if (call->method->on_half_close) {
            call_ref(call);
            call->method->on_half_close(call);
            call_unref(call);
        }
        return;
    }
    /* A unary request without any DATA is taken as the empty message. */
    uint8_t *data = TAKE_PTR(call->unary_msg);
    call_deliver(call, data, call->unary_len);
    free(data);
}

static uint32_t framer_announced(const rpc_framer *f)
{
    const uint8_t *p = (const uint8_t *)f->in.data;
    if (f->in.len < 5)
        return 0;
    return (uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 8 | p[4];
}

static void call_take_messages(rpc_call *call)
{
    while (call_usable(call)) {
        uint8_t *m;
        size_t n;
        int r = rpc_framer_next(&call->framer, &m, &n);
        if (r == 0)
            return;
        if (r == -EMSGSIZE) {
            _cleanup_free_ char *msg =
                xasprintf("message of %" PRIu32 " bytes exceeds the maximum of %zu",
                          framer_announced(&call->framer), call->conn->server->max_message);
            call_abort(call, HYPR_RESOURCE_EXHAUSTED, msg);
            return;
        }
        if (r < 0) {
            call_abort(call, HYPR_UNIMPLEMENTED, "compressed messages are not supported");
            return;
        }
        if (call->method->client_streaming) {
            call_deliver(call, m, n);
            free(m);
        } else if (call->have_unary) {
            free(m);
            call_abort(call, HYPR_INVALID_ARGUMENT,
                       "more than one request message for a unary method");
            return;
        } else {
            call->have_unary = true;
            call->unary_msg = m;
            call->unary_len = n;
        }
    }
}

/* ---- nghttp2 callbacks ------------------------------------------------------- */

static int on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
    rpc_conn *c = user_data;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    rpc_call *call = xcalloc(1, sizeof(*call));
    call->server = c->server;
    call->conn = c;
    call->stream_id = frame->hd.stream_id;
    call->refs = 1; /* the stream's */
    call->attached = true;
    call->timeout_ms = -1;
    call->next = c->calls;
    if (c->calls)
        c->calls->prev = call;
    c->calls = call;
    rpc_conn_ref(c);
    c->server->n_calls++;
    nghttp2_session_set_stream_user_data(session, call->stream_id, call);
    return 0;
}

static bool header_is(const uint8_t *name, size_t namelen, const char *want)
{
    return namelen == strlen(want) && memcmp(name, want, namelen) == 0;
}

static int on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *user_data)
{
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0; /* client trailers carry nothing we use */
    rpc_call *call = stream_call(session, frame->hd.stream_id);
    if (!call)
        return 0;
    call->header_bytes += namelen + valuelen + 32;
    if (call->header_bytes > RPC_MAX_HEADER_LIST)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    const char *v = (const char *)value;
    if (header_is(name, namelen, ":method")) {
        call->is_post = valuelen == 4 && memcmp(v, "POST", 4) == 0;
    } else if (header_is(name, namelen, ":path")) {
        if (!call->path)
            call->path = xstrndup(v, valuelen);
    } else if (header_is(name, namelen, "content-type")) {
        /* "application/grpc", "application/grpc+proto", "application/grpc;..." */
        call->content_type_ok = valuelen >= 16 && memcmp(v, "application/grpc", 16) == 0 &&
                                (valuelen == 16 || v[16] == '+' || v[16] == ';');
    } else if (header_is(name, namelen, "grpc-timeout")) {
        _cleanup_free_ char *t = xstrndup(v, valuelen);
        int64_t ms;
        if (rpc_parse_timeout(t, &ms) < 0)
            call->timeout_bad = true;
        else
            call->timeout_ms = ms;
    }
    return 0;
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
    if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA)
        return 0;
    rpc_call *call = stream_call(session, frame->hd.stream_id);
    if (!call)
        return 0;
    call_ref(call);
    if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST)
        call_headers_done(call);
    if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)
        call_remote_end(call);
    call_unref(call);
    return 0;
}

static int on_data_chunk(nghttp2_session *session, uint8_t flags, int32_t stream_id,
                         const uint8_t *data, size_t len, void *user_data)
{
    rpc_call *call = stream_call(session, stream_id);
    if (!call || !call->method || !call_usable(call))
        return 0;
    call_ref(call);
    rpc_framer_feed(&call->framer, data, len);
    if (call->framer.in.cap >= RPC_BIG_MESSAGE)
        call->big_buffers = true;
    call_take_messages(call);
    call_unref(call);
    return 0;
}

static int on_frame_send(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
    if (frame->hd.type != NGHTTP2_HEADERS || !(frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
        return 0;
    rpc_call *call = stream_call(session, frame->hd.stream_id);
    if (!call)
        return 0;
    call->trailers_sent = true;
    /* Our status is out but the client is still sending: tell it to stop
     * (grpc servers answer this way; clients keep the status). */
    if (!nghttp2_session_get_stream_remote_close(session, frame->hd.stream_id))
        nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, frame->hd.stream_id,
                                  NGHTTP2_NO_ERROR);
    return 0;
}

static int on_stream_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code,
                           void *user_data)
{
    rpc_call *call = stream_call(session, stream_id);
    if (!call)
        return 0;
    call_detach(call, !call->trailers_sent || call->aborted);
    return 0;
}

int rpc_server_make_callbacks(nghttp2_session_callbacks **out)
{
    nghttp2_session_callbacks *cbs;
    int r = nghttp2_session_callbacks_new(&cbs);
    if (r != 0)
        return r;
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
    nghttp2_session_callbacks_set_on_frame_send_callback(cbs, on_frame_send);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
    *out = cbs;
    return 0;
}

void rpc_conn_run_drain(rpc_conn *c)
{
    /* Rescan from the head after each callback: a handler may end calls. */
    for (;;) {
        rpc_call *call = c->calls;
        while (call && !call->drain_pending)
            call = call->next;
        if (!call || c->closing)
            return;
        call->drain_pending = false;
        if (!call->on_drain || !call_usable(call))
            continue;
        call_ref(call);
        call->on_drain(call);
        call_unref(call);
    }
}

/* ---- handler API ------------------------------------------------------------- */

void rpc_call_set_data(rpc_call *call, void *data)
{
    call->data = data;
}

void *rpc_call_get_data(rpc_call *call)
{
    return call->data;
}

rpc_server *rpc_call_server(rpc_call *call)
{
    return call->server;
}

const char *rpc_call_path(rpc_call *call)
{
    return call->method ? call->method->path : call->path;
}

int64_t rpc_call_deadline(rpc_call *call)
{
    return call->deadline;
}

int rpc_call_send(rpc_call *call, const ProtobufCMessage *msg)
{
    if (!call_usable(call))
        return -ECANCELED;
    size_t size = protobuf_c_message_get_packed_size(msg);
    if (size > call->server->max_message)
        return -EMSGSIZE;
    if (call->tx)
        return call->tx->send(call->tx_data, msg);
    if (size >= RPC_BIG_MESSAGE)
        call->big_buffers = true;
    /* Packed straight into the queue behind its prefix: no extra copy. */
    buf_reserve(&call->out, 5 + size);
    uint8_t *p = (uint8_t *)call->out.data + call->out.len;
    p[0] = 0;
    p[1] = (uint8_t)(size >> 24);
    p[2] = (uint8_t)(size >> 16);
    p[3] = (uint8_t)(size >> 8);
    p[4] = (uint8_t)size;
    protobuf_c_message_pack(msg, p + 5);
    call->out.len += 5 + size;
    call->out.data[call->out.len] = '\0';
    if (!call->headers_sent) {
        call->headers_sent = true;
        if (call_submit_headers(call) != 0) {
            out_drop(call);
            return -ECANCELED;
        }
    } else {
        nghttp2_session_resume_data(call->conn->session, call->stream_id);
    }
    rpc_conn_schedule_flush(call->conn);
    return 0;
}

size_t rpc_call_pending(rpc_call *call)
{
    if (call->tx)
        return call->closed ? 0 : call->tx->pending(call->tx_data);
    return call->out.len - call->out_off;
}

void rpc_call_on_drain(rpc_call *call, void (*on_drain)(rpc_call *call))
{
    call->on_drain = on_drain;
}

void rpc_call_finish(rpc_call *call, hypr_status status, const char *message)
{
    call_finish(call, status, message);
}

void rpc_call_finish_error(rpc_call *call, const hypr_error *err)
{
    hypr_status st = err && err->status != HYPR_OK ? err->status : HYPR_UNKNOWN;
    call_finish(call, st, err && err->message ? err->message : hypr_status_name(st));
}

void rpc_call_reply(rpc_call *call, const ProtobufCMessage *msg)
{
    int r = rpc_call_send(call, msg);
    if (r == -EMSGSIZE)
        call_finish(call, HYPR_RESOURCE_EXHAUSTED, "response message too large");
    else
        call_finish(call, HYPR_OK, NULL);
}

bool rpc_call_is_finished(rpc_call *call)
{
    return call->finished;
}

/* ---- external calls ------------------------------------------------------------ */

const rpc_method *rpc_server_method(rpc_server *s, const char *path)
{
    return server_find_method(s, path);
}

rpc_call *rpc_call_external(rpc_server *s, const rpc_method *m, const rpc_transport *t, void *tx)
{
    rpc_call *call = xcalloc(1, sizeof(*call));
    call->server = s;
    call->method = m;
    call->path = xstrdup(m->path);
    call->tx = t;
    call->tx_data = tx;
    call->refs = 1; /* the transport's */
    call->timeout_ms = -1;
    s->n_calls++;
    return call;
}

void rpc_call_external_start(rpc_call *call, ProtobufCMessage *request)
{
    if (call->server->shutting_down) {
        protobuf_c_message_free_unpacked(request, NULL);
        call_finish(call, HYPR_UNAVAILABLE, "server is shutting down");
        return;
    }
    if (!call->started)
        call_mark_started(call);
    call_ref(call);
    call->method->on_message(call, request);
    call_unref(call);
}

void rpc_call_external_drained(rpc_call *call)
{
    if (!call->on_drain || !call_usable(call))
        return;
    call_ref(call);
    call->on_drain(call);
    call_unref(call);
}

void rpc_call_external_release(rpc_call *call, bool cancelled)
{
    call_notify_close(call, cancelled);
    call_unref(call);
}
