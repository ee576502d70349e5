/* TCP side of the port-forward proxy: zero-copy relay with splice(2).
 *
 * Each accepted client gets its own non-blocking connection to the target. A
 * direction (client -> target, target -> client) moves bytes socket -> pipe ->
 * socket with splice, so they never enter userspace. The sockets are raw fds
 * driven by a uv_poll_t each (libuv forbids polling an fd a uv_tcp_t owns, so
 * the accepted uv_tcp_t hands over a dup of its fd and closes).
 *
 * Backpressure: a direction reads its source only while its pipe is empty; when
 * the destination refuses (EAGAIN) with bytes left in the pipe, the source stops
 * being polled for readable and the destination is polled for writable until
 * the pipe is drained. So a direction holds at most RELAY_PIPE_SIZE bytes
 * (<= NET_PROXY_HIGH_WATER), and a stalled reader stalls its writer through
 * TCP's own flow control.
 *
 * Half-close: EOF from a source becomes shutdown(SHUT_WR) of the destination
 * once the pipe is empty; the connection closes when both directions are shut.
 *
 * Pipes come from a small per-proxy pool and are held only while they carry
 * bytes, so an idle connection costs two fds. Where pipes are unavailable
 * (pipe2 fails, e.g. EMFILE, or splice is refused with EINVAL/ENOSYS) a
 * direction falls back to read/send through a 64 KiB heap buffer, with the same
 * rules. HYPR_PROXY_SPLICE=0 forces that path (tests). */
#define LOG_MODULE "net"
#include "net/proxy-private.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <unistd.h>

#define RELAY_PIPE_SIZE NET_PROXY_HIGH_WATER
#define COPY_BUF_SIZE   (64 * 1024)
#define PIPE_POOL_MAX   16
#define BUF_POOL_MAX    16
#define PAGE_SIZE_MIN   4096 /* a pipe holds at least one page */
/* Fill/drain rounds per poll event before other connections get their turn. */
#define RELAY_ROUNDS 16

typedef struct tcp_conn tcp_conn;

typedef struct tcp_side {
    uv_poll_t poll;
    tcp_conn *conn;
    int fd;
    int events; /* what poll watches now: UV_READABLE | UV_WRITABLE */
    bool poll_open;
} tcp_side;

/* One direction: bytes read from src and not yet written to dst, held in a pipe
 * (pipe_rd/pipe_wr) or, in the fallback, a heap buffer (buf + off). */
typedef struct relay_chan {
    tcp_side *src, *dst;
    int pipe_rd, pipe_wr; /* -1: none held */
    size_t cap;           /* capacity of the pipe or buffer held */
    char *buf;
    size_t off;
    size_t len;   /* bytes held */
    bool eof;     /* src sent EOF */
    bool shut;    /* ... and dst's write side is shut */
    bool no_pipe; /* pipes failed for this direction: use the buffer */
} relay_chan;

struct tcp_conn {
    net_proxy *proxy;
    tcp_conn *prev, *next;
    uv_tcp_t accepted; /* only until its fd is duplicated into client.fd */
    tcp_side client, target;
    relay_chan up, down; /* client -> target, target -> client */
    bool connected;
    bool closing;
    int open_handles;
};

typedef struct relay_pipe {
    int rd, wr;
    size_t cap;
} relay_pipe;

typedef struct pooled_buf {
    struct pooled_buf *next;
} pooled_buf;

struct proxy_tcp {
    uv_tcp_t *listener;
    tcp_conn *conns;
    size_t n_conns;
    bool no_splice; /* splice refused once (or HYPR_PROXY_SPLICE=0): copy */
    relay_pipe pipes[PIPE_POOL_MAX];
    size_t n_pipes;
    pooled_buf *bufs;
    size_t n_bufs;
};

/* ---- pipes and buffers --------------------------------------------------------- */

static void queued_add(net_proxy *p, size_t n)
{
    p->stats.queued += n;
    if (p->stats.queued > p->stats.queued_peak)
        p->stats.queued_peak = p->stats.queued;
}

static bool pipe_open(proxy_tcp *t, relay_chan *ch)
{
    if (t->n_pipes > 0) {
        relay_pipe *pp = &t->pipes[--t->n_pipes];
        ch->pipe_rd = pp->rd;
        ch->pipe_wr = pp->wr;
        ch->cap = pp->cap;
        return true;
    }
    int fds[2];
    if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) < 0)
        return false;
    /* Fails above pipe-max-size or the user's pipe quota: the default pipe
     * still works, only with more rounds per megabyte. */
    int size = fcntl(fds[1], F_SETPIPE_SZ, RELAY_PIPE_SIZE);
    if (size < 0)
        size = fcntl(fds[1], F_GETPIPE_SZ);
    ch->pipe_rd = fds[0];
    ch->pipe_wr = fds[1];
    ch->cap = size > 0 && size <= RELAY_PIPE_SIZE ? (size_t)size : PAGE_SIZE_MIN;
    return true;
}

static void pipe_close(proxy_tcp *t, relay_chan *ch, bool reuse)
{
    if (reuse && t->n_pipes < PIPE_POOL_MAX) {
        t->pipes[t->n_pipes++] = (relay_pipe){ch->pipe_rd, ch->pipe_wr, ch->cap};
    } else {
        close(ch->pipe_rd);
        close(ch->pipe_wr);
    }
    ch->pipe_rd = ch->pipe_wr = -1;
}

/* Takes a pipe (or the fallback buffer) for a direction about to read. */
static void chan_acquire(proxy_tcp *t, relay_chan *ch)
{
    if (ch->pipe_rd >= 0 || ch->buf)
        return;
    if (!t->no_splice && !ch->no_pipe) {
        if (pipe_open(t, ch))
            return;
        ch->no_pipe = true;
    }
    pooled_buf *b = t->bufs;
    if (b) {
        t->bufs = b->next;
        t->n_bufs--;
        ch->buf = (char *)b;
    } else {
        ch->buf = xmalloc(COPY_BUF_SIZE);
    }
    ch->cap = COPY_BUF_SIZE;
    ch->off = 0;
}

/* Gives back what an empty direction holds; with bytes still in it (a closing
 * connection) the pipe is closed instead of pooled. */
static void chan_release(net_proxy *p, relay_chan *ch)
{
    proxy_tcp *t = p->tcp;
    p->stats.queued -= ch->len;
    if (ch->pipe_rd >= 0)
        pipe_close(t, ch, ch->len == 0);
    if (ch->buf) {
        if (t->n_bufs < BUF_POOL_MAX) {
            pooled_buf *b = (pooled_buf *)ch->buf;
            b->next = t->bufs;
            t->bufs = b;
            t->n_bufs++;
        } else {
            free(ch->buf);
        }
        ch->buf = NULL;
    }
    ch->len = 0;
}

/* src -> pipe or buffer: bytes read, 0 at EOF, or -errno. */
static ssize_t chan_fill(proxy_tcp *t, relay_chan *ch)
{
    chan_acquire(t, ch);
    if (ch->pipe_wr >= 0) {
        ssize_t n = splice(ch->src->fd, NULL, ch->pipe_wr, NULL, ch->cap,
                           SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (n >= 0)
            return n;
        if (errno != EINVAL && errno != ENOSYS)
            return -errno;
        /* The kernel cannot splice these sockets: copy from now on. */
        log_debug("splice: %s; relaying through userspace buffers", strerror(errno));
        t->no_splice = true;
        pipe_close(t, ch, false);
        chan_acquire(t, ch);
    }
    ch->off = 0;
    ssize_t n = read(ch->src->fd, ch->buf, ch->cap);
    return n < 0 ? -errno : n;
}

/* pipe or buffer -> dst: bytes written or -errno. */
static ssize_t chan_drain(relay_chan *ch)
{
    ssize_t n;
    if (ch->pipe_rd >= 0) {
        n = splice(ch->pipe_rd, NULL, ch->dst->fd, NULL, ch->len,
                   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    } else {
        n = send(ch->dst->fd, ch->buf + ch->off, ch->len, MSG_NOSIGNAL);
        if (n > 0)
            ch->off += (size_t)n;
    }
    return n < 0 ? -errno : n;
}

/* ---- connections ------------------------------------------------------------- */

static void conn_handle_closed(uv_handle_t *h)
{
    tcp_conn *c = h->data;
    if (--c->open_handles > 0)
        return;
    net_proxy *p = c->proxy;
    free(c);
    proxy_put(p);
}

static void side_close(tcp_side *s)
{
    if (s->poll_open)
        uv_close((uv_handle_t *)&s->poll, conn_handle_closed);
    s->poll_open = false;
    if (s->fd >= 0)
        close(s->fd); /* after uv_close: libuv has stopped watching it */
    s->fd = -1;
}

/* Closes both sockets now (unsent bytes are dropped: the peer may see a reset);
 * the connection is freed once its handles' close callbacks have run. */
static void conn_close(tcp_conn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    net_proxy *p = c->proxy;
    proxy_tcp *t = p->tcp;
    DLIST_REMOVE(t->conns, c);
    t->n_conns--;
    chan_release(p, &c->up);
    chan_release(p, &c->down);
    if (!uv_is_closing((uv_handle_t *)&c->accepted))
        uv_close((uv_handle_t *)&c->accepted, conn_handle_closed);
    side_close(&c->client);
    side_close(&c->target);
}

/* Moves what ch's source has to its destination until the source has no more
 * (EAGAIN), the destination takes no more, or RELAY_ROUNDS is spent. 0 or
 * -errno (the connection is broken). */
static int relay(tcp_conn *c, relay_chan *ch)
{
    net_proxy *p = c->proxy;
    int r = 0;
    for (int round = 0; round < RELAY_ROUNDS; round++) {
        if (ch->len > 0) {
            ssize_t n = chan_drain(ch);
            if (n == -EAGAIN || n == -EINTR)
                break; /* dst is full: wait until it is writable */
            if (n < 0) {
                r = (int)n;
                break;
            }
            ch->len -= (size_t)n;
            p->stats.queued -= (size_t)n;
            continue;
        }
        if (ch->eof)
            break;
        ssize_t n = chan_fill(p->tcp, ch);
        if (n == -EAGAIN || n == -EINTR)
            break; /* src has nothing now */
        if (n < 0) {
            r = (int)n;
            break;
        }
        if (n == 0) {
            /* Nothing is held (a direction reads only when empty), so the EOF
             * passes on now; no event would come back for it later. */
            ch->eof = ch->shut = true;
            if (shutdown(ch->dst->fd, SHUT_WR) < 0)
                r = -errno;
            break;
        }
        ch->len = (size_t)n;
        queued_add(p, ch->len);
        p->stats.bytes_relayed += (uint64_t)n;
    }
    if (ch->len == 0)
        chan_release(p, ch);
    return r;
}

static void side_poll_cb(uv_poll_t *h, int status, int events);

/* A socket is watched for readable while its outgoing direction is empty and
 * open, for writable while its incoming direction holds bytes. */
static int side_update(tcp_side *s, relay_chan *out, relay_chan *in)
{
    int ev = 0;
    if (!out->eof && out->len == 0)
        ev |= UV_READABLE;
    if (in->len > 0)
        ev |= UV_WRITABLE;
    if (ev == s->events)
        return 0;
    s->events = ev;
    return ev ? uv_poll_start(&s->poll, ev, side_poll_cb) : uv_poll_stop(&s->poll);
}

static void conn_update(tcp_conn *c)
{
    if (c->up.shut && c->down.shut) {
        conn_close(c); /* both directions finished */
        return;
    }
    if (side_update(&c->client, &c->up, &c->down) < 0 ||
        side_update(&c->target, &c->down, &c->up) < 0)
        conn_close(c);
}

/* The target's connect finished (writable, or an error from poll). */
static void connect_done(tcp_conn *c)
{
    int e = 0;
    socklen_t len = sizeof(e);
    if (getsockopt(c->target.fd, SOL_SOCKET, SO_ERROR, &e, &len) < 0)
        e = errno;
    if (e != 0) {
        log_debug("%s: connect to target: %s", c->proxy->desc, strerror(e));
        conn_close(c);
        return;
    }
    c->connected = true;
    conn_update(c);
}

static void side_poll_cb(uv_poll_t *h, int status, int events)
{
    tcp_side *s = container_of(h, tcp_side, poll);
    tcp_conn *c = s->conn;
    if (c->closing)
        return;
    if (!c->connected) {
        connect_done(c); /* only the connecting target is watched */
        return;
    }
    if (status < 0) {
        conn_close(c); /* POLLERR: reset */
        return;
    }
    relay_chan *out = s == &c->client ? &c->up : &c->down;
    relay_chan *in = s == &c->client ? &c->down : &c->up;
    int r = 0;
    if (events & UV_WRITABLE)
        r = relay(c, in);
    if (r == 0 && (events & UV_READABLE))
        r = relay(c, out);
    if (r < 0) {
        conn_close(c); /* reset, or a write to a peer that is gone */
        return;
    }
    conn_update(c);
}

static int side_open(tcp_conn *c, tcp_side *s, int fd)
{
    s->fd = fd;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    int r = uv_poll_init(c->proxy->loop, &s->poll, fd);
    if (r < 0)
        return r;
    s->poll.data = c;
    s->poll_open = true;
    c->open_handles++;
    return 0;
}

static void chan_init(relay_chan *ch, tcp_side *src, tcp_side *dst)
{
    ch->src = src;
    ch->dst = dst;
    ch->pipe_rd = ch->pipe_wr = -1;
}

/* Takes the accepted socket out of libuv and starts the target's connect. */
static int conn_start(tcp_conn *c)
{
    net_proxy *p = c->proxy;
    uv_os_fd_t accepted;
    int r = uv_fileno((uv_handle_t *)&c->accepted, &accepted);
    if (r < 0)
        return r;
    int fd = fcntl(accepted, F_DUPFD_CLOEXEC, 0); /* shares O_NONBLOCK */
    if (fd < 0)
        return -errno;
    uv_close((uv_handle_t *)&c->accepted, conn_handle_closed);
    r = side_open(c, &c->client, fd);
    if (r < 0) {
        close(fd);
        return r;
    }
    int family = p->target_addr.ss_family;
    fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    r = side_open(c, &c->target, fd);
    if (r < 0) {
        close(fd);
        return r;
    }
    socklen_t len = family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    if (connect(fd, (const struct sockaddr *)&p->target_addr, len) == 0) {
        c->connected = true;
        conn_update(c);
        return 0;
    }
    if (errno != EINPROGRESS)
        return -errno;
    c->target.events = UV_WRITABLE;
    return uv_poll_start(&c->target.poll, UV_WRITABLE, side_poll_cb);
}

static void listener_cb(uv_stream_t *server, int status)
{
    net_proxy *p = server->data;
    proxy_tcp *t = p->tcp;
    if (status < 0 || p->stopping) {
        if (status < 0)
            log_warn("%s: accept: %s", p->desc, uv_strerror(status));
        return;
    }

    tcp_conn *c = xcalloc(1, sizeof(*c));
    c->proxy = p;
    c->client.conn = c;
    c->target.conn = c;
    c->client.fd = c->target.fd = -1;
    chan_init(&c->up, &c->client, &c->target);
    chan_init(&c->down, &c->target, &c->client);
    uv_tcp_init(p->loop, &c->accepted);
    c->accepted.data = c;
    c->open_handles = 1;
    p->open++;
    c->next = t->conns;
    if (t->conns)
        t->conns->prev = c;
    t->conns = c;
    t->n_conns++;

    int r = uv_accept(server, (uv_stream_t *)&c->accepted);
    if (r < 0 || t->n_conns > NET_PROXY_MAX_TCP_CONNS) {
        conn_close(c);
        return;
    }
    r = conn_start(c);
    if (r < 0) {
        log_debug("%s: connect to target: %s", p->desc, uv_strerror(r));
        conn_close(c);
    }
}

/* ---- start / stop ------------------------------------------------------------ */

int proxy_tcp_start(net_proxy *p, hypr_error *err)
{
    proxy_tcp *t = xcalloc(1, sizeof(*t));
    p->tcp = t;
    const char *splice_env = getenv("HYPR_PROXY_SPLICE");
    t->no_splice = splice_env && strcmp(splice_env, "0") == 0;
    t->listener = xcalloc(1, sizeof(*t->listener));
    uv_tcp_init(p->loop, t->listener);
    t->listener->data = p;
    p->open++;
    int r = uv_tcp_bind(t->listener, (const struct sockaddr *)&p->host_addr, 0);
    /* libuv reports EADDRINUSE from bind() only at listen time. */
    if (r == 0)
        r = uv_listen((uv_stream_t *)t->listener, 511, listener_cb);
    if (r < 0)
        return proxy_bind_error(p, r, err);
    p->port = proxy_bound_port((uv_handle_t *)t->listener, false);
    return 0;
}

void proxy_tcp_stop(net_proxy *p)
{
    proxy_tcp *t = p->tcp;
    if (!t)
        return;
    if (t->listener)
        uv_close((uv_handle_t *)t->listener, proxy_handle_closed);
    t->listener = NULL;
    while (t->conns)
        conn_close(t->conns);
}

void proxy_tcp_free(net_proxy *p)
{
    proxy_tcp *t = p->tcp;
    if (!t)
        return;
    for (size_t i = 0; i < t->n_pipes; i++) {
        close(t->pipes[i].rd);
        close(t->pipes[i].wr);
    }
    while (t->bufs) {
        pooled_buf *b = t->bufs;
        t->bufs = b->next;
        free(b);
    }
    free(t);
    p->tcp = NULL;
}

size_t proxy_tcp_connections(const net_proxy *p)
{
    return p->tcp ? p->tcp->n_conns : 0;
}
