/* The DNS server of hyprd: 127.0.0.1:<dns_port> and port 53 on each bridge's
 * gateway, UDP and TCP. .hypr and VM names come from the name table; other
 * names go to the host's resolvers (/etc/resolv.conf) with a timeout. */
#define LOG_MODULE "dns"
#include "metrics_daemon.h"
#include "netmgr.h"

#include <arpa/inet.h>
#include <string.h>

#define DNS_TTL            30
#define FORWARD_TIMEOUT_MS 2000
#define MAX_UPSTREAMS      3
#define MAX_TCP_MESSAGE    65535

typedef struct dns_server dns_server;

typedef struct listener {
    dns_server *srv;
    uv_udp_t udp;
    uv_tcp_t tcp;
    int closing;   /* handles still closing; freed at 0 */
    char *network; /* NULL on loopback: names of every network */
    struct listener *next;
} listener;

struct dns_server {
    dns_table *table; /* the network manager's */
    listener *listeners;
    struct sockaddr_in upstreams[MAX_UPSTREAMS];
    size_t n_upstreams;
    uv_loop_t *loop;
};

/* ---- replies -------------------------------------------------------------------- */

typedef struct udp_reply {
    uv_udp_send_t req;
    char *data;
} udp_reply;

static void on_udp_sent(uv_udp_send_t *req, int status)
{
    (void)status;
    udp_reply *r = (udp_reply *)req;
    free(r->data);
    free(r);
}

static void udp_send(uv_udp_t *sock, const struct sockaddr *to, const void *data, size_t len)
{
    udp_reply *r = xcalloc(1, sizeof(*r));
    r->data = xmalloc(len);
    memcpy(r->data, data, len);
    uv_buf_t b = uv_buf_init(r->data, (unsigned)len);
    if (uv_udp_send(&r->req, sock, &b, 1, to, on_udp_sent) < 0) {
        free(r->data);
        free(r);
    }
}

/* SERVFAIL for a query we could not resolve (upstream silent or unreachable). */
static bool servfail(const uint8_t *pkt, size_t len, bool tcp, hypr_buf *out)
{
    dns_query q;
    if (dns_query_parse(pkt, len, &q, NULL) < 0 && !q.have_header) {
        dns_query_clear(&q);
        return false;
    }
    int r = dns_build_error(&q, 2, tcp ? MAX_TCP_MESSAGE : dns_query_max_udp(&q), out);
    dns_query_clear(&q);
    return r >= 0;
}

/* ---- forwarding to the host's resolvers ------------------------------------------ */

typedef struct forward {
    dns_server *srv;
    uv_udp_t sock;
    uv_timer_t timer;
    int closing;
    uint8_t *query;
    size_t len;
    /* Where the answer goes: a UDP client, or a TCP connection. */
    uv_udp_t *client_sock;
    struct sockaddr_storage client;
    struct tcp_conn *conn;
} forward;

typedef struct tcp_conn {
    dns_server *srv;
    uv_tcp_t tcp;
    char *network;   /* the listener's (NULL on loopback) */
    uint32_t client; /* the peer's IPv4 address */
    hypr_buf in;
    int pending; /* forwards in flight */
    bool closing;
} tcp_conn;

static void tcp_reply(tcp_conn *c, const void *data, size_t len);
static void tcp_conn_release(tcp_conn *c);

static void forward_closed(uv_handle_t *h)
{
    forward *f = h->data;
    if (--f->closing > 0)
        return;
    if (f->conn)
        tcp_conn_release(f->conn);
    free(f->query);
    free(f);
}

static void forward_finish(forward *f, const void *answer, size_t len)
{
    if (f->closing)
        return;
    if (answer) {
        if (f->conn)
            tcp_reply(f->conn, answer, len);
        else
            udp_send(f->client_sock, (struct sockaddr *)&f->client, answer, len);
    }
    f->closing = 2;
    uv_close((uv_handle_t *)&f->sock, forward_closed);
    uv_close((uv_handle_t *)&f->timer, forward_closed);
}

static void on_forward_timeout(uv_timer_t *t)
{
    forward *f = t->data;
    _cleanup_buf_ hypr_buf out = {0};
    bool ok = servfail(f->query, f->len, f->conn != NULL, &out);
    forward_finish(f, ok ? out.data : NULL, out.len);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    buf->base = xmalloc(MAX_TCP_MESSAGE);
    buf->len = MAX_TCP_MESSAGE;
}

static void on_forward_recv(uv_udp_t *s, ssize_t n, const uv_buf_t *buf,
                            const struct sockaddr *from, unsigned flags)
{
    (void)flags;
    (void)from;
    forward *f = s->data;
    /* Only an answer to this query (same ID) counts. */
    if (n >= 12 && f->len >= 2 && memcmp(buf->base, f->query, 2) == 0)
        forward_finish(f, buf->base, (size_t)n);
    free(buf->base);
}

static void on_forward_sent(uv_udp_send_t *req, int status)
{
    (void)status;
    free(req);
}

static void forward_start(dns_server *srv, const uint8_t *pkt, size_t len, uv_udp_t *client_sock,
                          const struct sockaddr *client, tcp_conn *conn)
{
    forward *f = xcalloc(1, sizeof(*f));
    f->srv = srv;
    f->query = xmalloc(len);
    memcpy(f->query, pkt, len);
    f->len = len;
    f->client_sock = client_sock;
    if (client)
        memcpy(&f->client, client,
               client->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                             : sizeof(struct sockaddr_in));
    f->conn = conn;
    if (conn)
        conn->pending++;
    uv_udp_init(srv->loop, &f->sock);
    uv_timer_init(srv->loop, &f->timer);
    f->sock.data = f->timer.data = f;
    uv_timer_start(&f->timer, on_forward_timeout, FORWARD_TIMEOUT_MS, 0);
    uv_buf_t b = uv_buf_init((char *)f->query, (unsigned)len);
    uv_udp_send_t *req = xcalloc(1, sizeof(*req));
    if (srv->n_upstreams == 0 ||
        uv_udp_send(req, &f->sock, &b, 1, (struct sockaddr *)&srv->upstreams[0], on_forward_sent) <
            0) {
        free(req);
        on_forward_timeout(&f->timer);
        return;
    }
    uv_udp_recv_start(&f->sock, on_alloc, on_forward_recv);
}

/* ---- UDP ------------------------------------------------------------------------- */

/* The querying VM's address (host order) decides which networks' names it sees. */
static uint32_t client_addr(const struct sockaddr *sa)
{
    return sa && sa->sa_family == AF_INET ? ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr)
                                          : 0;
}

/* Counts a query by what became of it (hypr_dns_queries_total). */
static dns_disposition counted(dns_disposition a)
{
    metrics_dns_query(a == DNS_ANSWERED ? "answered" : a == DNS_FORWARD ? "forwarded" : "dropped");
    return a;
}

static void on_udp_query(uv_udp_t *s, ssize_t n, const uv_buf_t *buf, const struct sockaddr *from,
                         unsigned flags)
{
    (void)flags;
    listener *l = s->data;
    if (n > 0 && from) {
        _cleanup_buf_ hypr_buf out = {0};
        switch (counted(dns_answer(l->srv->table, l->network, client_addr(from),
                                   (uint8_t *)buf->base, (size_t)n, false, DNS_TTL, &out))) {
        case DNS_ANSWERED:
            udp_send(s, from, out.data, out.len);
            break;
        case DNS_FORWARD:
            forward_start(l->srv, (uint8_t *)buf->base, (size_t)n, s, from, NULL);
            break;
        case DNS_DROP:
            break;
        }
    }
    free(buf->base);
}

/* ---- TCP (length-prefixed messages) ---------------------------------------------- */

static void tcp_conn_closed(uv_handle_t *h)
{
    tcp_conn *c = h->data;
    buf_free(&c->in);
    free(c->network);
    free(c);
}

static void tcp_conn_release(tcp_conn *c)
{
    c->pending--;
    if (c->closing && c->pending == 0)
        uv_close((uv_handle_t *)&c->tcp, tcp_conn_closed);
}

static void tcp_conn_close(tcp_conn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    uv_read_stop((uv_stream_t *)&c->tcp);
    if (c->pending == 0)
        uv_close((uv_handle_t *)&c->tcp, tcp_conn_closed);
}

typedef struct tcp_write {
    uv_write_t req;
    uint8_t *data;
} tcp_write;

static void on_tcp_written(uv_write_t *req, int status)
{
    (void)status;
    tcp_write *w = (tcp_write *)req;
    free(w->data);
    free(w);
}

static void tcp_reply(tcp_conn *c, const void *data, size_t len)
{
    if (c->closing || len > MAX_TCP_MESSAGE)
        return;
    tcp_write *w = xcalloc(1, sizeof(*w));
    w->data = xmalloc(len + 2);
    w->data[0] = (uint8_t)(len >> 8);
    w->data[1] = (uint8_t)len;
    memcpy(w->data + 2, data, len);
    uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)len + 2);
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_tcp_written) < 0) {
        free(w->data);
        free(w);
    }
}

static void on_tcp_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    tcp_conn *c = s->data;
    if (n < 0) {
        free(buf->base);
        tcp_conn_close(c);
        return;
    }
    buf_append(&c->in, buf->base, (size_t)n);
    free(buf->base);
    while (c->in.len >= 2) {
        size_t len = ((size_t)(uint8_t)c->in.data[0] << 8) | (uint8_t)c->in.data[1];
        if (c->in.len < 2 + len)
            break;
        const uint8_t *pkt = (uint8_t *)c->in.data + 2;
        _cleanup_buf_ hypr_buf out = {0};
        switch (counted(
            dns_answer(c->srv->table, c->network, c->client, pkt, len, true, DNS_TTL, &out))) {
        case DNS_ANSWERED:
            tcp_reply(c, out.data, out.len);
            break;
        case DNS_FORWARD:
            forward_start(c->srv, pkt, len, NULL, NULL, c);
            break;
        case DNS_DROP:
            tcp_conn_close(c);
            return;
        }
        buf_consume(&c->in, 2 + len);
    }
}

static void on_tcp_connection(uv_stream_t *server, int status)
{
    if (status < 0)
        return;
    const listener *l = server->data;
    tcp_conn *c = xcalloc(1, sizeof(*c));
    c->srv = l->srv;
    uv_tcp_init(l->srv->loop, &c->tcp);
    c->tcp.data = c;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0) {
        uv_close((uv_handle_t *)&c->tcp, tcp_conn_closed);
        return;
    }
    c->network = l->network ? xstrdup(l->network) : NULL;
    struct sockaddr_storage peer;
    int len = sizeof(peer);
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&peer, &len) == 0)
        c->client = client_addr((struct sockaddr *)&peer);
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_tcp_read);
}

/* ---- start / stop ----------------------------------------------------------------- */

static void read_upstreams(dns_server *srv)
{
    _cleanup_fclose_ FILE *f = fopen("/etc/resolv.conf", "re");
    char line[512];
    while (f && fgets(line, sizeof(line), f) && srv->n_upstreams < MAX_UPSTREAMS) {
        char addr[64];
        if (sscanf(line, "nameserver %63s", addr) != 1)
            continue;
        struct sockaddr_in *sa = &srv->upstreams[srv->n_upstreams];
        if (uv_ip4_addr(addr, 53, sa) == 0 && strncmp(addr, "127.", 4) != 0)
            srv->n_upstreams++;
    }
}

int netmgr_dns_listen(daemon_ctx *d, const char *ip, int port, const char *network, hypr_error *err)
{
    dns_server *srv = d->dns;
    struct sockaddr_in sa;
    int r = uv_ip4_addr(ip, port, &sa);
    if (r < 0)
        return hypr_err(err, HYPR_INVALID_ARGUMENT, -r, "DNS address %s: %s", ip, uv_strerror(r));
    listener *l = xcalloc(1, sizeof(*l));
    l->srv = srv;
    l->network = network ? xstrdup(network) : NULL;
    uv_udp_init(srv->loop, &l->udp);
    uv_tcp_init(srv->loop, &l->tcp);
    l->udp.data = l->tcp.data = l;
    l->next = srv->listeners;
    srv->listeners = l;
    r = uv_udp_bind(&l->udp, (struct sockaddr *)&sa, UV_UDP_REUSEADDR);
    if (r == 0)
        r = uv_udp_recv_start(&l->udp, on_alloc, on_udp_query);
    if (r == 0)
        r = uv_tcp_bind(&l->tcp, (struct sockaddr *)&sa, 0);
    if (r == 0)
        r = uv_listen((uv_stream_t *)&l->tcp, 64, on_tcp_connection);
    if (r < 0)
        return hypr_err(err, HYPR_FAILED_PRECONDITION, -r, "DNS server on %s:%d: %s", ip, port,
                        uv_strerror(r));
    log_info("DNS server on %s:%d (udp, tcp)", ip, port);
    return 0;
}

void netmgr_dns_start(daemon_ctx *d, dns_table *table, const char *const *gateways,
                      const char *const *networks, size_t n)
{
    dns_server *srv = xcalloc(1, sizeof(*srv));
    srv->table = table;
    srv->loop = d->loop;
    d->dns = srv;
    read_upstreams(srv);
    /* A taken port (another hyprd in this namespace) costs name resolution, not the daemon. */
    _cleanup_error_ hypr_error lerr = HYPR_ERROR_INIT;
    if (netmgr_dns_listen(d, "127.0.0.1", (int)settings_get_int(d, "dns_port"), NULL, &lerr) < 0)
        log_warn("%s", lerr.message);
    for (size_t i = 0; i < n; i++) {
        _cleanup_error_ hypr_error gerr = HYPR_ERROR_INIT;
        /* A gateway that cannot take port 53 costs its guests their resolver, not the daemon. */
        if (netmgr_dns_listen(d, gateways[i], 53, networks[i], &gerr) < 0)
            log_warn("%s", gerr.message);
    }
}

/* libuv runs close callbacks in no promised order: free after the last one. */
static void listener_closed(uv_handle_t *h)
{
    listener *l = h->data;
    if (--l->closing > 0)
        return;
    free(l->network);
    free(l);
}

static void listener_close(listener *l)
{
    l->closing = 2;
    uv_close((uv_handle_t *)&l->udp, listener_closed);
    uv_close((uv_handle_t *)&l->tcp, listener_closed);
}

void netmgr_dns_unlisten(daemon_ctx *d, const char *network)
{
    if (!d->dns)
        return;
    for (listener **p = &d->dns->listeners; *p;) {
        listener *l = *p;
        if (l->network && strcmp(l->network, network) == 0) {
            *p = l->next;
            listener_close(l);
        } else {
            p = &l->next;
        }
    }
}

void netmgr_dns_stop(daemon_ctx *d)
{
    dns_server *srv = d->dns;
    if (!srv)
        return;
    while (srv->listeners) {
        listener *l = srv->listeners;
        srv->listeners = l->next;
        listener_close(l);
    }
    /* Forwards in flight and closing listeners no longer use srv. */
    d->dns = NULL;
    free(srv);
}
