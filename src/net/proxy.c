/* Userspace port-forward proxy on the daemon's libuv loop.
 *
 * TCP (proxy_tcp.c): each accepted client gets its own connection to the target;
 * bytes are relayed both ways with splice(2) through a pipe per direction, with
 * backpressure and half-close.
 *
 * UDP: one host socket; per client address a flow with its own socket connected
 * to the target, whose replies go back to that client. Flows expire when idle.
 *
 * Memory is owned by close callbacks: a connection is freed when all of its
 * handles have closed, the proxy when all of its handles, connections and flows
 * have. */
#define LOG_MODULE "net"
#include "net/proxy-private.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stddef.h>
#include <string.h>

#define UDP_READ_BUF     (64 * 1024)
#define UDP_SEND_QUEUE   (1024 * 1024) /* drop datagrams above this much queued */
#define UDP_SWEEP_MIN_MS 50

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

/* ---- lifetime ---------------------------------------------------------------- */

static void proxy_free(net_proxy *p)
{
    proxy_tcp_free(p);
    free(p->udp_buf);
    free(p->desc);
    free(p);
}

void proxy_put(net_proxy *p)
{
    p->open--;
    if (p->stopping && p->open == 0)
        proxy_free(p);
}

void proxy_handle_closed(uv_handle_t *h)
{
    net_proxy *p = h->data;
    free(h);
    proxy_put(p);
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
    DLIST_REMOVE(p->flows, f);
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
    *buf = uv_buf_init(p->udp_buf, UDP_READ_BUF);
}

static void flow_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    udp_flow *f = h->data;
    *buf = uv_buf_init(f->proxy->udp_buf, UDP_READ_BUF);
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

int proxy_bind_error(net_proxy *p, int uverr, hypr_error *err)
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

uint16_t proxy_bound_port(uv_handle_t *h, bool udp)
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

static int start_udp(net_proxy *p, hypr_error *err)
{
    p->udp_buf = xmalloc(UDP_READ_BUF);
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
        return proxy_bind_error(p, r, err);
    p->port = proxy_bound_port((uv_handle_t *)p->udp_sock, true);
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

    r = udp ? start_udp(p, err) : proxy_tcp_start(p, err);
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
    proxy_tcp_stop(p);
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
    return proxy_tcp_connections(p) + p->n_flows;
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
