/* Userspace port-forward proxy on the daemon's libuv loop.
 *
 * TCP: each accepted client gets its own connection to the target; bytes are
 * relayed both ways with backpressure (a side stops being read while the other
 * side has more than NET_PROXY_HIGH_WATER bytes waiting to be written) and
 * half-close (EOF from one side becomes a shutdown of the other's write side).
 * Read buffers are 64 KiB, taken from a small per-proxy pool only while a read
 * is delivering data, so an idle connection holds no buffer.
 *
 * UDP: one host socket; per client address a flow with its own socket connected
 * to the target, whose replies go back to that client. Flows expire when idle.
 *
 * Memory is owned by close callbacks: a connection is freed when both of its
 * handles have closed, the proxy when all of its handles, connections and flows
 * have. */
#define LOG_MODULE "net"
#include "net/net.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>

#define READ_BUF_SIZE    (64 * 1024)
#define BUF_POOL_MAX     64
#define UDP_BUCKETS      1024
#define UDP_SEND_QUEUE   (1024 * 1024) /* drop datagrams above this much queued */
#define UDP_SWEEP_MIN_MS 50

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

typedef struct tcp_conn tcp_conn;
typedef struct udp_flow udp_flow;

/* One direction's destination: the socket written to and its accounting. */
typedef struct tcp_side {
    uv_tcp_t tcp;
    tcp_conn *conn;
    size_t queued;    /* bytes handed to uv_write on this socket, not yet done */
    bool reading;     /* uv_read_start is active on this socket */
    bool paused;      /* reading stopped for backpressure on the other side */
    bool eof;         /* this socket sent EOF */
    bool shut_issued; /* uv_shutdown on this socket was called */
    bool shut_done;   /* ... and completed */
} tcp_side;

struct tcp_conn {
    net_proxy *proxy;
    tcp_conn *prev, *next;
    tcp_side client, target;
    uv_connect_t connect_req;
    uv_shutdown_t shut_client, shut_target;
    bool connected;
    bool closing;
    int open_handles;
};

/* A pooled read buffer that doubles as the write request carrying its data. */
typedef struct relay_buf {
    uv_write_t req;
    tcp_side *dst;
    tcp_side *src;
    size_t len;
    struct relay_buf *next_free;
    char data[READ_BUF_SIZE];
} relay_buf;

struct udp_flow {
    net_proxy *proxy;
    udp_flow *hnext;              /* hash chain */
    udp_flow *prev, *next;        /* all flows */
    struct sockaddr_storage peer; /* the client */
    uv_udp_t sock;                /* connected to the target */
    uint64_t last_used;
    bool closing;
};

typedef struct udp_send_req {
    uv_udp_send_t req;
    net_proxy *proxy;
    size_t len;
    char data[];
} udp_send_req;

struct net_proxy {
    uv_loop_t *loop;
    bool udp;
    bool stopping;
    int open; /* handles, connections and flows not yet closed */
    struct sockaddr_storage host_addr, target_addr;
    uint16_t port;
    char *desc; /* "127.0.0.1:8080/tcp" */

    uv_tcp_t *listener;
    tcp_conn *conns;
    size_t n_conns;

    uv_udp_t *udp_sock;
    uv_timer_t *udp_timer;
    udp_flow *buckets[UDP_BUCKETS];
    udp_flow *flows;
    size_t n_flows;
    uint64_t udp_idle_ms;
    size_t udp_queued;
    char *udp_buf;

    relay_buf *pool;
    size_t pool_len;

    net_proxy_stats stats;
};

/* ---- lifetime ---------------------------------------------------------------- */

static void proxy_free(net_proxy *p)
{
    while (p->pool) {
        relay_buf *b = p->pool;
        p->pool = b->next_free;
        free(b);
    }
    free(p->udp_buf);
    free(p->desc);
    free(p);
}

static void proxy_put(net_proxy *p)
{
    p->open--;
    if (p->stopping && p->open == 0)
        proxy_free(p);
}

static void proxy_handle_closed(uv_handle_t *h)
{
    net_proxy *p = h->data;
    free(h);
    proxy_put(p);
}

static relay_buf *buf_get(net_proxy *p)
{
    relay_buf *b = p->pool;
    if (b) {
        p->pool = b->next_free;
        p->pool_len--;
        return b;
    }
    return xmalloc(sizeof(*b));
}

static void buf_put(net_proxy *p, relay_buf *b)
{
    if (p->pool_len >= BUF_POOL_MAX) {
        free(b);
        return;
    }
    b->next_free = p->pool;
    p->pool = b;
    p->pool_len++;
}

static void queued_add(net_proxy *p, size_t n)
{
    p->stats.queued += n;
    if (p->stats.queued > p->stats.queued_peak)
        p->stats.queued_peak = p->stats.queued;
}

/* ---- TCP --------------------------------------------------------------------- */

static void tcp_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static tcp_side *other_side(tcp_side *s)
{
    tcp_conn *c = s->conn;
    return s == &c->client ? &c->target : &c->client;
}

static void conn_handle_closed(uv_handle_t *h)
{
    tcp_side *s = h->data;
    tcp_conn *c = s->conn;
    if (--c->open_handles > 0)
        return;
    net_proxy *p = c->proxy;
    free(c);
    proxy_put(p);
}

/* Closes both sockets; pending writes, the connect and shutdowns complete with
 * UV_ECANCELED before the close callbacks run. */
static void conn_close(tcp_conn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    net_proxy *p = c->proxy;
    if (c->prev)
        c->prev->next = c->next;
    else
        p->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    p->n_conns--;
    uv_close((uv_handle_t *)&c->client.tcp, conn_handle_closed);
    uv_close((uv_handle_t *)&c->target.tcp, conn_handle_closed);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    tcp_side *s = h->data;
    relay_buf *b = buf_get(s->conn->proxy);
    *buf = uv_buf_init(b->data, sizeof(b->data));
}

static void side_read_start(tcp_side *s)
{
    if (s->reading || s->eof)
        return;
    if (uv_read_start((uv_stream_t *)&s->tcp, alloc_cb, tcp_read_cb) == 0)
        s->reading = true;
    else
        conn_close(s->conn);
}

static void side_read_stop(tcp_side *s)
{
    if (!s->reading)
        return;
    uv_read_stop((uv_stream_t *)&s->tcp);
    s->reading = false;
}

/* Both directions finished: each side sent EOF and got its write side shut. */
static void conn_maybe_done(tcp_conn *c)
{
    if (c->client.eof && c->target.eof && c->client.shut_done && c->target.shut_done)
        conn_close(c);
}

static void shutdown_cb(uv_shutdown_t *req, int status)
{
    tcp_side *s = req->data;
    tcp_conn *c = s->conn;
    if (status == UV_ECANCELED || c->closing)
        return;
    if (status < 0) {
        conn_close(c);
        return;
    }
    s->shut_done = true;
    conn_maybe_done(c);
}

/* src sent EOF: shut dst's write side once its queued writes have drained
 * (uv_shutdown waits for them). */
static void side_shutdown(tcp_side *dst)
{
    tcp_conn *c = dst->conn;
    if (dst->shut_issued)
        return;
    dst->shut_issued = true;
    uv_shutdown_t *req = dst == &c->client ? &c->shut_client : &c->shut_target;
    req->data = dst;
    if (uv_shutdown(req, (uv_stream_t *)&dst->tcp, shutdown_cb) < 0)
        conn_close(c);
}

static void write_cb(uv_write_t *req, int status)
{
    relay_buf *b = container_of(req, relay_buf, req);
    tcp_side *dst = b->dst, *src = b->src;
    tcp_conn *c = dst->conn;
    net_proxy *p = c->proxy;

    dst->queued -= b->len;
    p->stats.queued -= b->len;
    buf_put(p, b);
    if (status == UV_ECANCELED || c->closing)
        return;
    if (status < 0) {
        conn_close(c);
        return;
    }
    if (src->paused && dst->queued <= NET_PROXY_LOW_WATER) {
        src->paused = false;
        side_read_start(src);
    }
}

static void tcp_read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    tcp_side *src = stream->data;
    tcp_conn *c = src->conn;
    net_proxy *p = c->proxy;
    relay_buf *b = buf->base ? container_of(buf->base, relay_buf, data) : NULL;

    if (nread <= 0) {
        if (b)
            buf_put(p, b);
        if (nread == 0)
            return;
        if (nread == UV_EOF) {
            side_read_stop(src);
            src->eof = true;
            side_shutdown(other_side(src));
            return;
        }
        conn_close(c); /* reset or other error: both go */
        return;
    }

    tcp_side *dst = other_side(src);
    b->dst = dst;
    b->src = src;
    b->len = (size_t)nread;
    uv_buf_t out = uv_buf_init(b->data, (unsigned int)nread);
    if (uv_write(&b->req, (uv_stream_t *)&dst->tcp, &out, 1, write_cb) < 0) {
        buf_put(p, b);
        conn_close(c);
        return;
    }
    dst->queued += b->len;
    queued_add(p, b->len);
    p->stats.bytes_relayed += b->len;
    if (dst->queued > NET_PROXY_HIGH_WATER) {
        side_read_stop(src);
        src->paused = true;
    }
}

static void connect_cb(uv_connect_t *req, int status)
{
    tcp_conn *c = req->data;
    if (status == UV_ECANCELED || c->closing)
        return;
    if (status < 0) {
        log_debug("%s: connect to target: %s", c->proxy->desc, uv_strerror(status));
        conn_close(c);
        return;
    }
    c->connected = true;
    uv_tcp_nodelay(&c->target.tcp, 1);
    side_read_start(&c->client);
    side_read_start(&c->target);
}

static void listener_cb(uv_stream_t *server, int status)
{
    net_proxy *p = server->data;
    if (status < 0 || p->stopping) {
        if (status < 0)
            log_warn("%s: accept: %s", p->desc, uv_strerror(status));
        return;
    }

    tcp_conn *c = xcalloc(1, sizeof(*c));
    c->proxy = p;
    c->client.conn = c;
    c->target.conn = c;
    uv_tcp_init(p->loop, &c->client.tcp);
    uv_tcp_init(p->loop, &c->target.tcp);
    c->client.tcp.data = &c->client;
    c->target.tcp.data = &c->target;
    c->open_handles = 2;
    p->open++;
    c->next = p->conns;
    if (p->conns)
        p->conns->prev = c;
    p->conns = c;
    p->n_conns++;

    int r = uv_accept(server, (uv_stream_t *)&c->client.tcp);
    if (r < 0 || p->n_conns > NET_PROXY_MAX_TCP_CONNS) {
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->client.tcp, 1);
    c->connect_req.data = c;
    r = uv_tcp_connect(&c->connect_req, &c->target.tcp, (const struct sockaddr *)&p->target_addr,
                       connect_cb);
    if (r < 0) {
        log_debug("%s: connect to target: %s", p->desc, uv_strerror(r));
        conn_close(c);
    }
}

/* ---- UDP --------------------------------------------------------------------- */

static bool addr_equal(const struct sockaddr_storage *a, const struct sockaddr *b)
{
    if (a->ss_family != b->sa_family)
        return false;
    if (b->sa_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
    return x->sin6_port == y->sin6_port &&
           memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
}

static size_t addr_hash(const struct sockaddr *a)
{
    uint32_t h = 2166136261u;
    const uint8_t *bytes;
    size_t n;
    uint16_t port;
    if (a->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const void *)a;
        bytes = (const uint8_t *)&in->sin_addr;
        n = sizeof(in->sin_addr);
        port = in->sin_port;
    } else {
        const struct sockaddr_in6 *in6 = (const void *)a;
        bytes = (const uint8_t *)&in6->sin6_addr;
        n = sizeof(in6->sin6_addr);
        port = in6->sin6_port;
    }
    for (size_t i = 0; i < n; i++)
        h = (h ^ bytes[i]) * 16777619u;
    h = (h ^ (port & 0xff)) * 16777619u;
    h = (h ^ (port >> 8)) * 16777619u;
    return h % UDP_BUCKETS;
}

static void flow_handle_closed(uv_handle_t *h)
{
    udp_flow *f = h->data;
    net_proxy *p = f->proxy;
    free(f);
    proxy_put(p);
}

static void flow_close(udp_flow *f)
{
    if (f->closing)
        return;
    f->closing = true;
    net_proxy *p = f->proxy;
    udp_flow **pp = &p->buckets[addr_hash((const struct sockaddr *)&f->peer)];
    while (*pp && *pp != f)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = f->hnext;
    if (f->prev)
        f->prev->next = f->next;
    else
        p->flows = f->next;
    if (f->next)
        f->next->prev = f->prev;
    p->n_flows--;
    uv_close((uv_handle_t *)&f->sock, flow_handle_closed);
}

static void udp_send_done(uv_udp_send_t *req, int status)
{
    udp_send_req *s = container_of(req, udp_send_req, req);
    s->proxy->udp_queued -= s->len;
    free(s);
}

/* Sends now when the socket takes it, else queues a copy (bounded: drops above
 * UDP_SEND_QUEUE, as a congested network would). */
static void udp_send(net_proxy *p, uv_udp_t *sock, const char *data, size_t len,
                     const struct sockaddr *to)
{
    uv_buf_t b = uv_buf_init((char *)data, (unsigned int)len);
    int r = uv_udp_try_send(sock, &b, 1, to);
    if (r >= 0)
        return;
    if (r != UV_EAGAIN || p->udp_queued + len > UDP_SEND_QUEUE) {
        p->stats.udp_dropped++;
        return;
    }
    udp_send_req *s = xmalloc(sizeof(*s) + len);
    memcpy(s->data, data, len);
    s->proxy = p;
    s->len = len;
    b = uv_buf_init(s->data, (unsigned int)len);
    if (uv_udp_send(&s->req, sock, &b, 1, to, udp_send_done) < 0) {
        free(s);
        p->stats.udp_dropped++;
        return;
    }
    p->udp_queued += len;
}

/* Datagrams are consumed (sent or copied) inside the receive callbacks, so one
 * buffer serves every UDP socket of the proxy. */
static void host_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    net_proxy *p = h->data;
    *buf = uv_buf_init(p->udp_buf, READ_BUF_SIZE);
}

static void flow_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    udp_flow *f = h->data;
    *buf = uv_buf_init(f->proxy->udp_buf, READ_BUF_SIZE);
}

static void flow_recv_cb(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *a,
                         unsigned flags)
{
    udp_flow *f = h->data;
    net_proxy *p = f->proxy;
    if (nread < 0) {
        /* ICMP port unreachable and the like: the flow stays until idle. */
        return;
    }
    if (nread == 0 && a == NULL)
        return;
    if (f->closing || p->stopping)
        return;
    f->last_used = uv_now(p->loop);
    p->stats.bytes_relayed += (uint64_t)nread;
    udp_send(p, p->udp_sock, buf->base, (size_t)nread, (const struct sockaddr *)&f->peer);
}

static udp_flow *flow_new(net_proxy *p, const struct sockaddr *client)
{
    if (p->n_flows >= NET_PROXY_UDP_MAX_FLOWS)
        return NULL;
    udp_flow *f = xcalloc(1, sizeof(*f));
    f->proxy = p;
    memcpy(&f->peer, client,
           client->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                         : sizeof(struct sockaddr_in));
    if (uv_udp_init(p->loop, &f->sock) < 0) {
        free(f);
        return NULL;
    }
    f->sock.data = f;
    p->open++;
    size_t bucket = addr_hash(client);
    f->hnext = p->buckets[bucket];
    p->buckets[bucket] = f;
    f->next = p->flows;
    if (p->flows)
        p->flows->prev = f;
    p->flows = f;
    p->n_flows++;
    f->last_used = uv_now(p->loop);
    int r = uv_udp_connect(&f->sock, (const struct sockaddr *)&p->target_addr);
    if (r == 0)
        r = uv_udp_recv_start(&f->sock, flow_alloc_cb, flow_recv_cb);
    if (r < 0) {
        log_debug("%s: flow to target: %s", p->desc, uv_strerror(r));
        flow_close(f);
        return NULL;
    }
    return f;
}

static void host_recv_cb(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf,
                         const struct sockaddr *from, unsigned flags)
{
    net_proxy *p = h->data;
    if (nread < 0 || from == NULL || p->stopping)
        return;
    if (flags & UV_UDP_PARTIAL) {
        p->stats.udp_dropped++;
        return;
    }
    udp_flow *f = p->buckets[addr_hash(from)];
    while (f && !addr_equal(&f->peer, from))
        f = f->hnext;
    if (!f) {
        f = flow_new(p, from);
        if (!f) {
            p->stats.udp_dropped++;
            return;
        }
    }
    f->last_used = uv_now(p->loop);
    p->stats.bytes_relayed += (uint64_t)nread;
    udp_send(p, &f->sock, buf->base, (size_t)nread, NULL);
}

static void udp_sweep_cb(uv_timer_t *t)
{
    net_proxy *p = t->data;
    uint64_t now = uv_now(p->loop);
    udp_flow *f = p->flows;
    while (f) {
        udp_flow *next = f->next;
        if (now - f->last_used >= p->udp_idle_ms)
            flow_close(f);
        f = next;
    }
}

static void udp_sweep_arm(net_proxy *p)
{
    uint64_t every = p->udp_idle_ms / 4;
    if (every < UDP_SWEEP_MIN_MS)
        every = UDP_SWEEP_MIN_MS;
    uv_timer_start(p->udp_timer, udp_sweep_cb, every, every);
}

/* ---- start / stop ------------------------------------------------------------ */

static int parse_addr(const char *ip, uint16_t port, struct sockaddr_storage *out)
{
    memset(out, 0, sizeof(*out));
    if (uv_ip4_addr(ip, port, (struct sockaddr_in *)out) == 0)
        return 0;
    if (strchr(ip, ':') && uv_ip6_addr(ip, port, (struct sockaddr_in6 *)out) == 0)
        return 0;
    return -EINVAL;
}

static int bind_error(net_proxy *p, int uverr, hypr_error *err)
{
    int e = -uverr;
    switch (uverr) {
    case UV_EADDRINUSE:
        return hypr_err(err, HYPR_FAILED_PRECONDITION, e, "host port %s is already in use",
                        p->desc);
    case UV_EACCES:
    case UV_EPERM:
        return hypr_err(err, HYPR_PERMISSION_DENIED, e, "host port %s: permission denied", p->desc);
    case UV_EADDRNOTAVAIL:
        return hypr_err(err, HYPR_INVALID_ARGUMENT, e,
                        "host port %s: the address is not one of this host's", p->desc);
    default:
        return hypr_err(err, HYPR_INTERNAL, e, "host port %s: %s", p->desc, uv_strerror(uverr));
    }
}

static uint16_t bound_port(uv_handle_t *h, bool udp)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    int r = udp ? uv_udp_getsockname((uv_udp_t *)h, (struct sockaddr *)&ss, &len)
                : uv_tcp_getsockname((uv_tcp_t *)h, (struct sockaddr *)&ss, &len);
    if (r < 0)
        return 0;
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static int start_tcp(net_proxy *p, hypr_error *err)
{
    p->listener = xcalloc(1, sizeof(*p->listener));
    uv_tcp_init(p->loop, p->listener);
    p->listener->data = p;
    p->open++;
    int r = uv_tcp_bind(p->listener, (const struct sockaddr *)&p->host_addr, 0);
    /* libuv reports EADDRINUSE from bind() only at listen time. */
    if (r == 0)
        r = uv_listen((uv_stream_t *)p->listener, 511, listener_cb);
    if (r < 0)
        return bind_error(p, r, err);
    p->port = bound_port((uv_handle_t *)p->listener, false);
    return 0;
}

static int start_udp(net_proxy *p, hypr_error *err)
{
    p->udp_buf = xmalloc(READ_BUF_SIZE);
    p->udp_sock = xcalloc(1, sizeof(*p->udp_sock));
    uv_udp_init(p->loop, p->udp_sock);
    p->udp_sock->data = p;
    p->open++;
    p->udp_timer = xcalloc(1, sizeof(*p->udp_timer));
    uv_timer_init(p->loop, p->udp_timer);
    p->udp_timer->data = p;
    p->open++;
    int r = uv_udp_bind(p->udp_sock, (const struct sockaddr *)&p->host_addr, 0);
    if (r < 0)
        return bind_error(p, r, err);
    p->port = bound_port((uv_handle_t *)p->udp_sock, true);
    r = uv_udp_recv_start(p->udp_sock, host_alloc_cb, host_recv_cb);
    if (r < 0)
        return hypr_err(err, HYPR_INTERNAL, -r, "host port %s: %s", p->desc, uv_strerror(r));
    udp_sweep_arm(p);
    return 0;
}

int net_proxy_start(uv_loop_t *loop, const net_forward *fwd, net_proxy **out, hypr_error *err)
{
    *out = NULL;
    if (!fwd->protocol || (strcmp(fwd->protocol, "tcp") != 0 && strcmp(fwd->protocol, "udp") != 0))
        return hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL,
                        "invalid port protocol \"%s\": expected tcp or udp",
                        fwd->protocol ? fwd->protocol : "");
    const char *host_ip = str_empty(fwd->host_ip) ? "127.0.0.1" : fwd->host_ip;
    bool udp = fwd->protocol[0] == 'u';

    net_proxy *p = xcalloc(1, sizeof(*p));
    p->loop = loop;
    p->udp = udp;
    p->udp_idle_ms = NET_PROXY_UDP_IDLE_MS;
    bool v6 = strchr(host_ip, ':') != NULL;
    p->desc = xasprintf("%s%s%s:%u/%s", v6 ? "[" : "", host_ip, v6 ? "]" : "",
                        (unsigned)fwd->host_port, fwd->protocol);
    int r;
    if (parse_addr(host_ip, fwd->host_port, &p->host_addr) < 0) {
        r = hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL, "invalid host address \"%s\"", host_ip);
        goto fail;
    }
    if (!fwd->target_ip || parse_addr(fwd->target_ip, fwd->target_port, &p->target_addr) < 0) {
        r = hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL, "invalid target address \"%s\"",
                     fwd->target_ip ? fwd->target_ip : "");
        goto fail;
    }
    if (fwd->target_port == 0) {
        r = hypr_err(err, HYPR_INVALID_ARGUMENT, EINVAL, "invalid target port 0");
        goto fail;
    }

    /* A client vanishing mid-write must cost one connection, not the daemon. */
    struct sigaction sa;
    if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL)
        signal(SIGPIPE, SIG_IGN);

    r = udp ? start_udp(p, err) : start_tcp(p, err);
    if (r < 0)
        goto fail;
    log_debug("forwarding %s to %s:%u", p->desc, fwd->target_ip, (unsigned)fwd->target_port);
    *out = p;
    return 0;

fail:
    net_proxy_stop(p); /* frees p now when nothing was opened, else via callbacks */
    return r;
}

void net_proxy_stop(net_proxy *p)
{
    if (!p || p->stopping)
        return;
    p->stopping = true;
    /* Keeps p alive while the loops below close things synchronously. */
    p->open++;
    if (p->listener)
        uv_close((uv_handle_t *)p->listener, proxy_handle_closed);
    while (p->conns)
        conn_close(p->conns);
    if (p->udp_timer)
        uv_close((uv_handle_t *)p->udp_timer, proxy_handle_closed);
    if (p->udp_sock)
        uv_close((uv_handle_t *)p->udp_sock, proxy_handle_closed);
    while (p->flows)
        flow_close(p->flows);
    proxy_put(p);
}

size_t net_proxy_connections(const net_proxy *p)
{
    return p->n_conns + p->n_flows;
}

uint16_t net_proxy_port(const net_proxy *p)
{
    return p->port;
}

void net_proxy_set_udp_idle(net_proxy *p, uint64_t ms)
{
    p->udp_idle_ms = ms ? ms : NET_PROXY_UDP_IDLE_MS;
    if (p->udp_timer && !p->stopping)
        udp_sweep_arm(p);
}

void net_proxy_get_stats(const net_proxy *p, net_proxy_stats *out)
{
    *out = p->stats;
}
