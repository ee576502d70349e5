/* Blocking gRPC client (CLI, tests): one socket, one nghttp2 client session,
 * any number of streams. Every wait pumps the whole session, so messages for
 * streams nobody is waiting on are buffered until their owner asks. */
#define LOG_MODULE "rpc"
#include "rpc/rpc_internal.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#define CLIENT_STREAM_WINDOW     (4 * 1024 * 1024)
#define CLIENT_CONNECTION_WINDOW (16 * 1024 * 1024)
#define READ_SIZE                (64 * 1024)
#define WRITE_BATCH              (256 * 1024)
/* rpc_stream_send blocks while more than this is queued on the stream. */
#define SEND_HIGH_WATER (1024 * 1024)
/* The server reports an expired deadline itself; we give its status this long
 * to arrive before giving up locally. */
#define DEADLINE_GRACE_MS 200

#define NV(n, v, vlen)                                                                             \
    {                                                                                              \
        (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, (vlen), NGHTTP2_NV_FLAG_NONE                \
    }

typedef struct msg_item {
    struct msg_item *next;
    uint8_t *data;
    size_t len;
} msg_item;

struct rpc_client {
    int fd;
    nghttp2_session *session;
    char *target;
    char *authority;
    hypr_buf wbuf;
    size_t woff;
    uint8_t *rbuf;
    rpc_stream *streams;
    bool dead;
};

struct rpc_stream {
    rpc_client *c;
    rpc_stream *prev, *next;
    int32_t stream_id;
    hypr_buf out;
    size_t out_off;
    bool send_closed;
    bool closed;    /* no more messages will arrive */
    bool h2_closed; /* nghttp2 closed the stream */
    bool orphan;    /* freed by its owner; waiting for nghttp2 to let go */
    rpc_framer framer;
    msg_item *head, *tail;
    int http_status;
    bool have_status;
    int grpc_status;
    char *grpc_message;
    uint32_t rst_code;
    char *fail_msg; /* transport or protocol failure, wins over trailers */
    hypr_status fail_status;
    int fail_errno;
    int64_t deadline; /* CLOCK_MONOTONIC ms, 0 = none */
};

static void client_fail(rpc_client *c, const char *why);

/* ---- streams ----------------------------------------------------------------- */

static void stream_set_fail(rpc_stream *s, hypr_status status, int errnum, const char *msg)
{
    if (s->fail_msg)
        return;
    s->fail_msg = xstrdup(msg);
    s->fail_status = status;
    s->fail_errno = errnum;
    s->closed = true;
}

static void stream_drop_messages(rpc_stream *s)
{
    while (s->head) {
        msg_item *m = s->head;
        s->head = m->next;
        free(m->data);
        free(m);
    }
    s->tail = NULL;
}

static void stream_release(rpc_stream *s)
{
    if (s->c) {
        DLIST_REMOVE(s->c->streams, s);
    }
    stream_drop_messages(s);
    rpc_framer_free(&s->framer);
    buf_free(&s->out);
    free(s->grpc_message);
    free(s->fail_msg);
    free(s);
}

static int stream_result(rpc_stream *s, hypr_error *err)
{
    if (s->fail_msg)
        return hypr_err(err, s->fail_status, s->fail_errno, "%s", s->fail_msg);
    if (s->have_status) {
        if (s->grpc_status == HYPR_OK) {
            if (s->framer.in.len > 0)
                return hypr_err(err, HYPR_INTERNAL, EPROTO, "truncated response message");
            return 0;
        }
        hypr_status st = (hypr_status)s->grpc_status;
        _cleanup_free_ char *msg = s->grpc_message ? rpc_percent_decode(s->grpc_message) : NULL;
        return hypr_err(err, st, 0, "%s", msg && msg[0] ? msg : hypr_status_name(st));
    }
    if (s->http_status && s->http_status != 200) {
        hypr_status st;
        switch (s->http_status) {
        case 400:
            st = HYPR_INTERNAL;
            break;
        case 401:
            st = HYPR_UNAUTHENTICATED;
            break;
        case 403:
            st = HYPR_PERMISSION_DENIED;
            break;
        case 404:
            st = HYPR_UNIMPLEMENTED;
            break;
        case 429:
        case 502:
        case 503:
        case 504:
            st = HYPR_UNAVAILABLE;
            break;
        default:
            st = HYPR_UNKNOWN;
        }
        return hypr_err(err, st, EPROTO, "server answered HTTP %d", s->http_status);
    }
    if (s->rst_code == NGHTTP2_REFUSED_STREAM)
        return hypr_err(err, HYPR_UNAVAILABLE, ECONNREFUSED, "the server refused the stream");
    if (s->rst_code == NGHTTP2_CANCEL)
        return hypr_err(err, HYPR_CANCELLED, ECANCELED, "the server cancelled the call");
    if (s->rst_code)
        return hypr_err(err, HYPR_INTERNAL, EPROTO, "stream reset by the server (HTTP/2 error %u)",
                        s->rst_code);
    return hypr_err(err, HYPR_INTERNAL, EPROTO, "the call ended without a status");
}

static void stream_take_messages(rpc_stream *s)
{
    for (;;) {
        uint8_t *m;
        size_t n;
        int r = rpc_framer_next(&s->framer, &m, &n);
        if (r == 0)
            return;
        if (r < 0) {
            _cleanup_free_ char *why =
                r == -EMSGSIZE ? xasprintf("response message exceeds the maximum of %u bytes",
                                           RPC_DEFAULT_MAX_MESSAGE)
                               : xstrdup("compressed response messages are not supported");
            stream_set_fail(s, r == -EMSGSIZE ? HYPR_RESOURCE_EXHAUSTED : HYPR_INTERNAL, -r, why);
            rpc_framer_free(&s->framer);
            nghttp2_submit_rst_stream(s->c->session, NGHTTP2_FLAG_NONE, s->stream_id,
                                      NGHTTP2_CANCEL);
            return;
        }
        msg_item *it = xcalloc(1, sizeof(*it));
        it->data = m;
        it->len = n;
        if (s->tail)
            s->tail->next = it;
        else
            s->head = it;
        s->tail = it;
    }
}

/* ---- nghttp2 callbacks ------------------------------------------------------- */

static ssize_t stream_read_data(nghttp2_session *session, int32_t stream_id, uint8_t *buf,
                                size_t length, uint32_t *data_flags, nghttp2_data_source *source,
                                void *user_data)
{
    rpc_stream *s = source->ptr;
    size_t n = rpc_out_read(&s->out, &s->out_off, buf, length, WRITE_BATCH);
    if (n > 0)
        return (ssize_t)n;
    if (s->send_closed || s->orphan) {
        *data_flags |= NGHTTP2_DATA_FLAG_EOF;
        return 0;
    }
    return NGHTTP2_ERR_DEFERRED;
}

static rpc_stream *client_stream(rpc_client *c, int32_t stream_id)
{
    return nghttp2_session_get_stream_user_data(c->session, stream_id);
}

static int on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *user_data)
{
    rpc_stream *s = client_stream(user_data, frame->hd.stream_id);
    if (!s || s->orphan)
        return 0;
    if (namelen == 7 && memcmp(name, ":status", 7) == 0) {
        int st = 0;
        for (size_t i = 0; i < valuelen && i < 3; i++)
            st = st * 10 + (value[i] >= '0' && value[i] <= '9' ? value[i] - '0' : 0);
        s->http_status = st;
    } else if (namelen == 11 && memcmp(name, "grpc-status", 11) == 0) {
        int st = 0;
        bool ok = valuelen > 0 && valuelen <= 3;
        for (size_t i = 0; ok && i < valuelen; i++) {
            if (value[i] < '0' || value[i] > '9')
                ok = false;
            else
                st = st * 10 + (value[i] - '0');
        }
        s->have_status = true;
        s->grpc_status = ok && st <= HYPR_UNAUTHENTICATED ? st : HYPR_UNKNOWN;
    } else if (namelen == 12 && memcmp(name, "grpc-message", 12) == 0) {
        free(s->grpc_message);
        s->grpc_message = xstrndup((const char *)value, valuelen);
    }
    return 0;
}

static int on_data_chunk(nghttp2_session *session, uint8_t flags, int32_t stream_id,
                         const uint8_t *data, size_t len, void *user_data)
{
    rpc_stream *s = client_stream(user_data, stream_id);
    if (!s || s->orphan || s->fail_msg)
        return 0;
    rpc_framer_feed(&s->framer, data, len);
    stream_take_messages(s);
    return 0;
}

static int on_stream_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code,
                           void *user_data)
{
    rpc_stream *s = client_stream(user_data, stream_id);
    if (!s)
        return 0;
    s->h2_closed = true;
    s->closed = true;
    s->rst_code = error_code;
    if (s->orphan)
        stream_release(s);
    return 0;
}

/* ---- I/O --------------------------------------------------------------------- */

static void client_fail(rpc_client *c, const char *why)
{
    if (c->dead)
        return;
    c->dead = true;
    _cleanup_free_ char *msg = xasprintf("connection to %s lost: %s", c->target, why);
    for (rpc_stream *s = c->streams; s; s = s->next)
        if (!s->closed)
            stream_set_fail(s, HYPR_UNAVAILABLE, ECONNRESET, msg);
}

/* Moves what nghttp2 wants to send into the write buffer. */
static void client_fill(rpc_client *c)
{
    while (!c->dead && c->wbuf.len - c->woff < WRITE_BATCH) {
        const uint8_t *data;
        ssize_t n = nghttp2_session_mem_send(c->session, &data);
        if (n < 0) {
            client_fail(c, nghttp2_strerror((int)n));
            return;
        }
        if (n == 0)
            return;
        buf_append(&c->wbuf, data, (size_t)n);
    }
}

static void client_write(rpc_client *c)
{
    while (!c->dead && c->woff < c->wbuf.len) {
        ssize_t n =
            send(c->fd, c->wbuf.data + c->woff, c->wbuf.len - c->woff, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                client_fail(c, strerror(errno));
            break;
        }
        c->woff += (size_t)n;
    }
    if (c->woff == c->wbuf.len) {
        if (c->wbuf.cap > WRITE_BATCH * 2)
            buf_free(&c->wbuf);
        c->wbuf.len = c->woff = 0;
    }
}

static void client_read(rpc_client *c)
{
    for (int i = 0; i < 16 && !c->dead; i++) {
        ssize_t n = recv(c->fd, c->rbuf, READ_SIZE, MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                client_fail(c, strerror(errno));
            return;
        }
        if (n == 0) {
            client_fail(c, "closed by the server");
            return;
        }
        ssize_t r = nghttp2_session_mem_recv(c->session, c->rbuf, (size_t)n);
        if (r < 0) {
            client_fail(c, nghttp2_strerror((int)r));
            return;
        }
        if ((size_t)n < READ_SIZE)
            return;
    }
}

/* One round of I/O: write what we can, wait up to timeout_ms for the socket,
 * read and process what arrived. */
static void client_pump(rpc_client *c, int timeout_ms)
{
    if (c->dead)
        return;
    client_fill(c);
    client_write(c);
    client_fill(c);
    if (c->dead)
        return;
    struct pollfd p = {.fd = c->fd, .events = POLLIN};
    if (c->woff < c->wbuf.len)
        p.events |= POLLOUT;
    int n = poll(&p, 1, timeout_ms);
    if (n <= 0)
        return;
    if (p.revents & POLLOUT)
        client_write(c);
    if (p.revents & (POLLIN | POLLHUP | POLLERR))
        client_read(c);
    client_fill(c);
    client_write(c);
}

/* ---- connecting -------------------------------------------------------------- */

static int connect_unix(const char *path, int *out)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    memcpy(sa.sun_path, path, strlen(path) + 1);
    _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        return -errno;
    *out = TAKE_FD(fd);
    return 0;
}

static int connect_tcp(const char *hostport, char **authority, int *out)
{
    _cleanup_free_ char *host = NULL;
    const char *port;
    if (hostport[0] == '[') {
        const char *end = strchr(hostport, ']');
        if (!end || end[1] != ':')
            return -EINVAL;
        host = xstrndup(hostport + 1, (size_t)(end - hostport - 1));
        port = end + 2;
    } else {
        const char *colon = strrchr(hostport, ':');
        if (!colon)
            return -EINVAL;
        host = xstrndup(hostport, (size_t)(colon - hostport));
        port = colon + 1;
    }
    if (!host[0] || !port[0])
        return -EINVAL;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    if (getaddrinfo(host, port, &hints, &res) != 0)
        return -EHOSTUNREACH;
    int r = -ECONNREFUSED;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            r = -errno;
            continue;
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
            r = -errno;
            close(fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        *out = fd;
        r = 0;
        break;
    }
    freeaddrinfo(res);
    if (r == 0)
        *authority = xstrdup(hostport);
    return r;
}

int rpc_client_connect(const char *target, rpc_client **out, hypr_error *err)
{
    if (str_empty(target))
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL, "no server address given");
    int fd = -1, r;
    char *authority = NULL;
    if (str_startswith(target, "tcp://")) {
        r = connect_tcp(target + 6, &authority, &fd);
    } else if (str_startswith(target, "unix:")) {
        const char *path = target + 5;
        if (str_startswith(path, "//"))
            path += 2;
        r = connect_unix(path, &fd);
    } else if (target[0] != '/' && target[0] != '.' && strchr(target, ':')) {
        r = connect_tcp(target, &authority, &fd);
    } else {
        r = connect_unix(target, &fd);
    }
    if (r < 0)
        return hypr_err(err, HYPR_UNAVAILABLE, -r, "cannot connect to %s: %s", target,
                        strerror(-r));
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
        r = -errno;
        close(fd);
        free(authority);
        return hypr_err(err, HYPR_UNAVAILABLE, -r, "cannot connect to %s: %s", target,
                        strerror(-r));
    }

    rpc_client *c = xcalloc(1, sizeof(*c));
    c->fd = fd;
    c->target = xstrdup(target);
    /* grpc clients use "localhost" for unix sockets; servers may check it. */
    c->authority = authority ? authority : xstrdup("localhost");
    c->rbuf = xmalloc(READ_SIZE);

    nghttp2_session_callbacks *cbs;
    if (nghttp2_session_callbacks_new(&cbs) != 0) {
        rpc_client_free(c);
        return hypr_err(err, HYPR_INTERNAL, ENOMEM, "cannot set up HTTP/2");
    }
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
    r = nghttp2_session_client_new(&c->session, cbs, c);
    nghttp2_session_callbacks_del(cbs);
    if (r != 0) {
        rpc_client_free(c);
        return hypr_err(err, HYPR_INTERNAL, ENOMEM, "cannot set up HTTP/2: %s",
                        nghttp2_strerror(r));
    }
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, CLIENT_STREAM_WINDOW},
    };
    nghttp2_submit_settings(c->session, NGHTTP2_FLAG_NONE, iv, ARRAY_SIZE(iv));
    nghttp2_session_set_local_window_size(c->session, NGHTTP2_FLAG_NONE, 0,
                                          CLIENT_CONNECTION_WINDOW);
    client_fill(c);
    client_write(c);
    if (c->dead) {
        rpc_client_free(c);
        return hypr_err(err, HYPR_UNAVAILABLE, ECONNRESET, "cannot connect to %s: %s", target,
                        strerror(ECONNRESET));
    }
    *out = c;
    return 0;
}

void rpc_client_free(rpc_client *c)
{
    if (!c)
        return;
    while (c->streams) {
        rpc_stream *s = c->streams;
        c->streams = s->next;
        if (s->next)
            s->next->prev = NULL;
        s->prev = s->next = NULL;
        if (s->orphan) {
            s->c = NULL;
            stream_release(s);
            continue;
        }
        stream_set_fail(s, HYPR_UNAVAILABLE, ECONNRESET, "the client was closed");
        s->c = NULL;
    }
    if (c->session)
        nghttp2_session_del(c->session);
    if (c->fd >= 0)
        close(c->fd);
    buf_free(&c->wbuf);
    free(c->rbuf);
    free(c->target);
    free(c->authority);
    free(c);
}

int rpc_client_fd(rpc_client *c)
{
    return c->fd;
}

/* ---- calls ------------------------------------------------------------------- */

static void format_timeout(int64_t ms, char *out, size_t outlen)
{
    /* At most 8 digits: switch to coarser units for long timeouts. */
    if (ms > INT64_C(99999999) * 3600000)
        ms = INT64_C(99999999) * 3600000;
    if (ms <= 99999999)
        snprintf(out, outlen, "%" PRId64 "m", ms);
    else if (ms / 1000 <= 99999999)
        snprintf(out, outlen, "%" PRId64 "S", (ms + 999) / 1000);
    else
        snprintf(out, outlen, "%" PRId64 "H", (ms + 3599999) / 3600000);
}

int rpc_client_open(rpc_client *c, const char *path, int64_t timeout_ms, rpc_stream **out,
                    hypr_error *err)
{
    if (c->dead)
        return hypr_err(err, HYPR_UNAVAILABLE, ECONNRESET, "connection to %s lost", c->target);
    rpc_stream *s = xcalloc(1, sizeof(*s));
    s->c = c;
    s->framer.max_message = RPC_DEFAULT_MAX_MESSAGE;
    char tbuf[32];
    nghttp2_nv nva[8] = {
        NV(":method", "POST", 4),
        NV(":scheme", "http", 4),
        NV(":path", path, strlen(path)),
        NV(":authority", c->authority, strlen(c->authority)),
        NV("content-type", "application/grpc", 16),
        NV("te", "trailers", 8),
        NV("user-agent", "hypr/" HYPR_VERSION, strlen("hypr/" HYPR_VERSION)),
    };
    size_t n = 7;
    if (timeout_ms > 0) {
        format_timeout(timeout_ms, tbuf, sizeof(tbuf));
        nva[n++] = (nghttp2_nv)NV("grpc-timeout", tbuf, strlen(tbuf));
        s->deadline = time_monotonic_ms() + timeout_ms;
    }
    nghttp2_data_provider prd = {.source.ptr = s, .read_callback = stream_read_data};
    int32_t id = nghttp2_submit_request(c->session, NULL, nva, n, &prd, s);
    if (id < 0) {
        free(s);
        return hypr_err(err, HYPR_UNAVAILABLE, EPROTO, "cannot start a call on %s: %s", c->target,
                        nghttp2_strerror(id));
    }
    s->stream_id = id;
    s->next = c->streams;
    if (c->streams)
        c->streams->prev = s;
    c->streams = s;
    client_fill(c);
    client_write(c);
    *out = s;
    return 0;
}

/* Milliseconds to wait given the caller's limit (-1 = none) and the deadline. */
static int wait_budget(rpc_stream *s, int64_t wait_until)
{
    int64_t now = time_monotonic_ms();
    int64_t until = wait_until;
    if (s->deadline) {
        int64_t d = s->deadline + DEADLINE_GRACE_MS;
        if (until < 0 || d < until)
            until = d;
    }
    if (until < 0)
        return -1;
    if (until <= now)
        return 0;
    return until - now > 60000 ? 60000 : (int)(until - now);
}

static bool stream_check_deadline(rpc_stream *s)
{
    if (!s->deadline || s->closed || time_monotonic_ms() < s->deadline + DEADLINE_GRACE_MS)
        return false;
    stream_set_fail(s, HYPR_DEADLINE_EXCEEDED, ETIMEDOUT, "deadline exceeded");
    if (s->c && !s->h2_closed) {
        nghttp2_submit_rst_stream(s->c->session, NGHTTP2_FLAG_NONE, s->stream_id, NGHTTP2_CANCEL);
        client_fill(s->c);
        client_write(s->c);
    }
    return true;
}

int rpc_stream_send(rpc_stream *s, const ProtobufCMessage *msg, hypr_error *err)
{
    if (s->closed) {
        int r = stream_result(s, err);
        return r < 0 ? r : hypr_err(err, HYPR_INTERNAL, EPIPE, "the call has already ended");
    }
    if (s->send_closed)
        return hypr_err(err, HYPR_INTERNAL, EPIPE, "sending after close_send");
    rpc_client *c = s->c;
    size_t size = protobuf_c_message_get_packed_size(msg);
    if (size > UINT32_MAX)
        return hypr_err(err, HYPR_RESOURCE_EXHAUSTED, EMSGSIZE, "message of %zu bytes is too big",
                        size);
    buf_reserve(&s->out, 5 + size);
    uint8_t *p = (uint8_t *)s->out.data + s->out.len;
    p[0] = 0;
    p[1] = (uint8_t)(size >> 24);
    p[2] = (uint8_t)(size >> 16);
    p[3] = (uint8_t)(size >> 8);
    p[4] = (uint8_t)size;
    protobuf_c_message_pack(msg, p + 5);
    s->out.len += 5 + size;
    nghttp2_session_resume_data(c->session, s->stream_id);
    client_fill(c);
    client_write(c);
    while (!s->closed && s->out.len - s->out_off > SEND_HIGH_WATER) {
        if (stream_check_deadline(s))
            break;
        client_pump(c, wait_budget(s, -1));
    }
    if (s->closed) {
        int r = stream_result(s, err);
        return r < 0 ? r : hypr_err(err, HYPR_INTERNAL, EPIPE, "the call has already ended");
    }
    return 0;
}

int rpc_stream_close_send(rpc_stream *s, hypr_error *err)
{
    if (s->send_closed || s->closed)
        return 0;
    s->send_closed = true;
    nghttp2_session_resume_data(s->c->session, s->stream_id);
    client_fill(s->c);
    client_write(s->c);
    return 0;
}

int rpc_stream_recv(rpc_stream *s, const ProtobufCMessageDescriptor *desc, ProtobufCMessage **msg,
                    int wait_ms, hypr_error *err)
{
    *msg = NULL;
    int64_t wait_until = wait_ms < 0 ? -1 : time_monotonic_ms() + wait_ms;
    bool pumped = false;
    for (;;) {
        if (s->head) {
            msg_item *it = s->head;
            s->head = it->next;
            if (!s->head)
                s->tail = NULL;
            ProtobufCMessage *m = protobuf_c_message_unpack(desc, NULL, it->len, it->data);
            free(it->data);
            free(it);
            if (!m)
                return hypr_err(err, HYPR_INTERNAL, EBADMSG, "cannot decode the %s response",
                                desc->name);
            *msg = m;
            return 1;
        }
        if (s->closed || !s->c)
            return stream_result(s, err);
        if (stream_check_deadline(s))
            continue;
        int budget = wait_budget(s, wait_until);
        if (budget == 0 && pumped && wait_until >= 0 && time_monotonic_ms() >= wait_until)
            return -ETIMEDOUT;
        client_pump(s->c, budget);
        pumped = true;
    }
}

void rpc_stream_free(rpc_stream *s)
{
    if (!s)
        return;
    rpc_client *c = s->c;
    if (!c || s->h2_closed || c->dead) {
        stream_release(s);
        return;
    }
    /* nghttp2 may still call into the stream until it is closed: keep the
     * struct as an orphan and let on_stream_close (or the client) free it. */
    s->orphan = true;
    stream_drop_messages(s);
    rpc_framer_free(&s->framer);
    buf_free(&s->out);
    s->out_off = 0;
    nghttp2_submit_rst_stream(c->session, NGHTTP2_FLAG_NONE, s->stream_id, NGHTTP2_CANCEL);
    client_fill(c);
    client_write(c);
}

int rpc_client_unary(rpc_client *c, const char *path, const ProtobufCMessage *req,
                     const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp,
                     int64_t timeout_ms, hypr_error *err)
{
    *resp = NULL;
    rpc_stream *s;
    int r = rpc_client_open(c, path, timeout_ms, &s, err);
    if (r < 0)
        return r;
    ProtobufCMessage *m = NULL;
    r = rpc_stream_send(s, req, err);
    if (r == 0)
        r = rpc_stream_close_send(s, err);
    if (r == 0)
        r = rpc_stream_recv(s, resp_desc, &m, -1, err);
    if (r == 0) {
        r = hypr_err(err, HYPR_INTERNAL, EPROTO, "%s: no response message", path);
    } else if (r == 1) {
        ProtobufCMessage *extra = NULL;
        r = rpc_stream_recv(s, resp_desc, &extra, -1, err);
        if (r == 1) {
            protobuf_c_message_free_unpacked(extra, NULL);
            r = hypr_err(err, HYPR_INTERNAL, EPROTO, "%s: more than one response message", path);
        }
    }
    rpc_stream_free(s);
    if (r < 0) {
        if (m)
            protobuf_c_message_free_unpacked(m, NULL);
        return r;
    }
    *resp = m;
    return 0;
}
