/* Internals shared by the port-forward proxy's files (proxy.c: lifetime, UDP,
 * start/stop; proxy_tcp.c: the TCP relay). Not for other modules. */
#ifndef HYPR_NET_PROXY_PRIVATE_H
#define HYPR_NET_PROXY_PRIVATE_H

#include "net/net.h"

#include <sys/socket.h>

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

#define UDP_BUCKETS 1024

typedef struct udp_flow udp_flow;
typedef struct proxy_tcp proxy_tcp;

struct net_proxy {
    uv_loop_t *loop;
    bool udp;
    bool stopping;
    int open; /* handles, connections and flows not yet closed */
    struct sockaddr_storage host_addr, target_addr;
    uint16_t port;
    char *desc; /* "127.0.0.1:8080/tcp" */

    proxy_tcp *tcp; /* proxy_tcp.c */

    uv_udp_t *udp_sock;
    uv_timer_t *udp_timer;
    udp_flow *buckets[UDP_BUCKETS];
    udp_flow *flows;
    size_t n_flows;
    uint64_t udp_idle_ms;
    size_t udp_queued;
    char *udp_buf;

    net_proxy_stats stats;
};

/* One of p's handles, connections or flows has closed; frees p when it was the
 * last one after net_proxy_stop. */
void proxy_put(net_proxy *p);
/* Close callback of a heap-allocated handle whose data is the proxy. */
void proxy_handle_closed(uv_handle_t *h);
/* FAILED_PRECONDITION "host port ... is already in use" and friends. */
int proxy_bind_error(net_proxy *p, int uverr, hypr_error *err);
/* The port a bound uv_tcp_t or uv_udp_t got. */
uint16_t proxy_bound_port(uv_handle_t *h, bool udp);

/* proxy_tcp.c */
int proxy_tcp_start(net_proxy *p, hypr_error *err);
void proxy_tcp_stop(net_proxy *p); /* closes the listener and every connection */
void proxy_tcp_free(net_proxy *p); /* once every TCP handle has closed */
size_t proxy_tcp_connections(const net_proxy *p);

#endif
