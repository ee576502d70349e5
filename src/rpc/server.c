/* gRPC server: listeners, connections and their I/O on libuv. The HTTP/2 and
 * per-call logic lives in server_call.c. */
#define LOG_MODULE "rpc"
#include "rpc/rpc_internal.h"

#include <malloc.h>
#include <netdb.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#define READ_BUF_SIZE (64 * 1024)
/* Output batching and back-pressure: stop producing (and reading) while this
 * much is waiting for the socket. */
#define WRITE_CHUNK      (256 * 1024)
#define WRITE_HIGH_WATER (4 * 1024 * 1024)
#define WRITE_LOW_WATER  (1024 * 1024)

typedef struct conn_write_req {
    uv_write_t req;
    rpc_conn *conn;
    char *data;
    size_t len;
} conn_write_req;

static void conn_flush(rpc_conn *c);
static void conn_check_idle(rpc_conn *c);
static void conn_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void conn_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);
static void server_maybe_done(rpc_server *s);

/* ---- server ---------------------------------------------------------------- */

int rpc_server_new(uv_loop_t *loop, const rpc_method *methods, size_t n_methods,
                   const rpc_server_options *opts, rpc_server **out, hypr_error *err)
{
    rpc_server *s = xcalloc(1, sizeof(*s));
    s->loop = loop;
    if (n_methods) {
        s->methods = xcalloc(n_methods, sizeof(*s->methods));
        memcpy(s->methods, methods, n_methods * sizeof(*methods));
    }
    s->n_methods = n_methods;
    s->max_message = opts && opts->max_message ? opts->max_message : RPC_DEFAULT_MAX_MESSAGE;
    s->userdata = opts ? opts->userdata : NULL;
    s->observe = opts ? opts->observe : NULL;

    int r = rpc_server_make_callbacks(&s->callbacks);
    if (r == 0)
        r = nghttp2_option_new(&s->option);
    if (r != 0) {
        rpc_server_free(s);
        return hypr_err(err, HYPR_INTERNAL, ENOMEM, "cannot set up HTTP/2: %s",
                        nghttp2_strerror(r));
    }
    /* We advertise our own limits; the peer's are what nghttp2 enforces on us. */
    nghttp2_option_set_max_reserved_remote_streams(s->option, 0);

    /* A client vanishing mid-write must cost one connection, not the daemon. */
    struct sigaction sa;
    if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL)
        signal(SIGPIPE, SIG_IGN);

    *out = s;
    return 0;
}

void *rpc_server_userdata(rpc_server *s)
{
    return s->userdata;
}

size_t rpc_server_active_calls(rpc_server *s)
{
    return s->n_calls;
}

static void server_release(rpc_server *s)
{
    if (s->callbacks)
        nghttp2_session_callbacks_del(s->callbacks);
    if (s->option)
        nghttp2_option_del(s->option);
    free(s->methods);
    free(s->unix_path);
    free(s->read_buf);
    free(s);
}

static void server_maybe_done(rpc_server *s)
{
    if (!s->shutting_down || s->done_called || s->n_handles > 0 || s->n_conns > 0)
        return;
    s->done_called = true;
    if (s->done)
        s->done(s);
    else if (s->free_when_done)
        server_release(s);
}

static void server_handle_closed(uv_handle_t *h)
{
    rpc_server *s = h->data;
    free(h);
    s->n_handles--;
    server_maybe_done(s);
}

static void flush_timer_cb(uv_timer_t *t)
{
    rpc_server *s = t->data;
    /* Refs keep the current and next connection valid across a flush that may
     * close (and free) connections. */
    rpc_conn *c = s->conns;
    if (c)
        rpc_conn_ref(c);
    while (c) {
        if (c->want_flush && !c->closing)
            conn_flush(c);
        rpc_conn *next = c->next;
        if (next)
            rpc_conn_ref(next);
        rpc_conn_unref(c);
        c = next;
    }
}

static void server_ensure_timer(rpc_server *s)
{
    if (s->flush_timer)
        return;
    s->flush_timer = xcalloc(1, sizeof(*s->flush_timer));
    uv_timer_init(s->loop, s->flush_timer);
    s->flush_timer->data = s;
    s->n_handles++;
}

void rpc_server_shutdown(rpc_server *s, void (*done)(rpc_server *s))
{
    if (s->shutting_down)
        return;
    s->shutting_down = true;
    s->done = done;
    if (s->unix_listener) {
        uv_close((uv_handle_t *)s->unix_listener, server_handle_closed);
        s->unix_listener = NULL;
        if (s->unix_path && unlink(s->unix_path) < 0 && errno != ENOENT)
            log_warn("cannot remove %s: %s", s->unix_path, strerror(errno));
    }
    if (s->tcp_listener) {
        uv_close((uv_handle_t *)s->tcp_listener, server_handle_closed);
        s->tcp_listener = NULL;
    }
    rpc_conn *c = s->conns;
    if (c)
        rpc_conn_ref(c);
    while (c) {
        rpc_conn_close(c);
        rpc_conn *next = c->next;
        if (next)
            rpc_conn_ref(next);
        rpc_conn_unref(c);
        c = next;
    }
    if (s->flush_timer) {
        uv_close((uv_handle_t *)s->flush_timer, server_handle_closed);
        s->flush_timer = NULL;
    }
    server_maybe_done(s);
}

void rpc_server_free(rpc_server *s)
{
    if (!s)
        return;
    if (s->n_handles == 0 && s->n_conns == 0) {
        server_release(s);
        return;
    }
    /* Still open: close everything first; the memory goes when that is done. */
    log_debug("rpc_server_free before shutdown completed; deferring");
    s->free_when_done = true;
    if (!s->shutting_down)
        rpc_server_shutdown(s, NULL);
    else
        s->done = NULL;
}

/* ---- connections ------------------------------------------------------------ */

void rpc_conn_ref(rpc_conn *c)
{
    c->refs++;
}

void rpc_conn_unref(rpc_conn *c)
{
    if (--c->refs > 0)
        return;
    rpc_server *s = c->server;
    if (c->session)
        nghttp2_session_del(c->session);
    DLIST_REMOVE(s->conns, c);
    s->n_conns--;
    free(c);
    /* A finished connection's buffers (HTTP/2 tables, batched output) go back
     * to the OS so the idle daemon stays small. */
    malloc_trim(0);
    server_maybe_done(s);
}

static rpc_conn *conn_new(rpc_server *s)
{
    rpc_conn *c = xcalloc(1, sizeof(*c));
    c->server = s;
    c->refs = 1; /* released once the connection is closed */
    if (nghttp2_session_server_new2(&c->session, s->callbacks, c, s->option) != 0) {
        free(c);
        return NULL;
    }
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, RPC_MAX_STREAMS},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, RPC_STREAM_WINDOW},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, RPC_MAX_HEADER_LIST},
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
    };
    if (nghttp2_submit_settings(c->session, NGHTTP2_FLAG_NONE, iv, ARRAY_SIZE(iv)) != 0 ||
        nghttp2_session_set_local_window_size(c->session, NGHTTP2_FLAG_NONE, 0,
                                              RPC_CONNECTION_WINDOW) != 0) {
        nghttp2_session_del(c->session);
        free(c);
        return NULL;
    }
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->n_conns++;
    server_ensure_timer(s);
    return c;
}

static void conn_handle_closed(uv_handle_t *h)
{
    rpc_conn_unref(h->data);
}

/* Sends what nghttp2 still has queued (a GOAWAY) without waiting: the socket is
 * about to close. */
static void conn_send_goodbye(rpc_conn *c)
{
    if (!c->session || !c->has_handle)
        return;
    nghttp2_submit_goaway(c->session, NGHTTP2_FLAG_NONE,
                          nghttp2_session_get_last_proc_stream_id(c->session), NGHTTP2_NO_ERROR,
                          NULL, 0);
    _cleanup_buf_ hypr_buf out = {0};
    for (;;) {
        const uint8_t *data;
        ssize_t n = nghttp2_session_mem_send(c->session, &data);
        if (n <= 0 || out.len > WRITE_CHUNK)
            break;
        buf_append(&out, data, (size_t)n);
    }
    if (out.len) {
        uv_buf_t b = uv_buf_init(out.data, (unsigned)out.len);
        (void)uv_try_write(&c->h.stream, &b, 1);
    }
}

void rpc_conn_close(rpc_conn *c)
{
    if (c->closing)
        return;
    if (c->busy) {
        c->close_deferred = true;
        return;
    }
    c->closing = true;
    rpc_conn_ref(c);
    rpc_conn_cancel_calls(c);
    if (c->server->shutting_down)
        conn_send_goodbye(c);
    if (c->session) {
        nghttp2_session_del(c->session);
        c->session = NULL;
    }
    if (c->has_handle) {
        uv_read_stop(&c->h.stream);
        uv_close(&c->h.handle, conn_handle_closed);
    } else {
        rpc_conn_unref(c);
    }
    rpc_conn_unref(c);
}

void rpc_conn_schedule_flush(rpc_conn *c)
{
    if (c->closing)
        return;
    c->want_flush = true;
    /* Inside nghttp2 the caller of mem_recv/mem_send flushes afterwards. */
    if (c->busy)
        return;
    rpc_server *s = c->server;
    if (s->flush_timer && !uv_is_active((uv_handle_t *)s->flush_timer))
        uv_timer_start(s->flush_timer, flush_timer_cb, 0, 0);
}

static void conn_write_done(uv_write_t *req, int status)
{
    conn_write_req *w = (conn_write_req *)req;
    rpc_conn *c = w->conn;
    c->write_pending -= w->len;
    free(w->data);
    free(w);
    if (c->write_pending == 0 && c->server->trim_wanted) {
        c->server->trim_wanted = false;
        malloc_trim(0);
    }
    if (status < 0) {
        if (status != UV_ECANCELED)
            log_debug("connection write failed: %s", uv_strerror(status));
        rpc_conn_close(c);
    } else if (!c->closing) {
        if (c->write_blocked || c->want_flush)
            conn_flush(c);
        if (!c->closing && c->read_stopped && c->write_pending < WRITE_LOW_WATER) {
            c->read_stopped = false;
            uv_read_start(&c->h.stream, conn_alloc, conn_read);
        }
        /* e.g. the GOAWAY for a protocol error is now out: hang up. */
        conn_check_idle(c);
    }
    rpc_conn_unref(c);
}

static void conn_write(rpc_conn *c, hypr_buf *b)
{
    if (b->len == 0)
        return;
    if (!c->has_handle || c->closing) {
        buf_free(b);
        return;
    }
    conn_write_req *w = xcalloc(1, sizeof(*w));
    w->conn = c;
    w->len = b->len;
    w->data = buf_steal(b);
    uv_buf_t ub = uv_buf_init(w->data, (unsigned)w->len);
    rpc_conn_ref(c);
    c->write_pending += w->len;
    int r = uv_write(&w->req, &c->h.stream, &ub, 1, conn_write_done);
    if (r < 0) {
        log_debug("cannot write to connection: %s", uv_strerror(r));
        c->write_pending -= w->len;
        free(w->data);
        free(w);
        rpc_conn_unref(c);
        rpc_conn_close(c);
    }
}

static void conn_check_idle(rpc_conn *c)
{
    if (c->closing || !c->session)
        return;
    /* Both sides said goodbye (GOAWAY exchanged, streams done). */
    if (!nghttp2_session_want_read(c->session) && !nghttp2_session_want_write(c->session) &&
        c->write_pending == 0)
        rpc_conn_close(c);
}

static void conn_flush(rpc_conn *c)
{
    if (c->closing || !c->session)
        return;
    if (c->busy) {
        c->want_flush = true;
        return;
    }
    rpc_conn_ref(c);
    do {
        c->want_flush = false;
        c->write_blocked = false;
        _cleanup_buf_ hypr_buf out = {0};
        for (;;) {
            if (c->write_pending + out.len >= WRITE_HIGH_WATER) {
                c->write_blocked = true;
                break;
            }
            const uint8_t *data;
            c->busy++;
            ssize_t n = nghttp2_session_mem_send(c->session, &data);
            c->busy--;
            if (n < 0) {
                log_debug("HTTP/2 send failed: %s", nghttp2_strerror((int)n));
                c->close_deferred = true;
                break;
            }
            if (n == 0)
                break;
            buf_append(&out, data, (size_t)n);
            if (out.len >= WRITE_CHUNK)
                conn_write(c, &out);
            if (c->closing)
                break;
        }
        conn_write(c, &out);
        if (c->close_deferred) {
            c->close_deferred = false;
            rpc_conn_close(c);
        }
        if (c->closing)
            break;
        rpc_conn_run_drain(c);
    } while (!c->closing && c->want_flush && !c->write_blocked);
    conn_check_idle(c);
    rpc_conn_unref(c);
}

/* Feeds received bytes to nghttp2 and answers. Returns <0 if the connection closed. */
static int conn_receive(rpc_conn *c, const uint8_t *data, size_t len)
{
    if (c->closing || !c->session)
        return -ECONNRESET;
    rpc_conn_ref(c);
    c->busy++;
    ssize_t n = nghttp2_session_mem_recv(c->session, data, len);
    c->busy--;
    if (n < 0) {
        log_debug("closing connection: %s", nghttp2_strerror((int)n));
        c->close_deferred = false;
        rpc_conn_close(c);
    } else if (c->close_deferred) {
        c->close_deferred = false;
        rpc_conn_close(c);
    } else {
        conn_flush(c);
    }
    int r = c->closing ? -ECONNRESET : 0;
    rpc_conn_unref(c);
    return r;
}

static void conn_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    rpc_conn *c = h->data;
    rpc_server *s = c->server;
    if (!s->read_buf)
        s->read_buf = xmalloc(READ_BUF_SIZE);
    *buf = uv_buf_init(s->read_buf, READ_BUF_SIZE);
}

static void conn_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    rpc_conn *c = stream->data;
    if (nread == 0)
        return;
    if (nread < 0) {
        if (nread != UV_EOF)
            log_debug("connection read failed: %s", uv_strerror((int)nread));
        rpc_conn_close(c);
        return;
    }
    rpc_conn_ref(c);
    if (conn_receive(c, (const uint8_t *)buf->base, (size_t)nread) == 0 &&
        c->write_pending >= WRITE_HIGH_WATER && !c->read_stopped) {
        /* The peer is not reading what we send: stop taking new requests. */
        c->read_stopped = true;
        uv_read_stop(&c->h.stream);
    }
    rpc_conn_unref(c);
}

static void conn_start(rpc_server *s, rpc_conn *c)
{
    c->has_handle = true;
    c->h.handle.data = c;
    int r = uv_read_start(&c->h.stream, conn_alloc, conn_read);
    if (r < 0) {
        log_warn("cannot read from new connection: %s", uv_strerror(r));
        rpc_conn_close(c);
        return;
    }
    conn_flush(c); /* our SETTINGS */
}

static void on_connection(uv_stream_t *listener, int status)
{
    rpc_server *s = listener->data;
    if (status < 0) {
        log_warn("accept failed: %s", uv_strerror(status));
        return;
    }
    if (s->shutting_down)
        return;
    rpc_conn *c = conn_new(s);
    if (!c) {
        log_warn("cannot create an HTTP/2 session");
        return;
    }
    if (listener->type == UV_NAMED_PIPE)
        uv_pipe_init(s->loop, &c->h.pipe, 0);
    else
        uv_tcp_init(s->loop, &c->h.tcp);
    c->has_handle = true;
    c->h.handle.data = c;
    int r = uv_accept(listener, &c->h.stream);
    if (r < 0) {
        log_warn("accept failed: %s", uv_strerror(r));
        rpc_conn_close(c);
        return;
    }
    if (listener->type == UV_TCP)
        uv_tcp_nodelay(&c->h.tcp, 1);
    conn_start(s, c);
}

/* ---- listeners -------------------------------------------------------------- */

/* A socket file nobody accepts on is left over from a crash; a live one means
 * another server owns the path. */
static int unix_path_prepare(const char *path, hypr_error *err)
{
    struct stat st;
    if (lstat(path, &st) < 0) {
        if (errno == ENOENT)
            return 0;
        return hypr_err(err, HYPR_INTERNAL, errno, "cannot stat %s: %s", path, strerror(errno));
    }
    if (!S_ISSOCK(st.st_mode))
        return hypr_err(err, HYPR_FAILED_PRECONDITION, EEXIST,
                        "%s exists and is not a socket; refusing to replace it", path);
    _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0) {
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        memcpy(sa.sun_path, path, strlen(path) + 1);
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
            return hypr_err(err, HYPR_FAILED_PRECONDITION, EADDRINUSE,
                            "%s is in use by another running server", path);
    }
    if (unlink(path) < 0 && errno != ENOENT)
        return hypr_err(err, HYPR_INTERNAL, errno, "cannot remove stale socket %s: %s", path,
                        strerror(errno));
    return 0;
}

static void listener_discard_closed(uv_handle_t *h)
{
    free(h);
}

int rpc_server_listen_unix(rpc_server *s, const char *path, mode_t mode, hypr_error *err)
{
    struct sockaddr_un sa;
    if (s->unix_listener)
        return hypr_err(err, HYPR_INTERNAL, EBUSY, "already listening on %s", s->unix_path);
    if (strlen(path) >= sizeof(sa.sun_path))
        return hypr_err(err, HYPR_INVALID_ARGUMENT, ENAMETOOLONG,
                        "socket path %s is too long (at most %zu bytes)", path,
                        sizeof(sa.sun_path) - 1);
    int r = unix_path_prepare(path, err);
    if (r < 0)
        return r;
    uv_pipe_t *p = xcalloc(1, sizeof(*p));
    uv_pipe_init(s->loop, p, 0);
    p->data = s;
    r = uv_pipe_bind(p, path);
    if (r < 0) {
        uv_close((uv_handle_t *)p, listener_discard_closed);
        return hypr_err(err, HYPR_UNAVAILABLE, -r, "cannot bind %s: %s", path, uv_strerror(r));
    }
    /* Before listen(): nobody can connect while the mode is still the umask's. */
    if (chmod(path, mode) < 0) {
        int e = errno;
        uv_close((uv_handle_t *)p, listener_discard_closed);
        unlink(path);
        return hypr_err(err, HYPR_INTERNAL, e, "cannot chmod %s: %s", path, strerror(e));
    }
    r = uv_listen((uv_stream_t *)p, 511, on_connection);
    if (r < 0) {
        uv_close((uv_handle_t *)p, listener_discard_closed);
        unlink(path);
        return hypr_err(err, HYPR_UNAVAILABLE, -r, "cannot listen on %s: %s", path, uv_strerror(r));
    }
    s->unix_listener = p;
    free(s->unix_path);
    s->unix_path = xstrdup(path);
    s->n_handles++;
    server_ensure_timer(s);
    return 0;
}

int rpc_server_listen_tcp(rpc_server *s, const char *host, int port, hypr_error *err)
{
    if (s->tcp_listener)
        return hypr_err(err, HYPR_INTERNAL, EBUSY, "already listening on TCP");
    if (port < 0 || port > 65535)
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL, "invalid port %d", port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    _cleanup_free_ char *service = xasprintf("%d", port);
    int gr = getaddrinfo(host, service, &hints, &res);
    if (gr != 0)
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL, "cannot resolve %s: %s",
                        host ? host : "*", gai_strerror(gr));
    uv_tcp_t *t = xcalloc(1, sizeof(*t));
    uv_tcp_init(s->loop, t);
    t->data = s;
    int r = uv_tcp_bind(t, res->ai_addr, 0);
    freeaddrinfo(res);
    if (r == 0)
        r = uv_listen((uv_stream_t *)t, 511, on_connection);
    if (r < 0) {
        uv_close((uv_handle_t *)t, listener_discard_closed);
        return hypr_err(err, HYPR_UNAVAILABLE, -r, "cannot listen on %s:%d: %s", host ? host : "*",
                        port, uv_strerror(r));
    }
    s->tcp_listener = t;
    s->n_handles++;
    server_ensure_timer(s);
    return 0;
}

/* ---- test hooks ------------------------------------------------------------- */

rpc_conn *rpc_server_test_conn(rpc_server *s)
{
    rpc_conn *c = conn_new(s);
    if (!c)
        return NULL;
    rpc_conn_ref(c); /* the caller's, dropped by rpc_test_conn_close */
    conn_flush(c);
    return c;
}

int rpc_test_conn_feed(rpc_conn *c, const uint8_t *data, size_t len)
{
    return conn_receive(c, data, len);
}

void rpc_test_conn_close(rpc_conn *c)
{
    rpc_conn_close(c);
    rpc_conn_unref(c);
}
